"""The import-linter contracts in pyproject.toml: kept by the package, and able to fail.

`make test` runs `lint-imports` itself; these tests prove the contracts would catch an
upward import written inside a function, and that imports under TYPE_CHECKING (which never
run) are not counted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "flask_vault", tmp_path / "flask_vault")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_package_keeps_its_layers(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout


def test_an_upward_import_inside_a_function_breaks_the_layers(tree: Path) -> None:
    with (tree / "flask_vault" / "client.py").open("a") as module:
        module.write("\n\ndef _upward() -> None:\n    from flask_vault.extension import FlaskVault  # noqa: F401\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert "flask_vault.client is not allowed to import flask_vault.extension" in result.stdout


def test_an_import_under_type_checking_is_not_counted(tree: Path) -> None:
    with (tree / "flask_vault" / "errors.py").open("a") as module:
        module.write("\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n")
        module.write("    from flask_vault.extension import FlaskVault\n")
    result = _lint(tree)
    assert result.returncode == 0, result.stdout
