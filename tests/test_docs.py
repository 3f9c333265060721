"""The docs site: the generated settings table lists every setting the code reads, the API
reference covers the public names, and the README's links into the docs resolve."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import flask_vault
from flask_vault import settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: A VAULT_* setting name, as a whole string literal.
SETTING_NAME = re.compile(r"VAULT_[A-Z][A-Z0-9_]*")


def _written_names(tree: ast.AST) -> set[int]:
    """ids of the literals used as ``env["VAULT_X"] = ...`` targets: set for another program, not read."""
    return {
        id(node.slice)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store) and isinstance(node.slice, ast.Constant)
    }


def _extension() -> ModuleType:
    spec = importlib.util.spec_from_file_location("vault_settings", DOCS / "_ext" / "vault_settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def settings_the_code_reads() -> set[str]:
    """Every VAULT_* name written as a whole string literal in flask_vault/ (the spec table,
    the keys load() reads by name, aliases, the keys that messages and errors name), except
    one only ever assigned into an environment for a child process."""
    names: set[str] = set()
    for path in (ROOT / "flask_vault").rglob("*.py"):
        tree = ast.parse(path.read_text())
        written = _written_names(tree)
        names |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SETTING_NAME.fullmatch(node.value)
            and id(node) not in written
        }
    return names


def test_the_code_scan_finds_the_settings_it_should() -> None:
    found = settings_the_code_reads()
    # Read through the spec table, read by name in VaultSettings.load, and an alias.
    assert {"VAULT_CACHE_TTL", "VAULT_CACERT", "VAULT_SKIP_VERIFY", "VAULT_ADDR"} <= found
    assert {spec.key for spec in settings._SPECS} <= found


def test_generated_settings_table_lists_every_setting_the_code_reads() -> None:
    rows = _extension().settings_rows()
    listed = {name for row in rows for name in (row.key, *row.environment)}
    assert settings_the_code_reads() - listed == set()
    assert len({row.key for row in rows}) == len(rows)


def test_every_listed_setting_is_described_and_credentials_are_marked() -> None:
    extension = _extension()
    assert extension.problems() == []
    rows = {row.key: row for row in extension.settings_rows()}
    assert all(rows[key].text for key in rows)
    assert {key for key, row in rows.items() if row.credential} >= set(settings.CREDENTIAL_KEYS)
    assert rows["VAULT_CACHE_TTL"].default == "``300``"  # the dataclass default, not a copy of it
    assert rows["VAULT_URL"].environment == ("VAULT_URL", "VAULT_ADDR")


def test_a_setting_without_prose_fails_the_docs_build(monkeypatch: pytest.MonkeyPatch) -> None:
    extension = _extension()
    monkeypatch.delitem(extension.NOTES, "VAULT_TIMEOUT")
    monkeypatch.setitem(extension.NOTES, "VAULT_NO_SUCH_SETTING", extension.Note("Connection", "gone"))
    found = "\n".join(extension.problems())
    assert "reads VAULT_TIMEOUT" in found and "VAULT_NO_SUCH_SETTING" in found


@pytest.mark.slow
def test_built_settings_page_shows_every_setting(tmp_path: Path) -> None:
    """The directive through Sphinx itself (with -W), on a one-page site using the real conf.py."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "index.md").write_text((DOCS / "configuration.md").read_text())
    (source / "secrets.md").write_text(":orphan:\n\n# Secrets\n")  # a page the table links to
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "-q",
            "-E",
            "-c",
            str(DOCS),
            "-b",
            "html",
            str(source),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "out" / "index.html").read_text()
    for key in settings_the_code_reads():
        assert f">{key}<" in html, key
    assert "Credential" in html


def test_api_reference_documents_every_public_name() -> None:
    api = (DOCS / "api.md").read_text()
    missing = [name for name in flask_vault.__all__ if f"flask_vault.{name}" not in api]
    assert missing == []
    for module in ("flask_vault.jwt", "flask_vault.testing", "flask_vault.devserver"):
        assert f"automodule:: {module}" in api


def test_readme_links_into_the_docs_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)(?:#[^)]*)?\)", readme)
    assert len(links) >= 5, "the README should link into the docs"
    assert [link for link in links if not (ROOT / link).is_file()] == []
