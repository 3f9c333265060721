"""Secret names and paths: checked before any request, never ``data/`` or ``metadata/``."""

from __future__ import annotations

from typing import Any

import pytest
from core_support import make_app

from flask_vault import FlaskVault, VaultClient, VaultConfigError
from flask_vault.paths import check_secret_name, relative_path, split_reference

GOOD_NAMES = ["flask", "database", "payments/stripe", "a/b/c", "v1.2", "my_key-2", ".hidden", "x..y"]
BAD_NAMES = [
    pytest.param("", id="empty"),
    pytest.param("a//b", id="empty-segment"),
    pytest.param(".", id="dot"),
    pytest.param("..", id="dotdot"),
    pytest.param("a/./b", id="dot-segment"),
    pytest.param("a/../b", id="dotdot-segment"),
    pytest.param("/flask", id="leading-slash"),
    pytest.param("flask/", id="trailing-slash"),
    pytest.param("flaské", id="non-ascii"),
    pytest.param("ﬂask", id="non-ascii-ligature"),
    pytest.param("my secret", id="space"),
    pytest.param("flask\n", id="newline"),
    pytest.param("flask#field", id="hash"),
    pytest.param("a?b", id="question-mark"),
    pytest.param("data\\x", id="backslash"),
    pytest.param(None, id="none"),
    pytest.param(42, id="int"),
]


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_valid_names_are_accepted(name: str) -> None:
    assert check_secret_name(name) == name


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_names_raise_config_error(name: Any) -> None:
    with pytest.raises(VaultConfigError, match="Invalid secret name"):
        check_secret_name(name)


@pytest.mark.parametrize("name", BAD_NAMES)
def test_invalid_name_is_rejected_before_any_request(name: Any, requests_mock: Any) -> None:
    # Every HTTP request would be caught by requests_mock; none may be sent.
    client = VaultClient("http://vault.invalid:8200", "token", "test", path_prefix="store-erp")
    for call in (
        lambda: client.get_secret(name),
        lambda: client.get_secret(name, "field", use_cache=False),
        lambda: client.set_secret(name, {"a": "b"}),
        lambda: client.rotate_secret(name, "a"),
        lambda: client.full_path(name),
    ):
        with pytest.raises(VaultConfigError):
            call()
    assert requests_mock.call_count == 0


def test_relative_path_is_prefix_environment_name() -> None:
    assert relative_path("flask", prefix="store-erp", environment="production") == "store-erp/production/flask"
    assert relative_path("payments/stripe", prefix=None, environment="dev") == "dev/payments/stripe"


def test_split_reference_separates_name_and_field() -> None:
    assert split_reference("flask#secret_key") == ("flask", "secret_key")
    assert split_reference("database") == ("database", None)


def test_client_full_path_has_no_kv2_api_segments() -> None:
    client = VaultClient("https://vault.invalid:8200", "t", "production", path_prefix="store-erp")
    assert client.secret_path("flask") == "store-erp/production/flask"
    assert client.full_path("flask") == "secret/store-erp/production/flask"


def test_client_reads_kv2_api_path_built_from_name(requests_mock: Any) -> None:
    base = "https://vault.invalid:8200"
    requests_mock.get(f"{base}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
    read = requests_mock.get(
        f"{base}/v1/secret/data/store-erp/production/payments/stripe",
        json={"data": {"data": {"stripe": "sk"}, "metadata": {"version": 3}}},
    )
    client = VaultClient(base, "t", "production", path_prefix="store-erp")
    assert client.get_secret("payments/stripe", "stripe") == "sk"
    assert read.call_count == 1


@pytest.mark.parametrize(
    "reference",
    ["../flask#secret_key", "flask/#secret_key", "my secret#x", "/flask#secret_key", "fläsk#x"],
)
def test_init_app_rejects_bad_name_in_vault_secrets_before_any_request(
    reference: str, base_config: dict[str, Any], requests_mock: Any
) -> None:
    app = make_app(base_config, VAULT_SECRETS={"SECRET_KEY": reference})
    with pytest.raises(VaultConfigError, match="VAULT_SECRETS") as excinfo:
        FlaskVault(app)
    assert excinfo.value.key == "VAULT_SECRETS"
    assert requests_mock.call_count == 0
