"""The release: what `python -m build` puts in the wheel (and what it must leave out).

The wheel is built the way a release is, from the sdist, so a file the sdist forgets is
missing here too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _wheel_names(dist: Path) -> list[str]:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_wheel_holds_flask_vault_only(dist: Path) -> None:
    names = _wheel_names(dist)
    tops = {name.split("/", 1)[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"flask_vault"}
    for unwanted in ("example_app", "tests", "benchmarks", "scripts", "docs"):
        assert not [name for name in names if name.startswith(unwanted + "/")], unwanted


def test_wheel_holds_every_module_of_the_package_and_its_data(dist: Path) -> None:
    names = set(_wheel_names(dist))
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "flask_vault").rglob("*.py")}
    assert modules, "no module found: the comparison would prove nothing"
    assert modules - names == set()  # every subpackage (vault, auth, ops, ...) made it
    assert "flask_vault/py.typed" in names
    policies = {path.relative_to(ROOT).as_posix() for path in (ROOT / "flask_vault" / "policies").glob("*.hcl")}
    assert policies >= {"flask_vault/policies/app.hcl", "flask_vault/policies/rotator.hcl"}
    assert policies - names == set()


def test_wheel_declares_the_dependencies_and_one_top_level_name(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        info = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        top_level = next((n for n in archive.namelist() if n.endswith(".dist-info/top_level.txt")), None)
        if top_level is not None:
            assert archive.read(top_level).decode().split() == ["flask_vault"]
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert {"Flask>=3.1.1", "hvac>=2.2", "cachetools>=5"} <= set(requires)


def test_the_mit_license_ships_in_the_sdist_and_the_wheel(dist: Path) -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "flask-vault contributors" in text
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        (member,) = [m for m in archive.getmembers() if m.name.split("/", 1)[-1] == "LICENSE"]
        extracted = archive.extractfile(member)
        assert extracted is not None and extracted.read().decode() == text
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        (license_file,) = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert archive.read(license_file).decode() == text
        metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()


def test_sdist_can_run_the_tests_and_build_the_docs(dist: Path) -> None:
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for needed in ("tests/conftest.py", "example_app/__init__.py", "docs/conf.py", "conftest.py", "CHANGES.md"):
        assert needed in names
    assert not [name for name in names if name.startswith(("docs/_build/", ".venv/")) or "__pycache__" in name]


def test_github_workflow_runs_the_same_steps_as_ci_run() -> None:
    ci_run = (ROOT / ".ci" / "run").read_text().splitlines()
    script = [line.strip() for line in ci_run if re.match(r"^(make |scripts/)", line.strip())]
    workflow = (ROOT / ".github" / "workflows" / "ci.yml").read_text()
    steps = [match.strip() for match in re.findall(r"^\s+run: (.+)$", workflow, re.MULTILINE)]
    assert script and steps == script
    assert "not exercised here" in workflow.lower()
