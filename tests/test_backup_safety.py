"""A crafted backup file can't steer a restore; the backup directory must be private.

Each attack edits a real backup written by the app and recomputes its checksum, as
anyone who can write to the backup directory can. ``requests_mock`` (passing every
request on to the real OpenBao server) records what is sent on the file's behalf.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests_mock
from flask import Flask

from flask_vault import BackupError, VaultClient
from flask_vault.ops.backup import BackupStore, load_backup
from flask_vault.state import get_state
from tests.rotation_support import backup_files, current, make_cli_app, seed_env, vault

ATTACKER_VALUE = "attacker-chosen-key-0b7e"


def recompute_checksum(document: dict[str, Any]) -> None:
    """What an attacker does after editing a file: the checksum is no secret."""
    body = {key: value for key, value in document.items() if key != "checksum"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    document["checksum"] = "sha256:" + hashlib.sha256(canonical).hexdigest()


def edit(file: Path, **changes: Any) -> None:
    document = json.loads(file.read_text())
    for key, value in changes.items():
        if key == "encryption_key" or key == "encryption_mount":
            document["encryption"][key.split("_", 1)[1]] = value
        else:
            document[key] = value
    recompute_checksum(document)
    file.write_text(json.dumps(document))


@pytest.fixture
def env(unique_env: str, vault_root: hvac.Client) -> str:
    seed_env(vault_root, unique_env)
    return unique_env


@pytest.fixture
def plain_app(base_config: dict[str, Any], env: str, tmp_path: Path) -> Flask:
    return make_cli_app(base_config, env, tmp_path / "plain")


@pytest.fixture
def sealed_app(base_config: dict[str, Any], env: str, tmp_path: Path, transit: tuple[str, str]) -> Flask:
    mount, key = transit
    return make_cli_app(base_config, env, tmp_path / "sealed", VAULT_TRANSIT_MOUNT=mount, VAULT_BACKUP_TRANSIT_KEY=key)


def one_backup(app: Flask) -> Path:
    assert vault(app, "backup", "flask").exit_code == 0
    [file] = backup_files(Path(app.instance_path) / "vault-backups")
    return file


def sent_paths(mocker: requests_mock.Mocker) -> list[str]:
    return [request.path for request in mocker.request_history]


# -- the file never picks where a request goes ------------------------------------------------


@pytest.mark.parametrize(
    ("mount", "key"),
    [("evil-transit", "backups"), (None, "other-key"), ("transit/../sys", "backups"), ("sys", "../seal")],
)
def test_a_file_naming_another_transit_mount_or_key_is_refused_before_any_request(
    sealed_app: Flask, vault_root: hvac.Client, env: str, transit: tuple[str, str], mount: str | None, key: str
) -> None:
    file = one_backup(sealed_app)
    edit(file, encryption_mount=mount or transit[0], encryption_key=key)
    before = current(vault_root, env, "flask")
    with requests_mock.Mocker(real_http=True) as sent:
        result = vault(sealed_app, "restore", str(file), "--yes")
    assert result.exit_code == 1, result.output
    assert "refusing it" in result.output.lower() and "Traceback" not in result.output
    assert sent.request_history == [], sent_paths(sent)
    assert current(vault_root, env, "flask") == before


def test_the_library_decrypts_with_the_configured_key_only(sealed_app: Flask, vault_root: hvac.Client) -> None:
    file = one_backup(sealed_app)
    evil = f"evil-{uuid.uuid4().hex[:6]}"
    vault_root.sys.enable_secrets_engine("transit", path=evil)
    try:
        vault_root.secrets.transit.create_key("backups", mount_point=evil)
        edit(file, encryption_mount=evil)
        client = get_state(sealed_app).client
        with requests_mock.Mocker(real_http=True) as sent, pytest.raises(BackupError, match="Only those are used"):
            load_backup(file, client)
        assert not any(evil in path for path in sent_paths(sent))
    finally:
        vault_root.sys.disable_secrets_engine(evil)


def test_nothing_is_sent_on_the_files_behalf_before_the_operator_confirms(
    sealed_app: Flask, vault_root: hvac.Client, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = one_backup(sealed_app)
    rotated = vault(sealed_app, "rotate", "--secret", "flask", "--yes")  # the restore then changes the secret
    assert rotated.exit_code == 0, rotated.output
    monkeypatch.setattr("flask_vault.cli._interactive", lambda: True)
    before = current(vault_root, env, "flask")
    with requests_mock.Mocker(real_http=True) as sent:
        refused = vault(sealed_app, "restore", str(file), input="n\n")
    assert refused.exit_code == 1 and "Aborted" in refused.output
    assert "Restore secret/store-erp/" in refused.output and "encrypted with Transit key 'backups'" in refused.output
    assert sent.request_history == [], sent_paths(sent)
    with requests_mock.Mocker(real_http=True) as sent:
        accepted = vault(sealed_app, "restore", str(file), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert any("/decrypt/backups" in path for path in sent_paths(sent))
    assert current(vault_root, env, "flask")[0] == before[0] + 1


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("prefix", "other-app", "app (prefix) 'other-app'"),
        ("mount", "kv", "mount 'kv'"),
        ("mount", "secret/../sys", "invalid mount"),
        ("environment", "production", "environment 'production'"),
        ("name", "../flask", "invalid name"),
        ("path", "secret/store-erp/x/../flask", "names the path"),
    ],
)
def test_a_file_naming_another_app_mount_or_environment_is_refused(
    plain_app: Flask, vault_root: hvac.Client, env: str, field: str, value: str, says: str
) -> None:
    file = one_backup(plain_app)
    edit(file, **{field: value}, data={"secret_key": ATTACKER_VALUE, "jwt_secret": ATTACKER_VALUE})
    before = current(vault_root, env, "flask")
    with requests_mock.Mocker(real_http=True) as sent:
        result = vault(plain_app, "restore", str(file), "--yes")
    assert result.exit_code == 1, result.output
    assert says in result.output and "nothing was sent to Vault" in result.output
    assert sent.request_history == []
    assert current(vault_root, env, "flask") == before


# -- plaintext downgrade ------------------------------------------------------------------------


def test_an_encrypting_app_refuses_a_plaintext_file_unless_allowed(
    plain_app: Flask, sealed_app: Flask, vault_root: hvac.Client, env: str
) -> None:
    forged = one_backup(plain_app)  # same app and environment, but never encrypted
    edit(forged, data={"secret_key": ATTACKER_VALUE, "jwt_secret": ATTACKER_VALUE})
    before = current(vault_root, env, "flask")
    with requests_mock.Mocker(real_http=True) as sent:
        refused = vault(sealed_app, "restore", str(forged), "--yes")
    assert refused.exit_code == 1, refused.output
    assert "holds plaintext data, but this app encrypts its backups" in refused.output
    assert "--allow-plaintext" in refused.output
    assert sent.request_history == []
    assert current(vault_root, env, "flask") == before
    allowed = vault(sealed_app, "restore", str(forged), "--yes", "--allow-plaintext")
    assert allowed.exit_code == 0, allowed.output
    assert current(vault_root, env, "flask")[1]["secret_key"] == ATTACKER_VALUE


def test_an_app_without_a_transit_key_does_not_decrypt_with_the_files_key(
    sealed_app: Flask, plain_app: Flask, vault_root: hvac.Client, env: str
) -> None:
    file = one_backup(sealed_app)
    with requests_mock.Mocker(real_http=True) as sent:
        result = vault(plain_app, "restore", str(file), "--yes")
    assert result.exit_code == 1 and "has no VAULT_BACKUP_TRANSIT_KEY" in result.output
    assert sent.request_history == []


def test_check_backup_verifies_without_asking_vault(sealed_app: Flask) -> None:
    from flask_vault.ops.backup import check_backup

    file = one_backup(sealed_app)
    client = get_state(sealed_app).client
    with requests_mock.Mocker() as sent:  # no real_http: any request would fail the test
        checked = check_backup(file, client)
    assert sent.request_history == []
    assert checked.transit == (client.settings.transit_mount, client.settings.backup_transit_key)
    assert "ciphertext" not in repr(checked)


# -- control characters from a file ---------------------------------------------------------------


def test_text_from_a_backup_file_reaches_the_terminal_escaped(
    plain_app: Flask, env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = one_backup(plain_app)
    edit(file, reason="\x1b[2J\x1b]0;owned\x07rotate\rok " + "x" * 5000)
    listing = vault(plain_app, "backups")
    assert listing.exit_code == 0
    assert "\x1b" not in listing.output and "\x07" not in listing.output and "\r" not in listing.output
    assert "\\x1b[2J\\x1b]0;owned\\x07rotate\\rok" in listing.output
    assert "x" * 500 not in listing.output  # bounded
    monkeypatch.setattr("flask_vault.cli._interactive", lambda: True)
    prompt = vault(plain_app, "restore", str(file), input="n\n")
    assert "\x1b" not in prompt.output and "\\x1b[2J" in prompt.output


def test_a_damaged_file_named_with_control_characters_is_listed_escaped(plain_app: Flask) -> None:
    directory = Path(plain_app.instance_path) / "vault-backups"
    one_backup(plain_app)
    (directory / "\x1b[31mred.json").write_text("{}")
    listing = vault(plain_app, "backups")
    assert "\x1b" not in listing.output and "\\x1b[31mred.json" in listing.output


# -- the backup directory ------------------------------------------------------------------------


def write_with_store(app: Flask, directory: Path) -> None:
    client: VaultClient = get_state(app).client
    store = BackupStore.for_client(client, directory)
    store.save("flask", client.read_version("flask"))


def test_a_missing_backup_directory_is_created_0700(plain_app: Flask, tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_with_store(plain_app, tmp_path / "made" / "here")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "made" / "here").stat().st_mode) == 0o700


def test_an_existing_backup_directory_open_to_others_is_refused_not_changed(
    base_config: dict[str, Any], env: str, vault_root: hvac.Client, tmp_path: Path
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    app = make_cli_app(base_config, env, tmp_path, VAULT_BACKUP_DIR=str(shared))
    before = current(vault_root, env, "flask")
    result = vault(app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 1
    assert "open to group or others (mode 755)" in result.output and f"chmod 700 {shared}" in result.output
    assert stat.S_IMODE(shared.stat().st_mode) == 0o755
    assert list(shared.iterdir()) == []
    assert current(vault_root, env, "flask") == before


def test_a_symlinked_backup_directory_is_refused(
    base_config: dict[str, Any], env: str, vault_root: hvac.Client, tmp_path: Path
) -> None:
    target = tmp_path / "system-dir"
    target.mkdir(mode=0o755)
    target.chmod(0o1777)
    link = tmp_path / "backups-link"
    link.symlink_to(target)
    app = make_cli_app(base_config, env, tmp_path, VAULT_BACKUP_DIR=str(link))
    result = vault(app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 1 and "is a symbolic link" in result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o1777
    assert list(target.iterdir()) == []
    assert current(vault_root, env, "flask")[0] == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")
def test_a_backup_directory_of_another_user_is_refused(
    base_config: dict[str, Any], env: str, vault_root: hvac.Client, tmp_path: Path
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 4242, -1)
    app = make_cli_app(base_config, env, tmp_path, VAULT_BACKUP_DIR=str(theirs))
    result = vault(app, "rotate", "--secret", "flask", "--yes")
    assert result.exit_code == 1 and "belongs to another user (uid 4242" in result.output
    assert current(vault_root, env, "flask")[0] == 1
