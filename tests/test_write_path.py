"""The one write path (flask_vault.ops.write): the library writes like the CLI, on a real OpenBao.

``VaultClient.set_secret`` and ``rotate_secret`` read the current version, back it up,
write with check-and-set, leave one composite audit record and update the cache, exactly
as ``flask vault put/rotate`` do, and their backups restore.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import pytest
from core_support import client_for

from flask_vault import BackupError, VaultClient, VaultConfigError, VaultConflictError
from flask_vault.ops.backup import restore
from flask_vault.ops.rotation import plan_rotation
from flask_vault.ops.write import apply_write, plan_put
from flask_vault.state import get_state
from tests.rotation_support import PREFIX, backup_data, backup_files, current, make_cli_app, seed_env, vault

Audit = Callable[..., list[dict[str, Any]]]


@pytest.fixture
def audit(caplog: pytest.LogCaptureFixture) -> Audit:
    """The audit records (their ``vault`` fields) emitted so far, optionally of one operation."""
    caplog.set_level(logging.INFO, logger="flask_vault.audit")

    def records(operation: str | None = None) -> list[dict[str, Any]]:
        found = [getattr(r, "vault", {}) for r in caplog.records if r.name == "flask_vault.audit"]
        return [f for f in found if operation is None or f.get("operation") == operation]

    return records


@pytest.fixture
def backups(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def client(base_config: dict[str, Any], unique_env: str, backups: Path) -> VaultClient:
    return client_for(base_config, VAULT_ENVIRONMENT=unique_env, VAULT_BACKUP_DIR=str(backups))


def put_root(vault_root: hvac.Client, env: str, name: str, data: dict[str, Any]) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/{name}", data)


def test_rotate_secret_backs_up_audits_once_and_its_backup_restores_the_old_value(
    client: VaultClient, vault_root: hvac.Client, unique_env: str, backups: Path, audit: Audit
) -> None:
    old = {"api_key": f"old-api-key-{uuid.uuid4().hex}", "account": "acct-1"}
    put_root(vault_root, unique_env, "payments", old)

    assert client.rotate_secret("payments", "api_key") == 2

    version, rotated = current(vault_root, unique_env, "payments")
    assert version == 2 and rotated["account"] == "acct-1"
    assert rotated["api_key"] != old["api_key"] and len(rotated["api_key"]) == 64  # the default rule
    [backup] = backup_files(backups)
    document = json.loads(backup.read_text())
    assert (document["version"], document["reason"], backup_data(backup)) == (1, "rotate", old)
    operations = [f["operation"] for f in audit()]
    assert operations.count("rotate") == 1
    assert operations.index("backup") < operations.index("write") < operations.index("rotate")
    [record] = audit("rotate")
    assert (record["outcome"], record["version"], record["path"]) == ("ok", 2, f"secret/{PREFIX}/{unique_env}/payments")
    assert client.get_secret("payments", "api_key") == rotated["api_key"]  # the write path updated the cache

    restored = restore(client, None, backup)

    assert restored.new_version == 3 and current(vault_root, unique_env, "payments") == (3, old)
    assert client.get_secret("payments", "api_key") == old["api_key"]
    assert len(backup_files(backups)) == 2  # the rotated data was backed up before the restore
    assert [f["version"] for f in audit("restore")] == [3]


def test_set_secret_backs_up_an_existing_secret_and_records_one_put(
    client: VaultClient, backups: Path, audit: Audit
) -> None:
    assert client.set_secret("stripe", {"key": "first-stripe-key-1234"}) == 1
    assert not backup_files(backups)  # nothing to back up yet
    assert client.set_secret("stripe", {"key": "second-stripe-key-5678"}) == 2
    [backup] = backup_files(backups)
    assert backup_data(backup) == {"key": "first-stripe-key-1234"}
    assert json.loads(backup.read_text())["reason"] == "put"
    assert [(f["version"], f["outcome"]) for f in audit("put")] == [(1, "ok"), (2, "ok")]
    assert [f["version"] for f in audit("backup")] == [1]


def test_set_secret_with_a_stale_cas_is_refused_before_any_backup_or_write(
    client: VaultClient, vault_root: hvac.Client, unique_env: str, backups: Path
) -> None:
    client.set_secret("stripe", {"key": "v1-stripe-key-1234"})
    client.set_secret("stripe", {"key": "v2-stripe-key-1234"})
    files = backup_files(backups)
    with pytest.raises(VaultConflictError, match="version 2, not version 1"):
        client.set_secret("stripe", {"key": "lost-stripe-key-1234"}, cas=1)
    assert backup_files(backups) == files
    assert current(vault_root, unique_env, "stripe") == (2, {"key": "v2-stripe-key-1234"})
    assert client.set_secret("stripe", {"key": "v3-stripe-key-1234"}, cas=2) == 3
    with pytest.raises(VaultConfigError, match="cas"):
        client.set_secret("stripe", {"key": "x"}, cas=-1)


def test_two_writers_planned_on_one_version_give_exactly_one_winner(
    client: VaultClient, base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, backups: Path
) -> None:
    seed_env(vault_root, unique_env)
    other = client_for(base_config, VAULT_ENVIRONMENT=unique_env, VAULT_BACKUP_DIR=str(backups))
    first, second = plan_rotation(client, "flask"), plan_rotation(other, "flask")
    won = apply_write(client, first)
    with pytest.raises(VaultConflictError, match="Conflict") as lost:
        apply_write(other, second)
    assert "it was version 1 when read" in str(lost.value) and "Nothing was written" in str(lost.value)
    version, data = current(vault_root, unique_env, "flask")
    assert version == won.new_version == 2
    assert other.get_secret("flask", use_cache=False) == data


def test_a_plan_is_immutable_decides_once_and_shows_no_value(
    client: VaultClient, vault_root: hvac.Client, unique_env: str, backups: Path
) -> None:
    data = seed_env(vault_root, unique_env)
    new_key = f"planned-key-{uuid.uuid4().hex}"
    plan = plan_put(client, "flask", {"secret_key": new_key}, merge=True)
    assert (plan.kv_version, plan.cas, plan.next_version, plan.fields) == (2, 1, 2, ("secret_key",))
    assert plan.summary() == f"write secret/{PREFIX}/{unique_env}/flask (secret_key): version 1 -> 2"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.action = "rotate"  # type: ignore[misc]
    with pytest.raises(TypeError):
        plan.data["secret_key"] = "changed"  # type: ignore[index]
    rotation = plan_rotation(client, "flask")
    assert rotation.fields == ("secret_key", "jwt_secret") and rotation.database is None
    shown = repr(plan) + plan.summary() + repr(rotation) + rotation.summary()
    assert not [v for v in (new_key, *data["flask"].values()) if v in shown]
    assert current(vault_root, unique_env, "flask")[0] == 1 and not backup_files(backups)  # planning writes nothing


def test_rotate_secret_follows_the_fields_rotation_rule_and_refuses_connection_fields(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, backups: Path
) -> None:
    seed_env(vault_root, unique_env, extra={"payments": {"api_key": "pay-key-0123456789", "host": "api.example"}})
    client = client_for(
        base_config,
        VAULT_ENVIRONMENT=unique_env,
        VAULT_BACKUP_DIR=str(backups),
        VAULT_ROTATION={"payments": {"api_key": {"length": 40, "alphabet": "hex"}}},
    )
    client.rotate_secret("payments", "api_key")
    key = current(vault_root, unique_env, "payments")[1]["api_key"]
    assert len(key) == 40 and set(key) <= set("0123456789abcdef")
    with pytest.raises(VaultConfigError, match="never rotates"):
        client.rotate_secret("payments", "host", "elsewhere.example")
    assert current(vault_root, unique_env, "payments")[0] == 2 and len(backup_files(backups)) == 1


def test_the_apps_client_backs_up_to_the_instance_folder_and_the_cli_restores_it(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    seeded = seed_env(vault_root, unique_env)
    app = make_cli_app(base_config, unique_env, tmp_path)
    client = get_state(app).client
    assert client.backups.directory == Path(app.instance_path) / "vault-backups"

    client.rotate_secret("flask", "secret_key")

    [backup] = backup_files(client.backups.directory)
    listing = vault(app, "backups")
    assert backup.name in listing.output and "rotate" in listing.output
    restored = vault(app, "restore", str(backup), "--yes")
    assert restored.exit_code == 0, restored.output
    assert current(vault_root, unique_env, "flask") == (3, seeded["flask"])


BARE_CLIENT_SCRIPT = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s %(message)s")
from flask_vault import VaultClient
print(VaultClient().rotate_secret("flask", "jwt_secret"))
"""


def run_bare_client(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "XDG_"))}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", BARE_CLIENT_SCRIPT], env=environ, capture_output=True, text=True, timeout=60
    )


def test_a_bare_client_in_another_process_backs_up_to_the_user_state_directory(
    openbao_server: Any, base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    seeded = seed_env(vault_root, unique_env)
    env = {
        "VAULT_URL": openbao_server.url,
        "VAULT_TOKEN": openbao_server.root_token,
        "VAULT_PATH_PREFIX": PREFIX,
        "VAULT_ENVIRONMENT": unique_env,
        "HOME": str(tmp_path / "home"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    first = run_bare_client(env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "2"
    assert f"flask_vault.audit vault rotate secret/{PREFIX}/{unique_env}/flask outcome=ok version=2" in first.stderr
    [default] = backup_files(tmp_path / "state" / "flask-vault" / "vault-backups")
    assert backup_data(default) == seeded["flask"]
    explicit = run_bare_client({**env, "VAULT_BACKUP_DIR": str(tmp_path / "explicit")})
    assert explicit.returncode == 0, explicit.stderr
    [chosen] = backup_files(tmp_path / "explicit")
    assert json.loads(chosen.read_text())["version"] == 2
    assert not [v for v in seeded["flask"].values() if v in first.stdout + first.stderr]

    client = client_for(base_config, VAULT_ENVIRONMENT=unique_env, VAULT_BACKUP_DIR=str(tmp_path / "restores"))
    assert restore(client, None, default).new_version == 4
    assert current(vault_root, unique_env, "flask") == (4, seeded["flask"])


def test_kv1_writes_back_up_first_without_check_and_set(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, backups: Path
) -> None:
    mount = f"kv1-{uuid.uuid4().hex[:8]}"
    vault_root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    try:
        client = client_for(
            base_config, VAULT_MOUNT_POINT=mount, VAULT_ENVIRONMENT=unique_env, VAULT_BACKUP_DIR=str(backups)
        )
        assert client.set_secret("stripe", {"key": "kv1-first-key-1234"}) is None
        assert client.rotate_secret("stripe", "key") is None
        [backup] = backup_files(backups)
        assert backup_data(backup) == {"key": "kv1-first-key-1234"}
        with pytest.raises(VaultConfigError, match="KV v2"):
            client.set_secret("stripe", {"key": "x"}, cas=1)
    finally:
        vault_root.sys.disable_secrets_engine(mount)


def test_a_backup_that_cannot_be_written_stops_the_write(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path, audit: Audit
) -> None:
    seeded = seed_env(vault_root, unique_env)
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    client = client_for(base_config, VAULT_ENVIRONMENT=unique_env, VAULT_BACKUP_DIR=str(not_a_directory / "backups"))
    with pytest.raises(BackupError, match="VAULT_BACKUP_DIR") as refused:
        client.rotate_secret("flask", "secret_key")
    assert "Nothing was changed in Vault" in str(refused.value)
    assert current(vault_root, unique_env, "flask") == (1, seeded["flask"])
    assert [f["outcome"] for f in audit("rotate")] == ["BackupError"]
    assert not audit("write")
