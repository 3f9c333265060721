"""database#password rotation changes the PostgreSQL role's password in the same step.

Runs against the machine's PostgreSQL at 127.0.0.1:5432 (user postgres, database test),
with a throwaway role per test. Skipped when PostgreSQL is unreachable, unless
FLASK_VAULT_REQUIRE_POSTGRES=1 makes that a failure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask
from pg_support import admin_connection, database_secret, throwaway_role

from flask_vault.errors import DatabaseRotationError
from flask_vault.ops import pgrole
from tests.rotation_support import PREFIX, backup_data, backup_files, current, make_cli_app, seed_env, vault

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_admin() -> Iterator[Any]:
    with admin_connection() as connection:
        yield connection


@pytest.fixture
def pg_role(pg_admin: Any) -> Iterator[tuple[str, str]]:
    """A throwaway LOGIN role with a known password, dropped afterwards."""
    with throwaway_role(pg_admin, "fv_rot") as role:
        yield role


def password_is(pg_admin: Any, role: str, password: str) -> bool:
    """Whether the role's stored SCRAM verifier was made from ``password``."""
    (verifier,) = pg_admin.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256"
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


@pytest.fixture
def env(vault_root: hvac.Client, unique_env: str, pg_role: tuple[str, str]) -> str:
    seed_env(vault_root, unique_env, database=database_secret(*pg_role))
    return unique_env


@pytest.fixture
def cli_app(base_config: dict[str, Any], env: str, tmp_path: Path) -> Flask:
    return make_cli_app(base_config, env, tmp_path)


def test_rotating_the_database_password_changes_the_role_in_postgresql(
    cli_app: Flask,
    vault_root: hvac.Client,
    env: str,
    pg_admin: Any,
    pg_role: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    role, initial = pg_role
    caplog.set_level(logging.DEBUG)
    result = vault(cli_app, "rotate", "--secret", "database", "--yes")
    assert result.exit_code == 0, result.output
    assert f"PostgreSQL role {role!r} on 127.0.0.1:5432/test changed too" in result.output
    version, data = current(vault_root, env, "database")
    assert version == 2 and data["password"] != initial
    assert password_is(pg_admin, role, data["password"])
    assert not password_is(pg_admin, role, initial)
    assert initial not in result.output and data["password"] not in result.output
    assert initial not in caplog.text and data["password"] not in caplog.text
    [backup] = backup_files(Path(cli_app.instance_path) / "vault-backups")
    assert backup_data(backup)["password"] == initial
    assert {k: v for k, v in data.items() if k != "password"} == {
        k: v for k, v in backup_data(backup).items() if k != "password"
    }


def test_rotate_all_dry_run_names_the_role(cli_app: Flask, pg_role: tuple[str, str]) -> None:
    result = vault(cli_app, "rotate", "--secret", "database", "--dry-run")
    assert result.exit_code == 0 and f"role {pg_role[0]!r}" in result.output


def test_without_psycopg_a_paired_rotation_is_refused_before_any_backup(
    cli_app: Flask, vault_root: hvac.Client, env: str, pg_admin: Any, pg_role: tuple[str, str], monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # the import raises ImportError
    result = vault(cli_app, "rotate", "--secret", "database", "--yes")
    assert result.exit_code == 1 and "needs psycopg" in result.output
    assert current(vault_root, env, "database")[0] == 1
    assert password_is(pg_admin, pg_role[0], pg_role[1])
    assert not backup_files(Path(cli_app.instance_path) / "vault-backups")


def test_a_lost_vault_write_rolls_the_role_back(
    cli_app: Flask, vault_root: hvac.Client, env: str, pg_admin: Any, pg_role: tuple[str, str]
) -> None:
    role, initial = pg_role
    client = cli_app.extensions["vault"].client
    read_version = client.read_version
    theirs: dict[str, Any] = {}

    def read_then_someone_writes(name: str, version: int | None = None) -> Any:
        entry = read_version(name, version)
        theirs.update(entry.data, note="written by someone else")
        vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/database", theirs)
        return entry

    client.read_version = read_then_someone_writes
    result = vault(cli_app, "rotate", "--secret", "database", "--yes")
    assert result.exit_code == 1 and "Conflict" in result.output
    assert current(vault_root, env, "database") == (2, theirs)
    assert password_is(pg_admin, role, initial)


def test_a_postgresql_failure_leaves_vault_unchanged(
    base_config: dict, vault_root: hvac.Client, unique_env: str, tmp_path: Path, pg_admin: Any
) -> None:
    database = {"host": "127.0.0.1", "port": 5432, "username": f"no_such_role_{uuid.uuid4().hex[:6]}"}
    seed_env(vault_root, unique_env, database={**database, "password": "pw-0123456789", "database": "test"})
    app = make_cli_app(base_config, unique_env, tmp_path)
    result = vault(app, "rotate", "--secret", "database", "--yes")
    assert result.exit_code == 1
    assert "Cannot log in to PostgreSQL" in result.output and "Nothing was changed" in result.output
    assert "pw-0123456789" not in result.output
    assert current(vault_root, unique_env, "database")[0] == 1


def test_an_unreachable_database_leaves_vault_unchanged(
    base_config: dict, vault_root: hvac.Client, unique_env: str, tmp_path: Path, pg_admin: Any
) -> None:
    database = {"host": "127.0.0.1", "port": 1, "username": "store", "password": "pw-abcdef012345", "database": "x"}
    seed_env(vault_root, unique_env, database=database)
    app = make_cli_app(base_config, unique_env, tmp_path)
    result = vault(app, "rotate", "--secret", "database", "--yes")
    assert result.exit_code == 1 and "Cannot log in to PostgreSQL" in result.output
    assert current(vault_root, unique_env, "database") == (1, database)


def test_a_failed_commit_sets_vault_back_to_the_old_password(
    cli_app: Flask,
    vault_root: hvac.Client,
    env: str,
    pg_admin: Any,
    pg_role: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role, initial = pg_role

    def commit_fails(self: pgrole.PendingPasswordChange) -> None:
        self.rollback()
        raise DatabaseRotationError(f"PostgreSQL did not commit the new password for {self.where}: simulated.")

    monkeypatch.setattr(pgrole.PendingPasswordChange, "commit", commit_fails)
    result = vault(cli_app, "rotate", "--secret", "database", "--yes")
    assert result.exit_code == 1
    assert "Vault was set back to the old data as version 3" in result.output
    version, data = current(vault_root, env, "database")
    assert version == 3 and data["password"] == initial
    assert password_is(pg_admin, role, initial)


def test_rollback_and_restore_change_the_role_password_too(
    cli_app: Flask, vault_root: hvac.Client, env: str, pg_admin: Any, pg_role: tuple[str, str]
) -> None:
    role, initial = pg_role
    assert vault(cli_app, "rotate", "--secret", "database", "--yes").exit_code == 0
    rotated = current(vault_root, env, "database")[1]["password"]
    rolled = vault(cli_app, "rollback", "database", "--version", "1", "--yes")
    assert rolled.exit_code == 0, rolled.output
    assert password_is(pg_admin, role, initial)
    backups = backup_files(Path(cli_app.instance_path) / "vault-backups")
    newest = max(backups, key=lambda p: p.name)  # the backup rollback took: the rotated password
    restored = vault(cli_app, "restore", str(newest), "--yes")
    assert restored.exit_code == 0, restored.output
    assert current(vault_root, env, "database")[1]["password"] == rotated
    assert password_is(pg_admin, role, rotated)


def test_put_changes_vault_only_and_says_so(
    cli_app: Flask, vault_root: hvac.Client, env: str, pg_admin: Any, pg_role: tuple[str, str]
) -> None:
    role, initial = pg_role
    result = vault(cli_app, "put", "database", "--field", "password", "--merge", "--yes", input="typed-by-hand-123\n")
    assert result.exit_code == 0, result.output
    assert "only Vault changed" in result.output
    assert password_is(pg_admin, role, initial)


def test_the_librarys_rotate_secret_changes_the_role_password_too(
    cli_app: Flask, vault_root: hvac.Client, env: str, pg_admin: Any, pg_role: tuple[str, str]
) -> None:
    from flask_vault.state import get_state

    role, initial = pg_role
    client = get_state(cli_app).client
    assert client.rotate_secret("database", "password") == 2
    rotated = current(vault_root, env, "database")[1]["password"]
    assert rotated != initial and password_is(pg_admin, role, rotated)
    [backup] = backup_files(Path(cli_app.instance_path) / "vault-backups")
    assert backup_data(backup)["password"] == initial
