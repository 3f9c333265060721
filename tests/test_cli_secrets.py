"""`flask vault` get/put/list/versions/rotate/rollback/backup/backups/restore on a real OpenBao."""

from __future__ import annotations

import json
import logging
import random
import re
import stat
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask

from flask_vault import SecretNotFoundError
from tests.rotation_support import (
    PREFIX,
    backup_data,
    backup_files,
    current,
    make_cli_app,
    seed_env,
    values_of,
    vault,
)

BACKUP_NAME = re.compile(r"^(?P<name>[\w.-]+)_(?P<env>[\w.-]+)_\d{8}T\d{6}\.\d{6}Z(-\d+)?\.json$")
REPORTED = re.compile(r"version (\d+|-) -> (\d+)")


@pytest.fixture
def env(vault_root: hvac.Client, unique_env: str) -> str:
    return unique_env


@pytest.fixture
def seeded_env(vault_root: hvac.Client, env: str) -> dict[str, dict[str, Any]]:
    return seed_env(vault_root, env, extra={"payments": {"api_key": "pay-key-7f3a9c1e5b", "webhook": "hook-2d8e4f6a"}})


@pytest.fixture
def cli_app(base_config: dict[str, Any], env: str, seeded_env: dict, tmp_path: Path) -> Flask:
    return make_cli_app(base_config, env, tmp_path)


@pytest.fixture
def backup_dir(cli_app: Flask) -> Path:
    return Path(cli_app.instance_path) / "vault-backups"


def reported_version(output: str) -> int:
    found = REPORTED.findall(output)
    assert found, output
    return int(found[-1][1])


# -- get, list, versions, put -------------------------------------------------------------


def test_get_masks_every_value_unless_reveal(cli_app: Flask, seeded_env: dict) -> None:
    flask_secret = seeded_env["flask"]
    masked = vault(cli_app, "get", "flask")
    assert masked.exit_code == 0, masked.output
    assert "secret_key: ********" in masked.output and "jwt_secret: ********" in masked.output
    assert not values_of(flask_secret) & set(masked.output.split())
    assert all(v not in masked.output for v in flask_secret.values())
    one = vault(cli_app, "get", "flask", "--field", "secret_key")
    assert one.output.strip() == "********"
    revealed = vault(cli_app, "get", "flask", "--reveal")
    assert all(v in revealed.output for v in flask_secret.values())
    raw = vault(cli_app, "get", "flask", "--field", "secret_key", "--reveal")
    assert raw.output == flask_secret["secret_key"] + "\n"


def test_get_missing_field_lists_field_names_not_values(cli_app: Flask, seeded_env: dict) -> None:
    result = vault(cli_app, "get", "flask", "--field", "nope")
    assert result.exit_code == 1
    assert "fields present: jwt_secret, secret_key" in result.output
    assert all(v not in result.output for v in seeded_env["flask"].values())


def test_get_version_reads_an_old_version(cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/flask", {"secret_key": "x" * 20})
    old = vault(cli_app, "get", "flask", "--version", "1", "--field", "secret_key", "--reveal")
    assert old.output.strip() == seeded_env["flask"]["secret_key"]


def test_list_and_versions_show_names_and_versions_only(
    cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict
) -> None:
    listed = vault(cli_app, "list")
    assert listed.exit_code == 0
    assert listed.output.split() == ["database", "flask", "payments"]
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/flask", {"secret_key": "y" * 20})
    versions = vault(cli_app, "versions", "flask")
    assert versions.exit_code == 0, versions.output
    lines = versions.output.splitlines()
    assert "current version 2" in lines[0]
    assert lines[1].split()[:1] == ["VERSION"]
    assert [line.split()[0] for line in lines[2:]] == ["2", "1"]
    assert "current" in lines[2]
    assert "y" * 20 not in versions.output


def test_put_from_file_replaces_data_and_backs_up_the_old(
    cli_app: Flask, vault_root: hvac.Client, env: str, tmp_path: Path, backup_dir: Path
) -> None:
    source = tmp_path / "payments.json"
    source.write_text(json.dumps({"api_key": "new-pay-key-91b2c3d4"}))
    result = vault(cli_app, "put", "payments", "--from-file", str(source), "--yes")
    assert result.exit_code == 0, result.output
    assert "new-pay-key-91b2c3d4" not in result.output
    version, data = current(vault_root, env, "payments")
    assert (version, data) == (2, {"api_key": "new-pay-key-91b2c3d4"})
    assert reported_version(result.output) == 2
    [backup] = backup_files(backup_dir)
    assert backup_data(backup) == {"api_key": "pay-key-7f3a9c1e5b", "webhook": "hook-2d8e4f6a"}


def test_put_from_stdin_json_or_one_field_and_merge(cli_app: Flask, vault_root: hvac.Client, env: str) -> None:
    created = vault(cli_app, "put", "stripe", "--yes", input='{"secret": "sk-live-abc123456", "public": "pk-1"}')
    assert created.exit_code == 0, created.output
    assert current(vault_root, env, "stripe") == (1, {"secret": "sk-live-abc123456", "public": "pk-1"})
    merged = vault(cli_app, "put", "stripe", "--field", "secret", "--merge", "--yes", input="sk-live-rotated-999\n")
    assert merged.exit_code == 0, merged.output
    assert current(vault_root, env, "stripe") == (2, {"secret": "sk-live-rotated-999", "public": "pk-1"})
    dotenv = vault(cli_app, "put", "stripe", "--yes", input="secret=a=b=c\npublic=pk-2\n")
    assert dotenv.exit_code == 0, dotenv.output
    assert current(vault_root, env, "stripe") == (3, {"secret": "a=b=c", "public": "pk-2"})
    for result in (created, merged, dotenv):
        assert "sk-live" not in result.output


def test_put_prompts_with_hidden_input_on_a_terminal(
    cli_app: Flask, vault_root: hvac.Client, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("flask_vault.cli._interactive", lambda: True)
    value = "typed-secret-5e6f7a8b"
    result = vault(cli_app, "put", "typed", "--field", "token", input=f"{value}\n{value}\ny\n")
    assert result.exit_code == 0, result.output
    assert "Value for token" in result.output and "Write token to" in result.output
    assert value not in result.output
    assert current(vault_root, env, "typed") == (1, {"token": value})


def test_put_never_takes_values_from_arguments(cli_app: Flask) -> None:
    result = vault(cli_app, "put", "stripe", "secret=sk-live-in-argv", "--yes")
    assert result.exit_code == 2
    assert "1 more argument(s) were given (not shown" in result.output
    assert "sk-live-in-argv" not in result.output
    empty = vault(cli_app, "put", "stripe", "--yes", input="")
    assert empty.exit_code == 1 and "No data on stdin" in empty.output


# -- rotate ------------------------------------------------------------------------------


def test_rotate_flask_rotates_both_keys_after_a_0600_backup(
    cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict, backup_dir: Path
) -> None:
    result = vault(cli_app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 0, result.output
    version, data = current(vault_root, env, "flask")
    assert version == 2 == reported_version(result.output)
    old = seeded_env["flask"]
    assert data["secret_key"] != old["secret_key"] and data["jwt_secret"] != old["jwt_secret"]
    assert len(data["secret_key"]) == 64 and len(data["jwt_secret"]) == 64
    assert not (set(data.values()) | set(old.values())) & set(re.split(r"[\s;:,()]+", result.output))
    [backup] = backup_files(backup_dir)
    match = BACKUP_NAME.match(backup.name)
    assert match and match["name"] == "flask" and match["env"] == env
    assert stat.S_IMODE(backup_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    document = json.loads(backup.read_text())
    assert document["data"] == old
    assert document["path"] == f"secret/{PREFIX}/{env}/flask" and document["version"] == 1
    assert document["checksum"].startswith("sha256:")
    assert not [p for p in backup_dir.iterdir() if p.name.startswith(".tmp")]


@pytest.mark.parametrize(
    ("args", "says"),
    [((), "Give --all or --secret NAME."), (("--all", "--secret", "flask"), "Give --all or --secret NAME, not both.")],
)
def test_rotate_says_which_of_all_and_secret_to_give(cli_app: Flask, args: tuple[str, ...], says: str) -> None:
    result = vault(cli_app, "rotate", *args, "--dry-run")
    assert result.exit_code == 2 and says in result.output


def test_rotate_plaintext_backups_warn_in_one_line(cli_app: Flask) -> None:
    result = vault(cli_app, "rotate", "--secret", "flask", "--yes")
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "VAULT_BACKUP_TRANSIT_KEY" in warnings[0] and "plaintext" in warnings[0]


def test_rotate_one_field_keeps_the_others(cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict) -> None:
    result = vault(cli_app, "rotate", "--secret", "flask", "--field", "jwt_secret", "--yes")
    assert result.exit_code == 0, result.output
    _, data = current(vault_root, env, "flask")
    assert data["secret_key"] == seeded_env["flask"]["secret_key"]
    assert data["jwt_secret"] != seeded_env["flask"]["jwt_secret"]


def test_default_rules_rotate_the_default_fields_that_exist(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    seed_env(vault_root, env, extra={"flask": {"secret_key": "only-a-secret-key-123"}})
    only_key = {"SECRET_KEY": "flask#secret_key"}
    app = make_cli_app(base_config, env, tmp_path, VAULT_SECRETS=only_key)
    result = vault(app, "rotate", "--all", "--yes")
    assert result.exit_code == 0, result.output
    version, data = current(vault_root, env, "flask")
    assert version == 2 and list(data) == ["secret_key"] and data["secret_key"] != "only-a-secret-key-123"
    strict = make_cli_app(
        base_config,
        env,
        tmp_path / "strict",
        VAULT_SECRETS=only_key,
        VAULT_ROTATION={"flask": ["secret_key", "jwt_secret"]},
    )
    refused = vault(strict, "rotate", "--secret", "flask", "--yes")
    assert refused.exit_code == 1 and "no field 'jwt_secret' to rotate" in refused.output


def test_rotate_uses_the_configured_length_alphabet_and_generator(
    base_config: dict, vault_root: hvac.Client, env: str, seeded_env: dict, tmp_path: Path
) -> None:
    app = make_cli_app(
        base_config,
        env,
        tmp_path,
        VAULT_ROTATION={
            "flask": {"secret_key": {"length": 30, "alphabet": "alphanumeric"}},
            "payments": {"webhook": {"generator": lambda secret, field: f"whsec_{secret}_{field}_{uuid.uuid4().hex}"}},
        },
    )
    assert vault(app, "rotate", "--secret", "flask", "--yes").exit_code == 0
    _, flask_data = current(vault_root, env, "flask")
    assert len(flask_data["secret_key"]) == 30 and flask_data["secret_key"].isalnum()
    assert flask_data["jwt_secret"] == seeded_env["flask"]["jwt_secret"]  # the user's list replaces the default
    assert vault(app, "rotate", "--secret", "payments", "--yes").exit_code == 0
    _, payments = current(vault_root, env, "payments")
    assert payments["webhook"].startswith("whsec_payments_webhook_")
    assert payments["api_key"] == seeded_env["payments"]["api_key"]


def test_rotate_refuses_a_secret_without_settings_and_shows_how_to_add_them(
    cli_app: Flask, vault_root: hvac.Client, env: str, backup_dir: Path
) -> None:
    result = vault(cli_app, "rotate", "--secret", "payments", "--yes")
    assert result.exit_code == 1
    assert "No rotation settings for 'payments'" in result.output
    assert 'VAULT_ROTATION = {"payments": {"api_key": {"length": 64}}}' in result.output
    assert "--field api_key" in result.output
    assert current(vault_root, env, "payments")[0] == 1
    assert not backup_files(backup_dir)


@pytest.mark.parametrize("field", ["host", "port", "username", "database", "url"])
def test_rotate_never_touches_connection_fields(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path, field: str
) -> None:
    seed_env(vault_root, env, extra={"pg": {"host": "h", "port": 1, "username": "u", "database": "d", "url": "x"}})
    app = make_cli_app(base_config, env, tmp_path)
    result = vault(app, "rotate", "--secret", "pg", "--field", field, "--yes")
    assert result.exit_code == 1
    assert "never rotates" in result.output
    assert current(vault_root, env, "pg")[0] == 1


def test_rotate_dry_run_changes_nothing(cli_app: Flask, vault_root: hvac.Client, env: str, backup_dir: Path) -> None:
    result = vault(cli_app, "rotate", "--secret", "flask", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would rotate" in result.output and "version 1 -> 2" in result.output
    every = vault(cli_app, "rotate", "--all", "--dry-run")
    assert every.exit_code == 0, every.output
    assert "would rotate" in every.output
    assert current(vault_root, env, "flask")[0] == 1
    assert not backup_files(backup_dir)


def test_rotate_needs_all_or_secret(cli_app: Flask) -> None:
    assert vault(cli_app, "rotate").exit_code == 2
    assert vault(cli_app, "rotate", "--all", "--secret", "flask").exit_code == 2
    assert vault(cli_app, "rotate", "--all", "--field", "secret_key").exit_code == 2


def test_rotate_all_prints_a_summary_table(
    base_config: dict, vault_root: hvac.Client, env: str, seeded_env: dict, tmp_path: Path
) -> None:
    app = make_cli_app(base_config, env, tmp_path, VAULT_ROTATION={"payments": ["webhook"], "ghost": ["key"]})
    result = vault(app, "rotate", "--all", "--yes")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.output.splitlines() if line and not line.startswith("warning")}
    assert "rotated" in rows["flask"] and "1 -> 2" in rows["flask"]
    assert "rotated" in rows["payments"]
    assert "skipped: fields not present" in rows["database"]  # the default rule on a URL-only secret
    assert "skipped: not in Vault" in rows["ghost"]
    assert current(vault_root, env, "flask")[0] == 2 and current(vault_root, env, "payments")[0] == 2
    assert "rotating" not in result.output  # no progress bar without a terminal


def test_rotate_all_shows_a_progress_bar_on_a_terminal(cli_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("flask_vault.cli._stdout_is_terminal", lambda: True)
    monkeypatch.setattr("click._termui_impl.isatty", lambda stream: True)
    result = vault(cli_app, "rotate", "--all", "--yes")
    assert result.exit_code == 0, result.output
    assert "rotating" in result.output and "2/2" in result.output


def test_rotate_all_reports_failures_and_exits_non_zero(
    base_config: dict, vault_root: hvac.Client, env: str, seeded_env: dict, tmp_path: Path
) -> None:
    app = make_cli_app(base_config, env, tmp_path, VAULT_ROTATION={"payments": ["missing_field"]})
    result = vault(app, "rotate", "--all", "--yes")
    assert result.exit_code == 1
    assert "FAILED (1)" in result.output and "(1) payments:" in result.output
    assert "1 of 3 rotation(s) failed" in result.output
    assert current(vault_root, env, "flask")[0] == 2  # the others still rotated


def test_confirmation_on_a_terminal_can_abort(
    cli_app: Flask, vault_root: hvac.Client, env: str, monkeypatch: pytest.MonkeyPatch, backup_dir: Path
) -> None:
    monkeypatch.setattr("flask_vault.cli._interactive", lambda: True)
    refused = vault(cli_app, "rotate", "--secret", "flask", input="n\n")
    assert refused.exit_code == 1 and "Rotate secret_key, jwt_secret of" in refused.output
    assert current(vault_root, env, "flask")[0] == 1 and not backup_files(backup_dir)
    accepted = vault(cli_app, "rotate", "--secret", "flask", "--yes")
    assert accepted.exit_code == 0 and "[y/N]" not in accepted.output
    assert current(vault_root, env, "flask")[0] == 2
    rollback = vault(cli_app, "rollback", "flask", "--version", "1", input="n\n")
    assert rollback.exit_code == 1 and "Aborted" in rollback.output
    assert current(vault_root, env, "flask")[0] == 2


def test_a_lost_check_and_set_reports_a_conflict_and_changes_nothing(
    cli_app: Flask, vault_root: hvac.Client, env: str
) -> None:
    client = cli_app.extensions["vault"].client
    read_version = client.read_version
    theirs = {"secret_key": "their-key-0a1b2c3d4e", "jwt_secret": "their-jwt-5f6a7b8c9d"}

    def read_then_someone_writes(name: str, version: int | None = None) -> Any:
        entry = read_version(name, version)
        vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/flask", theirs)
        return entry

    client.read_version = read_then_someone_writes
    result = vault(cli_app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 1
    assert "Conflict" in result.output and "Nothing was written" in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("Error")]) == 1
    assert current(vault_root, env, "flask") == (2, theirs)


def test_writes_work_on_a_mount_with_cas_required(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    mount = f"kv-cas-{uuid.uuid4().hex[:8]}"
    vault_root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    try:
        vault_root.secrets.kv.v2.configure(cas_required=True, mount_point=mount)
        seed_env(vault_root, env, mount=mount)
        app = make_cli_app(base_config, env, tmp_path, VAULT_MOUNT_POINT=mount)
        assert vault(app, "rotate", "--secret", "flask", "--yes").exit_code == 0
        assert vault(app, "rollback", "flask", "--version", "1", "--yes").exit_code == 0
        [_, rotated] = backup_files(Path(app.instance_path) / "vault-backups")  # version 2, before the rollback
        assert vault(app, "restore", str(rotated), "--yes").exit_code == 0
        assert vault(app, "put", "fresh", "--yes", input='{"k": "v"}').exit_code == 0
        assert vault(app, "put", "fresh", "--field", "k", "--yes", input="w").exit_code == 0
        assert current(vault_root, env, "flask", mount)[0] == 4
        assert current(vault_root, env, "fresh", mount) == (2, {"k": "w"})
    finally:
        vault_root.sys.disable_secrets_engine(mount)


def test_kv1_mount_is_refused_for_versioned_writes(
    base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    mount = f"kv1-{uuid.uuid4().hex[:8]}"
    vault_root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    try:
        for name in ("flask", "database"):
            data = {"secret_key": "k" * 20, "jwt_secret": "j" * 20} if name == "flask" else {"url": "sqlite://"}
            vault_root.secrets.kv.v1.create_or_update_secret(f"{PREFIX}/{env}/{name}", data, mount_point=mount)
        app = make_cli_app(base_config, env, tmp_path, VAULT_MOUNT_POINT=mount)
        result = vault(app, "rotate", "--secret", "flask", "--yes")
        assert result.exit_code == 1 and "needs a KV v2 mount" in result.output
        assert vault(app, "get", "flask").exit_code == 0
        put = vault(app, "put", "flask", "--field", "jwt_secret", "--merge", "--yes", input="v1-jwt-value-123")
        assert put.exit_code == 0, put.output
        stored = vault_root.secrets.kv.v1.read_secret(f"{PREFIX}/{env}/flask", mount_point=mount)["data"]
        assert stored == {"secret_key": "k" * 20, "jwt_secret": "v1-jwt-value-123"}
        assert len(backup_files(Path(app.instance_path) / "vault-backups")) == 1
    finally:
        vault_root.sys.disable_secrets_engine(mount)


# -- rollback ----------------------------------------------------------------------------


def test_rollback_writes_the_old_data_as_a_new_version(
    cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict
) -> None:
    assert vault(cli_app, "rotate", "--secret", "flask", "--yes").exit_code == 0
    result = vault(cli_app, "rollback", "flask", "--version", "1", "--yes")
    assert result.exit_code == 0, result.output
    assert current(vault_root, env, "flask") == (3, seeded_env["flask"])
    assert reported_version(result.output) == 3
    history = vault_root.secrets.kv.v2.read_secret_metadata(f"{PREFIX}/{env}/flask")["data"]["versions"]
    assert sorted(history) == ["1", "2", "3"]


def test_rollback_to_a_missing_or_deleted_version_fails_clearly(
    cli_app: Flask, vault_root: hvac.Client, env: str
) -> None:
    missing = vault(cli_app, "rollback", "flask", "--version", "7", "--yes")
    assert missing.exit_code == 1 and "has no version 7" in missing.output
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/flask", {"secret_key": "z" * 20})
    vault_root.secrets.kv.v2.delete_secret_versions(f"{PREFIX}/{env}/flask", [1])
    deleted = vault(cli_app, "rollback", "flask", "--version", "1", "--yes")
    assert deleted.exit_code == 1 and "deleted, destroyed" in deleted.output
    assert current(vault_root, env, "flask")[0] == 2


# -- backup, backups, restore -------------------------------------------------------------


def test_backup_all_and_backups_lists_newest_first(cli_app: Flask, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    result = vault(cli_app, "backup", "--all", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert len(backup_files(out)) == 3
    assert vault(cli_app, "backup", "flask").exit_code == 0
    listing = vault(cli_app, "backups", "--dir", str(out))
    assert listing.exit_code == 0
    names = [line.split()[1] for line in listing.output.splitlines()[2:]]
    assert names == ["payments", "flask", "database"]  # --all backs up in name order, newest is last
    default = vault(cli_app, "backups")
    assert "flask" in default.output and "plaintext" in default.output and " ok" in default.output
    assert vault(cli_app, "backup").exit_code == 2


def test_restore_round_trip(
    cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict, backup_dir: Path
) -> None:
    assert vault(cli_app, "rotate", "--secret", "flask", "--yes").exit_code == 0
    [backup] = backup_files(backup_dir)
    result = vault(cli_app, "restore", str(backup), "--yes")
    assert result.exit_code == 0, result.output
    assert current(vault_root, env, "flask") == (3, seeded_env["flask"])
    assert reported_version(result.output) == 3
    assert len(backup_files(backup_dir)) == 2  # the rotated data was backed up before the restore


def _tamper(path: Path, change: str) -> None:
    text = path.read_text()
    if change == "truncate":
        path.write_text(text[: len(text) // 2])
    elif change == "value":
        document = json.loads(text)
        document["data"]["secret_key"] = "attacker-chosen-key"
        path.write_text(json.dumps(document))
    elif change == "environment":
        document = json.loads(text)
        document["environment"] = "production"
        path.write_text(json.dumps(document))
    elif change == "empty":
        path.write_text("")
    elif change == "not-a-backup":
        path.write_text('{"secret_key": "x"}')


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("truncate", "truncated or damaged"),
        ("value", "edited or damaged"),
        ("environment", "edited or damaged"),
        ("empty", "truncated or damaged"),
        ("not-a-backup", "not a flask-vault backup"),
    ],
)
def test_restore_refuses_a_tampered_or_truncated_file_and_leaves_vault_unchanged(
    cli_app: Flask, vault_root: hvac.Client, env: str, backup_dir: Path, change: str, message: str
) -> None:
    assert vault(cli_app, "rotate", "--secret", "flask", "--yes").exit_code == 0
    before = current(vault_root, env, "flask")
    [backup] = backup_files(backup_dir)
    _tamper(backup, change)
    result = vault(cli_app, "restore", str(backup), "--yes")
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert current(vault_root, env, "flask") == before
    assert backup_files(backup_dir) == [backup]
    if change == "environment":
        assert f"names environment 'production', not this app's {env!r}" in result.output


def test_restore_refuses_a_backup_from_another_environment(
    base_config: dict, vault_root: hvac.Client, env: str, seeded_env: dict, tmp_path: Path, cli_app: Flask
) -> None:
    other_env = f"{env}-prod"
    seed_env(vault_root, other_env)
    other = make_cli_app(base_config, other_env, tmp_path / "other")
    assert vault(other, "backup", "flask", "--out", str(tmp_path / "foreign")).exit_code == 0
    [foreign] = backup_files(tmp_path / "foreign")
    result = vault(cli_app, "restore", str(foreign), "--yes")
    assert result.exit_code == 1
    assert f"environment {other_env!r}" in result.output and f"this app uses environment {env!r}" in result.output
    assert current(vault_root, env, "flask") == (1, seeded_env["flask"])


def test_restore_of_a_missing_file_says_where_backups_are_listed(cli_app: Flask, tmp_path: Path) -> None:
    result = vault(cli_app, "restore", str(tmp_path / "nope.json"), "--yes")
    assert result.exit_code == 1 and "flask vault backups" in result.output


def test_backups_flags_damaged_files(cli_app: Flask, backup_dir: Path) -> None:
    assert vault(cli_app, "backup", "flask").exit_code == 0
    [backup] = backup_files(backup_dir)
    _tamper(backup, "value")
    listing = vault(cli_app, "backups")
    assert "DAMAGED" in listing.output and "attacker-chosen-key" not in listing.output


def test_transit_encrypted_backups_hold_no_plaintext_and_restore(
    base_config: dict,
    vault_root: hvac.Client,
    env: str,
    seeded_env: dict,
    tmp_path: Path,
    transit: tuple[str, str],
) -> None:
    mount, key = transit
    app = make_cli_app(base_config, env, tmp_path, VAULT_TRANSIT_MOUNT=mount, VAULT_BACKUP_TRANSIT_KEY=key)
    rotated = vault(app, "rotate", "--secret", "flask", "--yes")
    assert rotated.exit_code == 0, rotated.output
    assert "warning" not in rotated.output
    [backup] = backup_files(Path(app.instance_path) / "vault-backups")
    raw = backup.read_text()
    assert all(value not in raw for value in seeded_env["flask"].values())
    document = json.loads(raw)
    assert "data" not in document and document["ciphertext"].startswith("vault:v")
    assert document["encryption"] == {"engine": "transit", "mount": mount, "key": key}
    restored = vault(app, "restore", str(backup), "--yes")
    assert restored.exit_code == 0, restored.output
    assert current(vault_root, env, "flask") == (3, seeded_env["flask"])
    assert "transit" in vault(app, "backups").output


def test_an_encrypted_backup_with_a_rewritten_header_does_not_decrypt(
    base_config: dict, vault_root: hvac.Client, env: str, seeded_env: dict, tmp_path: Path, transit: tuple[str, str]
) -> None:
    from flask_vault.ops.backup import _checksum

    mount, key = transit
    app = make_cli_app(base_config, env, tmp_path, VAULT_TRANSIT_MOUNT=mount, VAULT_BACKUP_TRANSIT_KEY=key)
    assert vault(app, "backup", "flask").exit_code == 0
    [backup] = backup_files(Path(app.instance_path) / "vault-backups")
    document = json.loads(backup.read_text())
    document["version"] = 99  # an attacker who also recomputes the checksum
    document["checksum"] = _checksum(document)
    backup.write_text(json.dumps(document))
    before = current(vault_root, env, "flask")
    result = vault(app, "restore", str(backup), "--yes")
    assert result.exit_code == 1 and "would not decrypt" in result.output
    assert current(vault_root, env, "flask") == before


# -- errors and leaks ------------------------------------------------------------------------


def test_errors_are_one_line_and_debug_shows_the_traceback(cli_app: Flask) -> None:
    plain = vault(cli_app, "get", "nothing-here")
    assert plain.exit_code == 1
    assert plain.output.startswith("Error: No secret at secret/store-erp/")
    assert len(plain.output.strip().splitlines()) == 1
    debug = vault(cli_app, "get", "nothing-here", "--debug")
    assert debug.exit_code == 1
    assert isinstance(debug.exception, SecretNotFoundError)


def test_twenty_random_rotations_rollbacks_and_restores_lose_no_value(
    cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict, backup_dir: Path
) -> None:
    rng = random.Random(4)
    held = [dict(seeded_env["flask"])]
    last_reported = 1
    unchanged = 0
    outputs = []
    for _ in range(20):
        version, _ = current(vault_root, env, "flask")
        choice = rng.choice(["rotate", "rollback", "restore"])
        files = backup_files(backup_dir)
        meta = vault_root.secrets.kv.v2.read_secret_metadata(f"{PREFIX}/{env}/flask")["data"]
        oldest = max(1, int(meta["oldest_version"]))  # KV keeps max_versions (10 here); backups keep the rest
        if choice == "rollback" and version > oldest:
            target = rng.randint(oldest, version - 1)
            result = vault(cli_app, "rollback", "flask", "--version", str(target), "--yes")
        elif choice == "restore" and files:
            result = vault(cli_app, "restore", str(rng.choice(files)), "--yes")
        else:
            field = rng.choice([None, "secret_key", "jwt_secret"])
            args = ["--field", field] if field else []
            result = vault(cli_app, "rotate", "--secret", "flask", *args, "--yes")
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
        if result.output.startswith("unchanged "):  # the data it brings back is the current data
            assert current(vault_root, env, "flask")[0] == version
            unchanged += 1
        else:
            last_reported = reported_version(result.output)
        held.append(current(vault_root, env, "flask")[1])
    final_version, final_data = current(vault_root, env, "flask")
    assert final_version == last_reported == 21 - unchanged
    assert final_data == held[-1]
    recoverable = [backup_data(path) for path in backup_files(backup_dir)]
    kv = vault_root.secrets.kv.v2
    for number in range(1, final_version + 1):
        try:
            response = kv.read_secret_version(f"{PREFIX}/{env}/flask", version=number, raise_on_deleted_version=True)
        except hvac.exceptions.InvalidPath:
            continue  # older than max_versions: the backups must have it
        recoverable.append(response["data"]["data"])
    for data in held:
        assert data in recoverable
    screen = "\n".join(outputs)
    assert not any(value in screen for data in held for value in data.values())


def test_no_value_in_logs_or_reprs_at_debug_level(
    cli_app: Flask,
    vault_root: hvac.Client,
    env: str,
    seeded_env: dict,
    backup_dir: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from flask_vault.ops.backup import load_backup
    from flask_vault.ops.rotation import plan_rotation
    from flask_vault.rotation_rules import RotationRules

    caplog.set_level(logging.DEBUG)
    outputs = [
        vault(cli_app, *args).output
        for args in (
            ("rotate", "--secret", "flask", "--yes"),
            ("rollback", "flask", "--version", "1", "--yes"),
            ("backup", "--all"),
            ("get", "flask"),
            ("versions", "flask"),
            ("put", "payments", "--field", "api_key", "--merge", "--yes"),
        )
    ]
    outputs.append(vault(cli_app, "restore", str(backup_files(backup_dir)[0]), "--yes").output)
    client = cli_app.extensions["vault"].client
    with cli_app.app_context():
        reprs = [
            repr(load_backup(backup_files(backup_dir)[0], client)),
            repr(plan_rotation(client, "flask", RotationRules.from_config({}))),
            repr(RotationRules.from_config({})),
        ]
    metadata = vault_root.secrets.kv.v2.read_secret_metadata(f"{PREFIX}/{env}/flask")["data"]
    values = set(seeded_env["payments"].values())
    for number in metadata["versions"]:
        data = vault_root.secrets.kv.v2.read_secret_version(
            f"{PREFIX}/{env}/flask", version=int(number), raise_on_deleted_version=True
        )["data"]
        values |= set(data["data"].values())
    assert len(values) >= 6
    everything = "\n".join([caplog.text, *outputs, *reprs])
    assert [v for v in values if v in everything] == []


def test_the_commands_functions_work_without_the_cli(
    cli_app: Flask, vault_root: hvac.Client, env: str, seeded_env: dict, backup_dir: Path
) -> None:
    from flask_vault.ops.backup import BackupStore, restore
    from flask_vault.ops.rotation import rollback, rotate
    from flask_vault.rotation_rules import RotationRules

    with cli_app.app_context():
        store = BackupStore.for_app(cli_app)
        client = cli_app.extensions["vault"].client
        rotated = rotate(client, "flask", RotationRules.from_config({}), store)
        assert (rotated.old_version, rotated.new_version, rotated.fields) == (1, 2, ("jwt_secret", "secret_key"))
        assert rotated.backup is not None and backup_data(rotated.backup) == seeded_env["flask"]
        rolled = rollback(client, "flask", 1, store)
        assert rolled.new_version == 3 and current(vault_root, env, "flask")[1] == seeded_env["flask"]
        restored = restore(client, store, rolled.backup)  # the rotated data
        assert restored.new_version == 4
        assert current(vault_root, env, "flask")[1] == backup_data(rolled.backup)
        new_values = current(vault_root, env, "flask")[1].values()
        assert not any(v in repr(r) or v in repr(r.as_dict()) for r in (rotated, rolled, restored) for v in new_values)
