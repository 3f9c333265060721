"""VaultClient against the real OpenBao dev server: reads, writes, rotation, listing, health, KV v1."""

from __future__ import annotations

import string
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from core_support import client_for, token_with_policy, unused_url, write_secret

from flask_vault import SecretNotFoundError, VaultClient, VaultConfigError, VaultConflictError
from flask_vault.devserver import OpenBaoServer

URLSAFE = set(string.ascii_letters + string.digits + "-_")


@pytest.fixture
def scratch(base_config: dict[str, Any], unique_env: str) -> VaultClient:
    """A client on an environment of its own, so writes do not disturb other tests."""
    return client_for(base_config, VAULT_ENVIRONMENT=unique_env)


@pytest.fixture(scope="module")
def kv1_mount(vault_root: hvac.Client) -> Iterator[str]:
    mount = f"kv1-{uuid.uuid4().hex[:8]}"
    vault_root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    yield mount
    vault_root.sys.disable_secrets_engine(mount)


# -- reading ---------------------------------------------------------------------------


def test_get_secret_without_field_returns_all_fields(base_config: dict[str, Any], seeded: dict[str, Any]) -> None:
    assert client_for(base_config).get_secret("flask") == seeded["flask"]


def test_get_secret_with_field_returns_that_value(base_config: dict[str, Any], seeded: dict[str, Any]) -> None:
    client = client_for(base_config)
    assert client.get_secret("flask", "jwt_secret") == seeded["flask"]["jwt_secret"]
    assert client.get_secret("database", "port") == 5432


def test_get_secret_returns_a_copy_that_callers_cannot_corrupt(base_config: dict[str, Any], seeded: dict) -> None:
    client = client_for(base_config)
    client.get_secret("flask")["secret_key"] = "tampered"
    assert client.get_secret("flask", "secret_key") == seeded["flask"]["secret_key"]


def test_public_constructor_reaches_the_seeded_secret(openbao_server: OpenBaoServer, seeded: dict) -> None:
    client = VaultClient(openbao_server.url, openbao_server.root_token, "test", path_prefix="store-erp")
    assert client.get_secret("flask", "secret_key") == seeded["flask"]["secret_key"]


def test_fallback_env_is_used_when_the_secret_is_missing(scratch: VaultClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_TEST_FALLBACK", "from-env")
    assert scratch.get_secret("absent", "x", fallback_env="CORE_TEST_FALLBACK") == "from-env"


def test_fallback_env_is_used_when_vault_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_TEST_FALLBACK", "from-env")
    monkeypatch.setenv("VAULT_MAX_RETRIES", "0")
    client = VaultClient(unused_url(), "t", "test")
    assert client.get_secret("flask", "secret_key", fallback_env="CORE_TEST_FALLBACK") == "from-env"


def test_vault_value_wins_over_fallback_env(
    base_config: dict[str, Any], seeded: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert (
        client_for(base_config).get_secret("flask", "secret_key", fallback_env="SECRET_KEY")
        == (seeded["flask"]["secret_key"])
    )


def test_unset_fallback_env_still_raises_the_vault_error(scratch: VaultClient) -> None:
    with pytest.raises(SecretNotFoundError):
        scratch.get_secret("absent", "x", fallback_env="CORE_TEST_NOT_SET")


def test_fallback_env_does_not_hide_a_bad_name(scratch: VaultClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORE_TEST_FALLBACK", "from-env")
    with pytest.raises(VaultConfigError):
        scratch.get_secret("../flask", fallback_env="CORE_TEST_FALLBACK")


def test_repr_shows_location_but_not_token(base_config: dict[str, Any]) -> None:
    client = client_for(base_config, VAULT_TOKEN="canary-repr-token")
    assert "secret" in repr(client) and "store-erp" in repr(client)
    assert "canary-repr-token" not in repr(client)


# -- writing ---------------------------------------------------------------------------


def test_set_secret_writes_and_returns_the_new_version(
    scratch: VaultClient, vault_root: hvac.Client, unique_env: str
) -> None:
    assert scratch.set_secret("payments", {"stripe": "sk_test_1"}) == 1
    assert scratch.set_secret("payments", {"stripe": "sk_test_2"}) == 2
    stored = vault_root.secrets.kv.v2.read_secret_version(
        f"store-erp/{unique_env}/payments", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == {"stripe": "sk_test_2"}
    assert scratch.get_secret("payments", "stripe", use_cache=False) == "sk_test_2"


def test_set_secret_with_stale_cas_raises_conflict_and_writes_nothing(scratch: VaultClient) -> None:
    scratch.set_secret("payments", {"stripe": "v1"})
    scratch.set_secret("payments", {"stripe": "v2"})
    with pytest.raises(VaultConflictError):
        scratch.set_secret("payments", {"stripe": "lost"}, cas=1)
    assert scratch.get_secret("payments", "stripe", use_cache=False) == "v2"


@pytest.mark.parametrize("data", [{}, {"": "x"}, "not-a-mapping"])
def test_set_secret_rejects_empty_or_malformed_data(scratch: VaultClient, data: Any) -> None:
    with pytest.raises(VaultConfigError):
        scratch.set_secret("payments", data)


def test_rotate_secret_with_value_returns_new_version_and_keeps_other_fields(
    scratch: VaultClient, vault_root: hvac.Client, unique_env: str
) -> None:
    first = scratch.set_secret("flask", {"secret_key": "old-key", "jwt_secret": "jwt-keep"})
    version = scratch.rotate_secret("flask", "secret_key", "new-key")
    assert version == first + 1
    stored = vault_root.secrets.kv.v2.read_secret_version(
        f"store-erp/{unique_env}/flask", raise_on_deleted_version=True
    )
    assert stored["data"]["data"] == {"secret_key": "new-key", "jwt_secret": "jwt-keep"}
    assert stored["data"]["metadata"]["version"] == version


def test_rotate_secret_without_value_writes_a_strong_random_value(scratch: VaultClient) -> None:
    scratch.set_secret("flask", {"secret_key": "old-key", "jwt_secret": "jwt-keep"})
    scratch.rotate_secret("flask", "secret_key")
    first = scratch.get_secret("flask", use_cache=False)
    scratch.rotate_secret("flask", "secret_key")
    second = scratch.get_secret("flask", use_cache=False)
    for value in (first["secret_key"], second["secret_key"]):
        assert value != "old-key"
        assert len(value) >= 43  # at least 256 bits of URL-safe base64
        assert set(value) <= URLSAFE
    assert first["secret_key"] != second["secret_key"]
    assert first["jwt_secret"] == second["jwt_secret"] == "jwt-keep"


def test_rotate_secret_of_missing_field_lists_fields_without_values(scratch: VaultClient) -> None:
    scratch.set_secret("flask", {"secret_key": "value-not-to-show"})
    with pytest.raises(SecretNotFoundError) as excinfo:
        scratch.rotate_secret("flask", "jwt_secret")
    assert "secret_key" in str(excinfo.value)
    assert "value-not-to-show" not in str(excinfo.value)


def test_rotate_secret_of_missing_secret_raises_not_found(scratch: VaultClient) -> None:
    with pytest.raises(SecretNotFoundError):
        scratch.rotate_secret("absent", "secret_key")


def test_rotated_value_is_served_from_the_cache_afterwards(scratch: VaultClient) -> None:
    scratch.set_secret("flask", {"secret_key": "old-key"})
    assert scratch.get_secret("flask", "secret_key") == "old-key"
    scratch.rotate_secret("flask", "secret_key", "new-key")
    assert scratch.get_secret("flask", "secret_key") == "new-key"


# -- listing ---------------------------------------------------------------------------


def test_list_secrets_returns_names_under_prefix_and_environment(scratch: VaultClient) -> None:
    scratch.set_secret("flask", {"a": "1"})
    scratch.set_secret("database", {"url": "sqlite://"})
    scratch.set_secret("payments/stripe", {"key": "x"})
    scratch.set_secret("payments/eu/adyen", {"key": "y"})
    assert scratch.list_secrets() == ["database", "flask", "payments/eu/adyen", "payments/stripe"]


def test_list_secrets_of_an_empty_environment_is_empty(scratch: VaultClient) -> None:
    assert scratch.list_secrets() == []


def test_list_secrets_does_not_cross_into_other_environments(base_config: dict[str, Any], seeded: dict) -> None:
    names = client_for(base_config).list_secrets()
    assert {"flask", "database"} <= set(names)
    assert all(not name.startswith("t-") for name in names)


# -- health ----------------------------------------------------------------------------

HEALTH_KEYS = {"url", "initialized", "sealed", "standby", "authenticated", "version"}


def test_health_check_reports_a_healthy_server_and_valid_login(base_config: dict[str, Any]) -> None:
    report = client_for(base_config).health_check()
    assert HEALTH_KEYS <= set(report)
    assert report["url"] == base_config["VAULT_URL"]
    assert report["initialized"] is True
    assert report["sealed"] is False
    assert report["standby"] is False
    assert report["authenticated"] is True
    assert isinstance(report["version"], str) and report["version"]


def test_health_check_reports_an_invalid_token_without_showing_it(base_config: dict[str, Any]) -> None:
    report = client_for(base_config, VAULT_TOKEN="canary-invalid-token").health_check()
    assert report["initialized"] is True
    assert report["authenticated"] is False
    assert "canary-invalid-token" not in repr(report)


def test_health_check_reports_a_revoked_token(base_config: dict[str, Any], vault_root: hvac.Client) -> None:
    token = token_with_policy(vault_root, 'path "secret/data/*" { capabilities = ["read"] }')
    client = client_for(base_config, VAULT_TOKEN=token)
    assert client.health_check()["authenticated"] is True
    vault_root.auth.token.revoke(token)
    report = client.health_check()
    assert report["authenticated"] is False
    assert token not in repr(report)


def test_health_check_without_token_is_not_authenticated(base_config: dict[str, Any]) -> None:
    config = {k: v for k, v in base_config.items() if k != "VAULT_TOKEN"}
    report = client_for(config).health_check()
    assert report["initialized"] is True
    assert report["authenticated"] is False


def test_health_check_of_unreachable_server_does_not_raise() -> None:
    url = unused_url()
    report = client_for({"VAULT_URL": url, "VAULT_TOKEN": "canary-down-token"}).health_check()
    assert HEALTH_KEYS <= set(report)
    assert report["url"] == url
    assert report["authenticated"] is False
    assert report["initialized"] is None
    assert "canary-down-token" not in repr(report)


# -- KV versions -----------------------------------------------------------------------


def test_kv_v2_mount_is_detected(base_config: dict[str, Any]) -> None:
    assert client_for(base_config).kv_version() == 2


def test_kv_v1_mount_is_detected_and_read(base_config: dict[str, Any], vault_root: hvac.Client, kv1_mount: str) -> None:
    vault_root.secrets.kv.v1.create_or_update_secret(
        "store-erp/test/flask", {"secret_key": "v1-key", "jwt_secret": "v1-jwt"}, mount_point=kv1_mount
    )
    client = client_for(base_config, VAULT_MOUNT_POINT=kv1_mount)
    assert client.kv_version() == 1
    assert client.get_secret("flask") == {"secret_key": "v1-key", "jwt_secret": "v1-jwt"}
    assert client.full_path("flask") == f"{kv1_mount}/store-erp/test/flask"


def test_kv_v1_set_rotate_and_list(
    base_config: dict[str, Any], vault_root: hvac.Client, kv1_mount: str, unique_env: str
) -> None:
    client = client_for(base_config, VAULT_MOUNT_POINT=kv1_mount, VAULT_ENVIRONMENT=unique_env)
    assert client.set_secret("payments/stripe", {"key": "sk-1", "account": "acct"}) is None
    assert client.rotate_secret("payments/stripe", "key") is None
    stored = vault_root.secrets.kv.v1.read_secret(f"store-erp/{unique_env}/payments/stripe", mount_point=kv1_mount)
    assert stored["data"]["account"] == "acct"
    assert stored["data"]["key"] not in ("sk-1", "")
    assert client.list_secrets() == ["payments/stripe"]


def test_kv_v1_missing_secret_raises_not_found(base_config: dict[str, Any], kv1_mount: str) -> None:
    client = client_for(base_config, VAULT_MOUNT_POINT=kv1_mount, VAULT_ENVIRONMENT="nowhere")
    with pytest.raises(SecretNotFoundError, match=f"{kv1_mount}/store-erp/nowhere/flask"):
        client.get_secret("flask")


def test_extension_fills_config_from_a_kv_v1_mount(
    base_config: dict[str, Any], vault_root: hvac.Client, kv1_mount: str, unique_env: str
) -> None:
    from core_support import init_vault

    for name, data in {
        "flask": {"secret_key": "v1-app-key", "jwt_secret": "v1-app-jwt"},
        "database": {"url": "sqlite:///v1.db"},
    }.items():
        vault_root.secrets.kv.v1.create_or_update_secret(f"store-erp/{unique_env}/{name}", data, mount_point=kv1_mount)
    app, vault = init_vault(base_config, VAULT_MOUNT_POINT=kv1_mount, VAULT_ENVIRONMENT=unique_env)
    assert app.config["SECRET_KEY"] == "v1-app-key"
    assert app.config["JWT_SECRET_KEY"] == "v1-app-jwt"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///v1.db"
    with app.app_context():
        assert vault.sources["SECRET_KEY"].version is None
        assert vault.sources["SECRET_KEY"].path == f"{kv1_mount}/store-erp/{unique_env}/flask"


def test_write_helper_and_client_agree_on_layout(
    scratch: VaultClient, vault_root: hvac.Client, unique_env: str
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "written-by-root"})
    assert scratch.get_secret("flask", "secret_key") == "written-by-root"
