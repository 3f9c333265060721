"""The audit trail (flask_vault.observe.audit): one record per Vault operation, tagged with the
token's accessor hash, never a value; against the real server.

The token keeper owns what is known of the token; the trail only records, asking the
keeper for the ``token_id`` of the token in use.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from core_support import read_policy, token_with_policy
from observe_support import AuditCapture, Shown, capturing_audit, new_app

from flask_vault import VaultAuthError, VaultClient, VaultSettings
from flask_vault.observe.audit import accessor_hash
from tests.conftest import ENVIRONMENT, PREFIX

SHOWN = Shown()


@pytest.fixture
def audit_log(openbao_server: Any) -> Iterator[AuditCapture]:
    SHOWN.forbidden.add(openbao_server.root_token)
    with capturing_audit(SHOWN) as capture:
        yield capture


def test_audit_records_each_operation_with_an_accessor_hash_never_a_value(
    base_config: dict[str, Any], vault_root: hvac.Client, audit_log: AuditCapture, unique_env: str
) -> None:
    root_accessor = vault_root.auth.token.lookup_self()["data"]["accessor"]
    SHOWN.forbidden.add(root_accessor)
    app = new_app(base_config)
    client: VaultClient = app.extensions["vault"].client

    reads = [f for f in audit_log.fields("read") if f["path"].endswith(f"/{ENVIRONMENT}/flask")]
    assert len(reads) == 1
    read = reads[0]
    assert read["outcome"] == "ok" and isinstance(read["version"], int)
    assert read["token_id"] == accessor_hash(root_accessor)
    assert isinstance(read["duration_ms"], float)
    assert set(read) == {"operation", "path", "version", "outcome", "status", "duration_ms", "token_id"}

    with pytest.raises(Exception, match="No secret"):
        client.read("no-such-secret-here", use_cache=False)
    failed = audit_log.fields("read")[-1]
    assert (failed["outcome"], failed["status"]) == ("SecretNotFoundError", 404)
    assert failed["token_id"] == accessor_hash(root_accessor)
    assert audit_log.records[-1].levelno == logging.WARNING

    writer = VaultClient(settings=VaultSettings.load({**base_config, "VAULT_ENVIRONMENT": unique_env}, {}))
    value = f"written-value-{uuid.uuid4().hex}"
    SHOWN.forbidden.add(value)
    version = writer.set_secret("audited", {"api_key": value})
    write = audit_log.fields("write")[-1]
    assert (write["outcome"], write["version"], write["path"]) == (
        "ok",
        version,
        f"secret/{PREFIX}/{unique_env}/audited",
    )
    assert write["token_id"] == accessor_hash(root_accessor)

    rotated = writer.rotate_secret("audited", "api_key", f"rotated-{value}")  # records itself, once
    rotate = audit_log.fields("rotate")[-1]
    assert (rotate["outcome"], rotate["version"]) == ("ok", version + 1) == ("ok", rotated)
    with pytest.raises(KeyError), writer.trail.operation("rollback", writer.full_path("audited")):
        raise KeyError("boom")
    assert audit_log.fields("rollback")[-1]["outcome"] == "KeyError"
    assert writer.metrics.count("rotate", "ok") == 1


def test_rotate_backup_restore_and_rollback_each_leave_one_record(
    base_config: dict[str, Any], audit_log: AuditCapture, unique_env: str, tmp_path: Any
) -> None:
    from flask_vault.ops.backup import BackupStore, restore
    from flask_vault.ops.rotation import RotationRules, rollback, rotate

    client = VaultClient(settings=VaultSettings.load({**base_config, "VAULT_ENVIRONMENT": unique_env}, {}))
    first = f"first-api-key-{uuid.uuid4().hex}"
    SHOWN.forbidden.add(first)
    client.set_secret("payments", {"api_key": first})
    store = BackupStore(client, tmp_path / "backups")
    path = client.full_path("payments")
    audit_log.records.clear()

    rotated = rotate(client, "payments", RotationRules.from_config({"payments": ["api_key"]}), store)
    SHOWN.forbidden.add(str(client.get_secret("payments", "api_key", use_cache=False)))
    assert [(f["operation"], f["version"]) for f in audit_log.fields() if f["operation"] in ("backup", "rotate")] == [
        ("backup", 1),
        ("rotate", rotated.new_version),
    ]
    rolled = rollback(client, "payments", 1, store)
    assert rolled.new_version == 3
    assert rolled.backup is not None  # version 2, the rotated data: restoring it changes the secret again
    assert restore(client, store, rolled.backup).new_version == 4
    composite = [(f["operation"], f["outcome"], f["path"]) for f in audit_log.fields() if f["operation"] != "read"]
    assert ("rollback", "ok", path) in composite and ("restore", "ok", path) in composite
    assert [f["version"] for f in audit_log.fields("rollback")] == [3]
    assert [f["version"] for f in audit_log.fields("restore")] == [4]
    assert len(audit_log.fields("backup")) == 3  # every write backs the current version up first


@pytest.fixture
def approle_login(base_config: dict[str, Any], vault_root: hvac.Client) -> dict[str, Any]:
    """Settings that log in with a fresh AppRole (own mount) whose tokens have the default policy."""
    mount = f"approle-audit-{uuid.uuid4().hex[:6]}"
    vault_root.sys.enable_auth_method("approle", path=mount)
    vault_root.write(f"auth/{mount}/role/app", token_ttl="10m", token_max_ttl="1h", token_policies="default")
    role_id = vault_root.read(f"auth/{mount}/role/app/role-id")["data"]["role_id"]
    secret_id = vault_root.write(f"auth/{mount}/role/app/secret-id")["data"]["secret_id"]
    SHOWN.forbidden.update({role_id, secret_id})
    without_token = {k: v for k, v in base_config.items() if k != "VAULT_TOKEN"}
    return {
        **without_token,
        "VAULT_AUTH_METHOD": "approle",
        "VAULT_APPROLE_MOUNT": mount,
        "VAULT_ROLE_ID": role_id,
        "VAULT_SECRET_ID": secret_id,
    }


def test_login_and_renewal_records_carry_the_hash_of_the_new_tokens_accessor(
    approle_login: dict[str, Any], vault_root: hvac.Client, audit_log: AuditCapture
) -> None:
    client = VaultClient(settings=VaultSettings.load(approle_login, {}))
    try:
        client.keeper.start()
        token = client.token
        assert token
        accessor = vault_root.auth.token.lookup(token)["data"]["accessor"]
        SHOWN.forbidden.update({token, accessor})
        path = f"auth/{approle_login['VAULT_APPROLE_MOUNT']}/login"
        login = audit_log.fields("login")[-1]
        assert (login["outcome"], login["path"], login["token_id"]) == ("ok", path, accessor_hash(accessor))
        assert client.keeper.token_id == accessor_hash(accessor)

        client.keeper.renew()
        renew = audit_log.fields("renew")[-1]
        assert (renew["outcome"], renew["token_id"]) == ("ok", accessor_hash(accessor))
        assert (client.keeper.stats.logins, client.keeper.stats.renewals) == (1, 1)
        assert client.keeper.last_login == "ok"
    finally:
        client.keeper.close(revoke=False)

    refused = VaultClient(settings=VaultSettings.load({**approle_login, "VAULT_SECRET_ID": "wrong-secret-id"}, {}))
    with pytest.raises(VaultAuthError):  # a refused login is recorded with its outcome
        refused.keeper.start()
    assert audit_log.fields("login")[-1]["outcome"] != "ok"
    assert refused.keeper.last_login == "VaultAuthError"
    assert refused.keeper.stats.login_failures == 1


def test_a_token_given_as_is_is_looked_up_once_for_its_accessor(
    base_config: dict[str, Any], vault_root: hvac.Client, audit_log: AuditCapture
) -> None:
    token = token_with_policy(vault_root, read_policy("secret", f"{PREFIX}/{ENVIRONMENT}/*"))
    SHOWN.forbidden.add(token)
    accessor = vault_root.auth.token.lookup(token)["data"]["accessor"]
    SHOWN.forbidden.add(accessor)
    client = VaultClient(settings=VaultSettings.load({**base_config, "VAULT_TOKEN": token}, {}))
    for _ in range(3):
        client.read("flask", use_cache=False)
    assert [f["token_id"] for f in audit_log.fields("read")] == [accessor_hash(accessor)] * 3
    assert len(audit_log.fields("lookup")) <= 1  # once per token at most, not per request
    assert client.keeper.token_id == accessor_hash(accessor)  # the keeper learnt it, the trail only asked


def test_without_the_audit_logger_no_lookup_is_made_to_learn_an_accessor(
    base_config: dict[str, Any], vault_root: hvac.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.getLogger("flask_vault.audit"), "level", logging.WARNING)
    token = token_with_policy(vault_root, read_policy("secret", f"{PREFIX}/{ENVIRONMENT}/*"))
    SHOWN.forbidden.add(token)
    client = VaultClient(settings=VaultSettings.load({**base_config, "VAULT_TOKEN": token}, {}))
    for _ in range(2):
        client.read("flask", use_cache=False)
    assert client.metrics.requests() == {"read": {"ok": 2}}
    assert client.keeper.token_id is None


def test_no_secret_value_or_token_in_any_audit_record() -> None:
    SHOWN.assert_clean("audit")
