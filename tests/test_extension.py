"""FlaskVault: fill order, provenance, fail-fast, reads at start-up, registration, health and CLI."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from core_support import assert_no_leak, init_vault, make_app, read_policy, token_with_policy, unused_url, write_secret
from flask import Flask

from flask_vault import FlaskVault, SecretNotFoundError, VaultClient, VaultError, VaultUnavailableError
from flask_vault.devserver import OpenBaoServer

FLASK_PATH = "secret/store-erp/test/flask"
DATABASE_PATH = "secret/store-erp/test/database"


@pytest.fixture
def empty_config(base_config: dict[str, Any], unique_env: str) -> dict[str, Any]:
    """base_config pointed at an environment with no secrets at all."""
    return {**base_config, "VAULT_ENVIRONMENT": unique_env}


def all_seeded_values(seeded: dict[str, Any]) -> list[str]:
    values = [*seeded["flask"].values(), seeded["database"]["password"]]
    return [str(v) for v in values]


# -- fill order and provenance ---------------------------------------------------------


def test_default_mapping_fills_all_three_keys_from_vault(app: Flask, vault: FlaskVault, seeded: dict) -> None:
    assert app.config["SECRET_KEY"] == seeded["flask"]["secret_key"]
    assert app.config["JWT_SECRET_KEY"] == seeded["flask"]["jwt_secret"]
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql://store:")
    assert "@db.internal:5432/store_erp" in app.config["SQLALCHEMY_DATABASE_URI"]


def test_sources_record_vault_path_field_and_version(app: Flask, vault: FlaskVault, vault_root: hvac.Client) -> None:
    current = vault_root.secrets.kv.v2.read_secret_metadata("store-erp/test/flask")["data"]["current_version"]
    sources = vault.sources
    assert set(sources) == {"SECRET_KEY", "JWT_SECRET_KEY", "SQLALCHEMY_DATABASE_URI"}
    assert sources["SECRET_KEY"].origin == "vault"
    assert sources["SECRET_KEY"].path == FLASK_PATH
    assert sources["SECRET_KEY"].field == "secret_key"
    assert sources["SECRET_KEY"].version == current
    assert sources["JWT_SECRET_KEY"].field == "jwt_secret"
    assert sources["SQLALCHEMY_DATABASE_URI"].path == DATABASE_PATH
    assert sources["SQLALCHEMY_DATABASE_URI"].field is None


def test_sources_never_hold_values(app: Flask, vault: FlaskVault, seeded: dict) -> None:
    text = repr(vault.sources) + json.dumps({k: s.as_dict() for k, s in vault.sources.items()})
    assert_no_leak(text, all_seeded_values(seeded))


def test_vault_value_wins_over_environment_and_existing_config(
    app: Flask, seeded: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-env")
    app.config["SECRET_KEY"] = "from-config"
    vault = FlaskVault(app)
    assert app.config["SECRET_KEY"] == seeded["flask"]["secret_key"]
    assert vault.sources["SECRET_KEY"].origin == "vault"


def test_environment_fallback_fills_each_key_when_vault_lacks_it(
    empty_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "env-secret")
    monkeypatch.setenv("JWT_SECRET_KEY", "env-jwt")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///env.db")
    app, vault = init_vault(empty_config)
    assert app.config["SECRET_KEY"] == "env-secret"
    assert app.config["JWT_SECRET_KEY"] == "env-jwt"
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///env.db"
    with app.app_context():
        sources = vault.sources
    assert {key: s.origin for key, s in sources.items()} == dict.fromkeys(sources, "env")
    assert sources["SQLALCHEMY_DATABASE_URI"].env_var == "DATABASE_URL"
    assert sources["SECRET_KEY"].env_var == "SECRET_KEY"
    assert "No secret at" in (sources["SECRET_KEY"].vault_error or "")
    assert_no_leak(repr(sources), ["env-secret", "env-jwt", "sqlite:///env.db"])


def test_environment_fallback_wins_over_existing_config(
    empty_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "env-secret")
    app, vault = init_vault(
        empty_config, SECRET_KEY="config-secret", JWT_SECRET_KEY="config-jwt", SQLALCHEMY_DATABASE_URI="sqlite://"
    )
    assert app.config["SECRET_KEY"] == "env-secret"
    assert app.config["JWT_SECRET_KEY"] == "config-jwt"
    with app.app_context():
        assert vault.sources["SECRET_KEY"].origin == "env"
        assert vault.sources["JWT_SECRET_KEY"].origin == "config"


def test_fallback_env_off_ignores_environment_and_uses_config(
    empty_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "env-secret")
    app, vault = init_vault(
        empty_config,
        VAULT_FALLBACK_ENV=False,
        SECRET_KEY="config-secret",
        JWT_SECRET_KEY="config-jwt",
        SQLALCHEMY_DATABASE_URI="sqlite://",
    )
    assert app.config["SECRET_KEY"] == "config-secret"
    with app.app_context():
        assert vault.sources["SECRET_KEY"].origin == "config"


def test_empty_environment_variable_is_not_a_fallback_value(
    empty_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "")
    app, _ = init_vault(
        empty_config, SECRET_KEY="config-secret", JWT_SECRET_KEY="config-jwt", SQLALCHEMY_DATABASE_URI="sqlite://"
    )
    assert app.config["SECRET_KEY"] == "config-secret"


def test_environment_fallback_when_vault_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_KEY", "env-secret")
    monkeypatch.setenv("JWT_SECRET_KEY", "env-jwt")
    monkeypatch.setenv("DATABASE_URL", "sqlite://")
    app, vault = init_vault(
        {"VAULT_URL": unused_url(), "VAULT_TOKEN": "t", "VAULT_STARTUP_TIMEOUT": 0, "VAULT_MAX_RETRIES": 0}
    )
    assert app.config["SECRET_KEY"] == "env-secret"
    with app.app_context():
        assert vault.sources["SECRET_KEY"].origin == "env"
        assert "Cannot connect" in (vault.sources["SECRET_KEY"].vault_error or "")


# -- fail fast -------------------------------------------------------------------------


def test_fail_fast_raises_naming_the_key_and_the_vault_path(empty_config: dict[str, Any], unique_env: str) -> None:
    app = make_app(empty_config)
    with pytest.raises(VaultError) as excinfo:
        FlaskVault(app)
    message = str(excinfo.value)
    assert "SECRET_KEY" in message
    assert f"secret/store-erp/{unique_env}/flask" in message
    assert excinfo.value.path == f"secret/store-erp/{unique_env}/flask"
    assert isinstance(excinfo.value, SecretNotFoundError)
    assert "vault" not in app.extensions
    assert app.config["SECRET_KEY"] is None


def test_fail_fast_names_a_missing_field_and_lists_fields_without_values(
    empty_config: dict[str, Any], vault_root: hvac.Client, unique_env: str
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "present-value-xyz"})
    write_secret(vault_root, f"store-erp/{unique_env}/database", {"url": "sqlite://"})
    with pytest.raises(VaultError) as excinfo:
        init_vault(empty_config)
    message = str(excinfo.value)
    assert "JWT_SECRET_KEY" in message
    assert f"secret/store-erp/{unique_env}/flask#jwt_secret" in message
    assert "secret_key" in message  # the field present is listed
    assert "present-value-xyz" not in message


def test_fail_fast_when_vault_is_unreachable_raises_unavailable_error() -> None:
    url = unused_url()
    app = make_app({"VAULT_URL": url, "VAULT_TOKEN": "canary-unreach", "VAULT_STARTUP_TIMEOUT": 0})
    app.config["VAULT_MAX_RETRIES"] = 0
    with pytest.raises(VaultUnavailableError) as excinfo:
        FlaskVault(app)
    assert url in str(excinfo.value)
    assert "SECRET_KEY" in str(excinfo.value)
    assert "canary-unreach" not in str(excinfo.value)


def test_fail_fast_off_starts_with_the_keys_missing(empty_config: dict[str, Any]) -> None:
    app, vault = init_vault(empty_config, VAULT_FAIL_FAST=False)
    assert app.config["SECRET_KEY"] is None  # Flask's default, not a made-up secret
    assert "JWT_SECRET_KEY" not in app.config
    assert "SQLALCHEMY_DATABASE_URI" not in app.config
    with app.app_context():
        assert {s.origin for s in vault.sources.values()} == {"missing"}
        assert vault.sources["SECRET_KEY"].path.endswith("/flask")


# -- the mapping -----------------------------------------------------------------------


def test_user_mapping_replaces_the_default_mapping(base_config: dict[str, Any], seeded: dict) -> None:
    app, vault = init_vault(base_config, VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"})
    assert app.config["SECRET_KEY"] == seeded["flask"]["secret_key"]
    assert "JWT_SECRET_KEY" not in app.config
    assert "SQLALCHEMY_DATABASE_URI" not in app.config
    with app.app_context():
        assert set(vault.sources) == {"SECRET_KEY"}
        assert vault.client.cache.stats.reads == 1


def test_custom_key_is_filled_from_its_own_secret(
    empty_config: dict[str, Any], vault_root: hvac.Client, unique_env: str
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/payments", {"stripe": "sk_live_canary"})
    app, vault = init_vault(empty_config, VAULT_SECRETS={"STRIPE_API_KEY": "payments#stripe"})
    assert app.config["STRIPE_API_KEY"] == "sk_live_canary"
    with app.app_context():
        assert vault.sources["STRIPE_API_KEY"].path == f"secret/store-erp/{unique_env}/payments"
        assert vault.sources["STRIPE_API_KEY"].version == 1


def test_custom_key_falls_back_to_its_own_environment_variable(
    empty_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRIPE_API_KEY", "sk_from_env")
    app, _ = init_vault(empty_config, VAULT_SECRETS={"STRIPE_API_KEY": "payments#stripe"})
    assert app.config["STRIPE_API_KEY"] == "sk_from_env"


def test_vault_secrets_json_from_environment_is_used(
    base_config: dict[str, Any], seeded: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_SECRETS", json.dumps({"SIGNING_KEY": "flask#jwt_secret"}))
    app, _ = init_vault(base_config)
    assert app.config["SIGNING_KEY"] == seeded["flask"]["jwt_secret"]
    assert "JWT_SECRET_KEY" not in app.config


def test_database_reference_with_field_fills_that_field_as_is(base_config: dict[str, Any], seeded: dict) -> None:
    app, _ = init_vault(base_config, VAULT_SECRETS={"DB_HOST": "database#host"})
    assert app.config["DB_HOST"] == seeded["database"]["host"]


# -- reads at start-up -----------------------------------------------------------------


def test_default_mapping_costs_two_reads_not_three(app: Flask, vault: FlaskVault) -> None:
    stats = vault.client.cache.stats
    assert stats.reads == 2
    assert stats.misses == 2


def test_later_access_through_the_client_uses_the_startup_reads(app: Flask, vault: FlaskVault, seeded: dict) -> None:
    assert vault.get_secret("flask", "secret_key") == seeded["flask"]["secret_key"]
    assert vault.client.get_secret("database", "host") == seeded["database"]["host"]
    assert vault.client.cache.stats.reads == 2


@pytest.fixture(scope="module")
def audited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenBaoServer, Path]]:
    """A second dev server with a file audit device: every request the server sees is logged."""
    log = tmp_path_factory.mktemp("audit") / "audit.log"
    config = f'audit "file" "file" {{\n  options {{\n    file_path = "{log}"\n  }}\n}}\n'
    with OpenBaoServer(config=config) as server:
        yield server, log


def server_reads(log: Path, path: str) -> int:
    """How many read responses the server's audit device logged for ``path``."""
    count = 0
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        request = entry.get("request") or {}
        if entry.get("type") == "response" and request.get("operation") == "read" and request.get("path") == path:
            count += 1
    return count


@pytest.mark.parametrize("cache_ttl", [300, 0], ids=["cache-on", "cache-off"])
def test_server_sees_each_distinct_path_read_once_at_startup(
    audited_server: tuple[OpenBaoServer, Path], unique_env: str, cache_ttl: int
) -> None:
    server, log = audited_server
    root = server.root_client()
    write_secret(root, f"store-erp/{unique_env}/flask", {"secret_key": "a-key", "jwt_secret": "a-jwt"})
    write_secret(root, f"store-erp/{unique_env}/database", {"url": "sqlite://"})
    app, _ = init_vault(
        {
            "VAULT_URL": server.url,
            "VAULT_TOKEN": server.root_token,
            "VAULT_PATH_PREFIX": "store-erp",
            "VAULT_ENVIRONMENT": unique_env,
            "VAULT_CACHE_TTL": cache_ttl,
        }
    )
    assert app.config["JWT_SECRET_KEY"] == "a-jwt"
    assert server_reads(log, f"secret/data/store-erp/{unique_env}/flask") == 1
    assert server_reads(log, f"secret/data/store-erp/{unique_env}/database") == 1
    assert "a-key" not in log.read_text()  # the server's own audit log HMACs values


# -- registration ----------------------------------------------------------------------


def test_second_init_app_on_the_same_app_raises_runtime_error(app: Flask, vault: FlaskVault) -> None:
    with pytest.raises(RuntimeError, match=r"already registered.*init_app once"):
        vault.init_app(app)
    with pytest.raises(RuntimeError, match="already registered"):
        FlaskVault().init_app(app)


def test_one_extension_serves_two_apps_with_their_own_clients(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, seeded: dict
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "second-app", "jwt_secret": "j2"})
    write_secret(vault_root, f"store-erp/{unique_env}/database", {"url": "sqlite://"})
    vault = FlaskVault()
    first = make_app(base_config, "first_app")
    second = make_app(base_config, "second_app", VAULT_ENVIRONMENT=unique_env)
    vault.init_app(first)
    vault.init_app(second)
    assert first.config["SECRET_KEY"] == seeded["flask"]["secret_key"]
    assert second.config["SECRET_KEY"] == "second-app"
    with first.app_context():
        first_client = vault.client
        assert vault.get_secret("flask", "secret_key") == seeded["flask"]["secret_key"]
    with second.app_context():
        second_client = vault.client
        assert vault.get_secret("flask", "secret_key") == "second-app"
    assert isinstance(first_client, VaultClient)
    assert first_client is not second_client
    assert first.extensions["vault"].client is first_client
    assert not any(isinstance(value, Flask) for value in vars(vault).values())


def test_extension_object_keeps_no_app_state(app: Flask, vault: FlaskVault) -> None:
    assert not any(isinstance(value, (Flask, VaultClient)) for value in vars(vault).values())
    assert app.extensions["vault"].client is vault.client


def test_client_outside_an_app_context_raises_runtime_error(base_config: dict[str, Any]) -> None:
    _, vault = init_vault(base_config)
    with pytest.raises(RuntimeError, match="application context"):
        _ = vault.client


def test_client_on_an_app_without_init_app_raises_runtime_error(base_config: dict[str, Any]) -> None:
    _, vault = init_vault(base_config)
    other = Flask("never_initialised")
    with other.app_context(), pytest.raises(RuntimeError, match=r"init_app"):
        _ = vault.client


def test_login_token_is_removed_from_app_config(app: Flask, vault: FlaskVault, openbao_server: Any) -> None:
    assert "VAULT_TOKEN" not in app.config
    assert vault.client.token == openbao_server.root_token


# -- health endpoint and CLI -----------------------------------------------------------


def health_config(base_config: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**base_config, "VAULT_HEALTH_CACHE_SECONDS": 0, **extra}


def test_health_endpoint_passes_with_a_good_token(
    base_config: dict[str, Any], vault_root: hvac.Client, seeded: dict
) -> None:
    token = token_with_policy(vault_root, read_policy("secret", "store-erp/test/*"))
    app, _ = init_vault(health_config(base_config, VAULT_TOKEN=token))
    response = app.test_client().get("/health/vault")
    assert response.status_code == 200
    body = response.get_json(force=True)
    assert body["status"] == "pass"
    assert_no_leak(response.get_data(as_text=True), [token, *all_seeded_values(seeded)])


def test_health_endpoint_fails_with_503_once_the_token_is_revoked(
    base_config: dict[str, Any], vault_root: hvac.Client, seeded: dict
) -> None:
    token = token_with_policy(vault_root, read_policy("secret", "store-erp/test/*"))
    app, _ = init_vault(health_config(base_config, VAULT_TOKEN=token))
    vault_root.auth.token.revoke(token)
    response = app.test_client().get("/health/vault")
    assert response.status_code == 503
    assert response.get_json(force=True)["status"] == "fail"
    assert_no_leak(response.get_data(as_text=True), [token, *all_seeded_values(seeded)])


def test_health_endpoint_fails_with_503_when_vault_is_down_and_secrets_missing() -> None:
    app, _ = init_vault(
        {
            "VAULT_URL": unused_url(),
            "VAULT_TOKEN": "canary-health-down",
            "VAULT_FAIL_FAST": False,
            "VAULT_STARTUP_TIMEOUT": 0,
            "VAULT_MAX_RETRIES": 0,
            "VAULT_HEALTH_CACHE_SECONDS": 0,
        }
    )
    response = app.test_client().get("/health/vault")
    assert response.status_code == 503
    assert response.get_json(force=True)["status"] == "fail"
    assert "canary-health-down" not in response.get_data(as_text=True)


def test_health_url_none_disables_the_endpoint(base_config: dict[str, Any]) -> None:
    app, _ = init_vault(base_config, VAULT_HEALTH_URL=None)
    assert app.test_client().get("/health/vault").status_code == 404


def test_health_url_can_be_moved(base_config: dict[str, Any]) -> None:
    app, _ = init_vault(health_config(base_config, VAULT_HEALTH_URL="/ops/vault"))
    client = app.test_client()
    assert client.get("/ops/vault").status_code == 200
    assert client.get("/health/vault").status_code == 404


def test_cli_status_reports_pass_without_values(
    base_config: dict[str, Any], vault_root: hvac.Client, seeded: dict
) -> None:
    token = token_with_policy(vault_root, read_policy("secret", "store-erp/test/*"))
    app, _ = init_vault(health_config(base_config, VAULT_TOKEN=token))
    result = app.test_cli_runner().invoke(args=["vault", "status"])
    assert result.exit_code == 0, result.output
    assert "pass" in result.output.lower()
    assert FLASK_PATH in result.output
    assert_no_leak(result.output, [token, *all_seeded_values(seeded)])


def test_cli_status_exits_non_zero_when_the_token_is_revoked(
    base_config: dict[str, Any], vault_root: hvac.Client, seeded: dict
) -> None:
    token = token_with_policy(vault_root, read_policy("secret", "store-erp/test/*"))
    app, _ = init_vault(health_config(base_config, VAULT_TOKEN=token))
    vault_root.auth.token.revoke(token)
    result = app.test_cli_runner().invoke(args=["vault", "status"])
    assert result.exit_code != 0
    assert "fail" in result.output.lower()
    assert_no_leak(result.output, [token, *all_seeded_values(seeded)])


def test_init_app_on_kv_v2_sends_one_read_per_path_and_no_mount_lookup(
    app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="flask_vault.audit")
    FlaskVault(app)
    operations = [record.vault["operation"] for record in caplog.records if hasattr(record, "vault")]
    assert operations.count("read") == 2
    assert "mount" not in operations  # KV v2 is tried first; the mount is asked only when that fails
