"""`flask vault` without a terminal, values typed where they should not be, and text from Vault."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask

from flask_vault import VaultConfigError
from flask_vault.state import get_state
from tests.rotation_support import PREFIX, backup_files, current, make_cli_app, seed_env, vault

RACE_APP = Path(__file__).with_name("race_app.py")


@pytest.fixture
def env(unique_env: str, vault_root: hvac.Client) -> str:
    seed_env(vault_root, unique_env, extra={"payments": {"api_key": "pay-key-7f3a9c1e5b"}})
    return unique_env


@pytest.fixture
def cli_app(base_config: dict[str, Any], env: str, tmp_path: Path) -> Flask:
    return make_cli_app(base_config, env, tmp_path)


# -- no terminal, no --yes: refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("put", "payments", "--field", "api_key"),
        ("put", "payments"),
        ("rotate", "--secret", "flask"),
        ("rotate", "--all"),
        ("rollback", "flask", "--version", "1"),
    ],
)
def test_a_write_without_a_terminal_needs_yes(
    cli_app: Flask, vault_root: hvac.Client, env: str, args: tuple[str, ...]
) -> None:
    before = {name: current(vault_root, env, name) for name in ("flask", "payments")}
    result = vault(cli_app, *args, input="piped-value-3c1d9e\n")
    assert result.exit_code == 2, result.output
    assert "there is no terminal to confirm on: add --yes" in result.output
    assert f"flask vault {args[0]}" in result.output
    assert {name: current(vault_root, env, name) for name in before} == before
    assert not backup_files(Path(cli_app.instance_path) / "vault-backups")


def test_a_restore_without_a_terminal_needs_yes(cli_app: Flask, vault_root: hvac.Client, env: str) -> None:
    assert vault(cli_app, "backup", "flask").exit_code == 0
    [file] = backup_files(Path(cli_app.instance_path) / "vault-backups")
    result = vault(cli_app, "restore", str(file))
    assert result.exit_code == 2 and "add --yes" in result.output
    assert current(vault_root, env, "flask")[0] == 1


def test_a_dry_run_and_reads_need_no_yes(cli_app: Flask) -> None:
    assert vault(cli_app, "rotate", "--all", "--dry-run").exit_code == 0
    assert vault(cli_app, "get", "flask").exit_code == 0


@pytest.mark.slow
def test_a_rotation_in_a_process_with_stdin_from_dev_null_is_refused(
    openbao_server: Any, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "FLASK_"))}
    environ.update(
        VAULT_URL=openbao_server.url,
        VAULT_TOKEN=openbao_server.root_token,
        VAULT_ENVIRONMENT=env,
        RACE_INSTANCE=str(tmp_path / "instance"),
    )
    command = [sys.executable, "-m", "flask", "--app", f"{RACE_APP}:create_app", "vault", "rotate", "--secret", "flask"]
    refused = subprocess.run(command, env=environ, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2, refused.stderr
    assert "add --yes" in refused.stderr and "Traceback" not in refused.stderr
    assert current(vault_root, env, "flask")[0] == 1
    accepted = subprocess.run(
        [*command, "--yes"], env=environ, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert accepted.returncode == 0, accepted.stderr
    assert current(vault_root, env, "flask")[0] == 2


# -- put: values never from arguments, field names checked ------------------------------------------


@pytest.mark.parametrize(
    "typed",
    [
        ("api_key=sk-live-typed-9a8b7c",),
        ("sk-live-typed-9a8b7c",),
        ("--api-key=sk-live-typed-9a8b7c",),
        ("--field", "api_key", "sk-live-typed-9a8b7c"),
    ],
)
def test_put_never_echoes_an_unexpected_argument(
    cli_app: Flask, vault_root: hvac.Client, env: str, typed: tuple[str, ...]
) -> None:
    result = vault(cli_app, "put", "payments", *typed, "--yes", input="x\n")
    assert result.exit_code == 2, result.output
    assert "sk-live-typed-9a8b7c" not in result.output
    assert "not shown" in result.output
    assert current(vault_root, env, "payments")[0] == 1


@pytest.mark.parametrize("name", ["api_key=sk-live-typed-9a8b7c", "api key", "api\x1bkey", "tab\tname", ""])
def test_put_refuses_a_field_name_that_could_be_a_value(
    cli_app: Flask, vault_root: hvac.Client, env: str, name: str
) -> None:
    result = vault(cli_app, "put", "payments", "--field", name, "--merge", "--yes", input="sk-live-piped-1f2e\n")
    assert result.exit_code == 2, result.output  # a usage mistake
    assert "Invalid field name in --field" in result.output
    assert "sk-live" not in result.output and "\x1b" not in result.output
    assert current(vault_root, env, "payments") == (1, {"api_key": "pay-key-7f3a9c1e5b"})


def test_put_refuses_bad_field_names_from_stdin_and_files(
    cli_app: Flask, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    lines = vault(cli_app, "put", "payments", "--yes", input="api key=sk-live-piped-1f2e\n")
    assert lines.exit_code == 1 and "Invalid field name" in lines.output and "sk-live" not in lines.output
    source = tmp_path / "fields.json"
    source.write_text('{"ok": "1", "bad=sk-live-file-77aa": "2"}')
    from_file = vault(cli_app, "put", "payments", "--from-file", str(source), "--yes")
    assert from_file.exit_code == 1 and "field 2 of 2" in from_file.output and "sk-live" not in from_file.output
    assert current(vault_root, env, "payments")[0] == 1


def test_set_secret_refuses_a_field_name_with_an_equals_sign(cli_app: Flask, vault_root: hvac.Client, env: str) -> None:
    client = get_state(cli_app).client
    with pytest.raises(VaultConfigError) as caught:
        client.set_secret("payments", {"api_key=sk-live-lib-5d4c": "x"})
    assert "sk-live" not in str(caught.value) and "sk-live" not in repr(caught.value)
    assert current(vault_root, env, "payments")[0] == 1


def test_the_prompt_asks_again_for_a_bad_field_name(
    cli_app: Flask, vault_root: hvac.Client, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_vault.cli._interactive", lambda: True)
    value = "typed-secret-5e6f7a8b"
    answers = f"api_key=oops-typed-7c\ngood\n\n{value}\n{value}\ny\n"
    result = vault(cli_app, "put", "fresh", input=answers)
    assert result.exit_code == 0, result.output
    assert "Invalid field name" in result.output
    assert current(vault_root, env, "fresh") == (1, {"good": value})


# -- text from Vault on the terminal ------------------------------------------------------------------


def test_field_names_and_values_from_vault_reach_the_terminal_escaped(
    cli_app: Flask, vault_root: hvac.Client, env: str
) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{env}/odd", {"\x1b]0;owned\x07name": "v\x1b[2Jalue\r\nnext", "plain": "p"}
    )
    masked = vault(cli_app, "get", "odd")
    assert masked.exit_code == 0, masked.output
    assert "\x1b" not in masked.output and "\\x1b]0;owned\\x07name: ********" in masked.output
    revealed = vault(cli_app, "get", "odd", "--reveal")
    assert "\x1b" not in revealed.output and "\r" not in revealed.output
    assert "v\\x1b[2Jalue\\r\\nnext" in revealed.output
    missing = vault(cli_app, "get", "odd", "--field", "nope")
    assert missing.exit_code == 1 and "\x1b" not in missing.output and "\\x1b]0;owned" in missing.output
    raw = vault(cli_app, "get", "odd", "--field", "plain", "--reveal")
    assert raw.output == "p\n"  # one field, for pipes: exactly the value
