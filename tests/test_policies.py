"""The shipped app and rotator policies, applied to a real OpenBao server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask

from flask_vault.ops.policies import render_policy
from tests.rotation_support import PREFIX, backup_files, current, make_cli_app, seed_env, vault


@pytest.fixture
def env(vault_root: hvac.Client, unique_env: str) -> str:
    seed_env(vault_root, unique_env)
    return unique_env


def token_for(vault_root: hvac.Client, hcl: str, *, default_policy: bool = True) -> str:
    name = f"rot-test-{uuid.uuid4().hex[:8]}"
    vault_root.sys.create_or_update_policy(name, hcl)
    response = vault_root.auth.token.create(policies=[name], no_default_policy=not default_policy, ttl="10m")
    return str(response["auth"]["client_token"])


def app_with(base_config: dict[str, Any], env: str, tmp_path: Path, token: str, **config: Any) -> Flask:
    return make_cli_app(base_config, env, tmp_path, VAULT_TOKEN=token, **config)


def test_an_app_token_cannot_rotate_and_is_told_which_capability_it_lacks(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    token = token_for(vault_root, render_policy("app", prefix=PREFIX, environment=env))
    app = app_with(base_config, env, tmp_path, token)
    assert vault(app, "list").output.split() == ["database", "flask"]
    assert vault(app, "get", "flask").exit_code == 0
    result = vault(app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 1
    assert f"lacks the 'update' capability on secret/data/{PREFIX}/{env}/flask (it has: read)" in result.output
    assert "policies/rotator.hcl" in result.output
    assert token not in result.output
    assert current(vault_root, env, "flask")[0] == 1
    assert not backup_files(Path(app.instance_path) / "vault-backups")  # refused before the backup
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/flask", {"secret_key": "x" * 32})
    rollback = vault(app, "rollback", "flask", "--version", "1", "--yes")  # would change it: needs 'update'
    assert rollback.exit_code == 1 and "'update' capability" in rollback.output


def test_without_capabilities_self_the_refused_write_still_names_the_capability(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    token = token_for(vault_root, render_policy("app", prefix=PREFIX, environment=env), default_policy=False)
    app = app_with(base_config, env, tmp_path, token)
    result = vault(app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 1
    assert f"lacks the 'update' capability on secret/data/{PREFIX}/{env}/flask (it has: unknown)" in result.output
    assert current(vault_root, env, "flask")[0] == 1


def test_a_rotator_token_rotates_rolls_back_and_restores_with_encrypted_backups(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path, transit: tuple[str, str]
) -> None:
    mount, key = transit
    hcl = render_policy("rotator", prefix=PREFIX, environment=env, transit_mount=mount, transit_key=key)
    token = token_for(vault_root, hcl)
    app = app_with(base_config, env, tmp_path, token, VAULT_TRANSIT_MOUNT=mount, VAULT_BACKUP_TRANSIT_KEY=key)
    rotated = vault(app, "rotate", "--all", "--yes")
    assert rotated.exit_code == 0, rotated.output
    assert vault(app, "versions", "flask").exit_code == 0
    assert vault(app, "rollback", "flask", "--version", "1", "--yes").exit_code == 0
    [*_, rotated] = backup_files(Path(app.instance_path) / "vault-backups")  # flask version 2, before the rollback
    restored = vault(app, "restore", str(rotated), "--yes")
    assert restored.exit_code == 0, restored.output
    assert current(vault_root, env, "flask")[0] == 4
    client = hvac.Client(url=base_config["VAULT_URL"], token=token)
    with pytest.raises(hvac.exceptions.Forbidden):  # history cannot be erased with this token
        client.secrets.kv.v2.delete_metadata_and_all_versions(f"{PREFIX}/{env}/flask")
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.destroy_secret_versions(f"{PREFIX}/{env}/flask", [1])


def test_a_token_that_cannot_encrypt_backups_is_refused_before_anything_changes(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path, transit: tuple[str, str]
) -> None:
    mount, key = transit
    token = token_for(vault_root, render_policy("rotator", prefix=PREFIX, environment=env))  # no transit block
    app = app_with(base_config, env, tmp_path, token, VAULT_TRANSIT_MOUNT=mount, VAULT_BACKUP_TRANSIT_KEY=key)
    result = vault(app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 1
    assert f"lacks the 'update' capability on {mount}/encrypt/{key}" in result.output
    assert current(vault_root, env, "flask")[0] == 1


def test_list_on_kv2_data_paths_grants_nothing(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    seed_style = f'path "secret/data/{PREFIX}/{env}/*" {{\n  capabilities = ["read", "list"]\n}}\n'
    app = app_with(base_config, env, tmp_path, token_for(vault_root, seed_style))
    result = vault(app, "list")
    assert result.exit_code == 1 and "Permission denied" in result.output


def test_policy_command_prints_the_rendered_policy(base_config: dict, env: str, tmp_path: Path) -> None:
    app = make_cli_app(base_config, env, tmp_path, VAULT_BACKUP_TRANSIT_KEY="backups")
    result = vault(app, "policy", "rotator")
    assert result.exit_code == 0
    assert result.output == render_policy("rotator", prefix=PREFIX, environment=env, transit_key="backups")
