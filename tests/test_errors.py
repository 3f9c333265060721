"""Every error class, from the real server where it can produce it, else from requests_mock.

Each error names the Vault URL, mount and path, says what to do, and never contains the
token or a secret value.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import hvac
import hvac.exceptions
import pytest
from core_support import client_for, read_policy, token_with_policy, unused_url, write_secret

from flask_vault import (
    SecretNotFoundError,
    VaultAuthError,
    VaultClient,
    VaultConfigError,
    VaultError,
    VaultPermissionError,
    VaultSettings,
    VaultUnavailableError,
)

FLASK_PATH = "secret/store-erp/test/flask"


def assert_names_location(error: VaultError, url: str, path: str = FLASK_PATH) -> None:
    message = str(error)
    assert url in message
    assert path in message
    assert error.url == url
    assert error.mount == "secret"
    assert error.path == path


@pytest.mark.parametrize(
    "subclass",
    [VaultConfigError, VaultUnavailableError, VaultAuthError, VaultPermissionError, SecretNotFoundError],
)
def test_every_error_derives_from_vault_error(subclass: type[VaultError]) -> None:
    assert issubclass(subclass, VaultError)


def test_not_found_is_a_key_error_and_config_error_a_value_error() -> None:
    assert issubclass(SecretNotFoundError, KeyError)
    assert issubclass(VaultConfigError, ValueError)
    assert str(SecretNotFoundError("plain message")) == "plain message"  # no KeyError quotes


# -- from the real server --------------------------------------------------------------


def test_connection_refused_raises_unavailable_naming_url_mount_and_path() -> None:
    url = unused_url()
    client = client_for(
        {"VAULT_URL": url, "VAULT_TOKEN": "canary-refused-token", "VAULT_PATH_PREFIX": "store-erp"},
        VAULT_ENVIRONMENT="test",
    )
    with pytest.raises(VaultUnavailableError) as excinfo:
        client.get_secret("flask", "secret_key")
    assert_names_location(excinfo.value, url)
    assert "VAULT_URL" in str(excinfo.value)  # says what to check
    assert "canary-refused-token" not in str(excinfo.value)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A socket that accepts connections (kernel backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_server_that_never_answers_raises_unavailable_after_the_timeout(silent_server: str) -> None:
    client = client_for(
        {"VAULT_URL": silent_server, "VAULT_TOKEN": "canary-timeout-token", "VAULT_PATH_PREFIX": "store-erp"},
        VAULT_ENVIRONMENT="test",
        VAULT_TIMEOUT=0.2,
    )
    with pytest.raises(VaultUnavailableError, match=r"did not answer within 0\.2s") as excinfo:
        client.get_secret("flask")
    assert_names_location(excinfo.value, silent_server)
    assert "canary-timeout-token" not in str(excinfo.value)


def test_token_without_read_policy_raises_permission_error(
    base_config: dict[str, Any], vault_root: hvac.Client, seeded: dict
) -> None:
    token = token_with_policy(vault_root, read_policy("secret", "elsewhere/*"))
    client = client_for(base_config, VAULT_TOKEN=token)
    with pytest.raises(VaultPermissionError) as excinfo:
        client.get_secret("flask", "secret_key")
    assert excinfo.value.status == 403
    assert_names_location(excinfo.value, base_config["VAULT_URL"])
    assert token not in str(excinfo.value) and token not in repr(excinfo.value)
    assert seeded["flask"]["secret_key"] not in str(excinfo.value)
    assert isinstance(excinfo.value.__cause__, hvac.exceptions.Forbidden)


def test_revoked_token_raises_permission_error(base_config: dict[str, Any], vault_root: hvac.Client) -> None:
    token = token_with_policy(vault_root, read_policy("secret", "store-erp/test/*"))
    client = client_for(base_config, VAULT_TOKEN=token, VAULT_CACHE_TTL=0)
    client.get_secret("flask")
    vault_root.auth.token.revoke(token)
    with pytest.raises(VaultPermissionError, match="expired or been revoked"):
        client.get_secret("flask")


def test_missing_token_raises_auth_error(base_config: dict[str, Any]) -> None:
    config = {k: v for k, v in base_config.items() if k != "VAULT_TOKEN"}
    client = client_for(config)
    assert client.token is None
    with pytest.raises(VaultAuthError, match="no token") as excinfo:
        client.get_secret("flask")
    assert "VAULT_TOKEN" in str(excinfo.value)
    assert_names_location(excinfo.value, base_config["VAULT_URL"])


def test_missing_secret_raises_not_found_naming_location(base_config: dict[str, Any], unique_env: str) -> None:
    client = client_for(base_config, VAULT_ENVIRONMENT=unique_env)
    with pytest.raises(SecretNotFoundError) as excinfo:
        client.get_secret("flask")
    path = f"secret/store-erp/{unique_env}/flask"
    assert_names_location(excinfo.value, base_config["VAULT_URL"], path)
    assert excinfo.value.status == 404
    assert "VAULT_ENVIRONMENT" in str(excinfo.value)  # says what to check


def test_missing_field_lists_field_names_but_not_values(base_config: dict[str, Any], seeded: dict) -> None:
    client = client_for(base_config)
    with pytest.raises(SecretNotFoundError) as excinfo:
        client.get_secret("flask", "api_key")
    message = str(excinfo.value)
    assert "'api_key'" in message
    assert "jwt_secret" in message and "secret_key" in message
    for value in seeded["flask"].values():
        assert value not in message
    assert FLASK_PATH in message
    error = excinfo.value
    assert (error.url, error.mount, error.path) == (base_config["VAULT_URL"], "secret", FLASK_PATH)


def test_deleted_latest_version_raises_not_found(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "gone"})
    vault_root.secrets.kv.v2.delete_latest_version_of_secret(f"store-erp/{unique_env}/flask")
    with pytest.raises(SecretNotFoundError):
        client_for(base_config, VAULT_ENVIRONMENT=unique_env).get_secret("flask")


def test_bad_setting_raises_config_error_naming_key() -> None:
    with pytest.raises(VaultConfigError) as excinfo:
        VaultSettings.load({"VAULT_TIMEOUT": "slow"}, {})
    assert excinfo.value.key == "VAULT_TIMEOUT"


def test_errors_never_contain_the_token_in_repr_or_args(base_config: dict[str, Any], vault_root: hvac.Client) -> None:
    token = token_with_policy(vault_root, read_policy("secret", "elsewhere/*"))
    client = client_for(base_config, VAULT_TOKEN=token)
    with pytest.raises(VaultError) as excinfo:
        client.get_secret("flask")
    error = excinfo.value
    texts = [str(error), repr(error), repr(error.args), repr(vars(error)), str(error.__cause__)]
    assert all(token not in text for text in texts)


# -- statuses a real server won't easily give (requests_mock) ------------------------------

MOCK_URL = "http://vault.mock:8200"
READ_URL = f"{MOCK_URL}/v1/secret/data/store-erp/test/flask"


@pytest.fixture
def mocked(requests_mock: Any) -> tuple[VaultClient, Any]:
    requests_mock.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
    client = client_for(
        {"VAULT_URL": MOCK_URL, "VAULT_TOKEN": "canary-mock-token", "VAULT_PATH_PREFIX": "store-erp"},
        VAULT_ENVIRONMENT="test",
    )
    return client, requests_mock


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 412])
def test_server_side_statuses_raise_unavailable_with_status(mocked: tuple[VaultClient, Any], status: int) -> None:
    client, mock = mocked
    mock.get(READ_URL, status_code=status, json={"errors": ["something went wrong"]})
    with pytest.raises(VaultUnavailableError) as excinfo:
        client.get_secret("flask")
    assert excinfo.value.status == status
    assert_names_location(excinfo.value, MOCK_URL)
    assert "canary-mock-token" not in str(excinfo.value)


def test_not_initialized_raises_unavailable_and_is_not_retried(requests_mock: Any) -> None:
    requests_mock.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
    read = requests_mock.get(READ_URL, status_code=501, json={"errors": []})
    client = client_for(
        {"VAULT_URL": MOCK_URL, "VAULT_TOKEN": "t", "VAULT_PATH_PREFIX": "store-erp", "VAULT_MAX_RETRIES": 3},
        VAULT_ENVIRONMENT="test",
    )
    with pytest.raises(VaultUnavailableError, match="not initialized") as excinfo:
        client.get_secret("flask")
    assert excinfo.value.status == 501
    assert read.call_count == 1


def test_401_raises_auth_error(mocked: tuple[VaultClient, Any]) -> None:
    client, mock = mocked
    mock.get(READ_URL, status_code=401, json={"errors": ["invalid credentials"]})
    with pytest.raises(VaultAuthError) as excinfo:
        client.get_secret("flask")
    assert excinfo.value.status == 401
    assert_names_location(excinfo.value, MOCK_URL)


def test_400_raises_plain_vault_error_with_vaults_reason(mocked: tuple[VaultClient, Any]) -> None:
    client, mock = mocked
    mock.get(
        READ_URL,
        status_code=400,
        json={"errors": ["invalid request shape"]},
        headers={"Content-Type": "application/json"},  # as Vault sends it; hvac reads errors only then
    )
    with pytest.raises(VaultError, match="invalid request shape") as excinfo:
        client.get_secret("flask")
    assert type(excinfo.value) is VaultError
    assert excinfo.value.status == 400


def test_unavailable_error_is_served_by_the_fallback_env(
    mocked: tuple[VaultClient, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, mock = mocked
    mock.get(READ_URL, status_code=503, json={"errors": ["sealed"]})
    monkeypatch.setenv("SECRET_KEY", "from-env")
    assert client.get_secret("flask", "secret_key", fallback_env="SECRET_KEY") == "from-env"


def test_mount_lookup_failure_names_the_secret_path(requests_mock: Any) -> None:
    requests_mock.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", status_code=503, json={"errors": []})
    # The KV v2 read comes first; its 404 makes the client ask the mount which KV version it is.
    requests_mock.get(f"{MOCK_URL}/v1/secret/data/store-erp/development/flask", status_code=404, json={"errors": []})
    client = client_for({"VAULT_URL": MOCK_URL, "VAULT_TOKEN": "t", "VAULT_PATH_PREFIX": "store-erp"})
    with pytest.raises(VaultUnavailableError) as excinfo:
        client.get_secret("flask")
    assert excinfo.value.path == "secret/store-erp/development/flask"


def test_log_records_never_contain_the_token_or_secret_values(
    base_config: dict[str, Any],
    vault_root: hvac.Client,
    seeded: dict,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from core_support import init_vault

    caplog.set_level(logging.DEBUG)  # every logger, at its most talkative
    token = token_with_policy(vault_root, read_policy("secret", "store-erp/test/*"))
    monkeypatch.setenv("STRIPE_API_KEY", "sk_env_canary_value")
    app, vault = init_vault(
        base_config,
        VAULT_TOKEN=token,
        VAULT_SECRETS={
            "SECRET_KEY": "flask#secret_key",
            "JWT_SECRET_KEY": "flask#jwt_secret",
            "SQLALCHEMY_DATABASE_URI": "database",
            "STRIPE_API_KEY": "payments#stripe",  # missing in Vault: env fallback, logged as a warning
        },
    )
    with app.app_context():
        client = vault.client
        client.get_secret("flask", use_cache=False)
        with pytest.raises(SecretNotFoundError):
            client.get_secret("flask", "no_such_field")
        with pytest.raises(VaultPermissionError):
            client_for(base_config, VAULT_TOKEN=token, VAULT_ENVIRONMENT="other").get_secret("flask")
        client.health_check()
    assert caplog.records, "expected some log records to scan"
    text = "\n".join(f"{record.getMessage()} {vars(record)!r}" for record in caplog.records)
    secrets = [token, "sk_env_canary_value", *seeded["flask"].values(), seeded["database"]["password"]]
    for secret in secrets:
        assert secret not in text
