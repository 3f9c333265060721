"""Settings: app.config first, then the VAULT_* environment variable, then the default.

Pure settings parsing needs no server; the last tests check init_app and VaultClient()
read the same settings the same way.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask

from flask_vault import FlaskVault, VaultClient, VaultConfigError, VaultSettings
from flask_vault.settings import CREDENTIAL_KEYS, DEFAULT_SECRETS, LOGIN_CREDENTIAL_KEYS

# key, attribute, value in config, value in the environment (a string), parsed from config, from env, default
PRECEDENCE_CASES = [
    ("VAULT_URL", "urls", "https://cfg.example", "https://env.example", ("https://cfg.example",),
     ("https://env.example",), ("http://127.0.0.1:8200",)),
    ("VAULT_TOKEN", "token", "config-token", "env-token", "config-token", "env-token", None),
    ("VAULT_NAMESPACE", "namespace", "ns-config", "ns-env", "ns-config", "ns-env", None),
    ("VAULT_MOUNT_POINT", "mount_point", "kv-config", "kv-env", "kv-config", "kv-env", "secret"),
    ("VAULT_PATH_PREFIX", "path_prefix", "from-config", "from-env", "from-config", "from-env", None),
    ("VAULT_ENVIRONMENT", "environment", "production", "staging", "production", "staging", "development"),
    ("VAULT_CACHE_TTL", "cache_ttl", 60, "30", 60.0, 30.0, 300.0),
    ("VAULT_TIMEOUT", "timeout", 2.5, "7", 2.5, 7.0, 5.0),
    ("VAULT_FALLBACK_ENV", "fallback_env", False, "false", False, False, True),
    ("VAULT_FAIL_FAST", "fail_fast", False, "0", False, False, True),
    ("VAULT_SECRETS", "secrets", {"A": "a#b"}, '{"B": "c#d"}', {"A": "a#b"}, {"B": "c#d"}, DEFAULT_SECRETS),
    ("VAULT_HEALTH_URL", "health_url", "/ops/vault", "/env/vault", "/ops/vault", "/env/vault", "/health/vault"),
    ("VAULT_SIGNING_KEY_WINDOW", "signing_key_window", 3600, "60", 3600.0, 60.0, None),
    ("VAULT_DATABASE_BINDS", "database_binds", {"r": "reports-db"}, '{"s": "stats"}', {"r": "reports-db"},
     {"s": "stats"}, {}),
]  # fmt: skip


@pytest.mark.parametrize("case", PRECEDENCE_CASES, ids=[case[0] for case in PRECEDENCE_CASES])
def test_each_setting_comes_from_config_then_environment_then_default(case: tuple[Any, ...]) -> None:
    key, attr, in_config, in_env, from_config, from_env, default = case
    assert getattr(VaultSettings.load({key: in_config}, {key: in_env}), attr) == from_config
    assert getattr(VaultSettings.load({}, {key: in_env}), attr) == from_env
    assert getattr(VaultSettings.load({}, {}), attr) == default


def test_vault_addr_is_honoured_for_vault_url() -> None:
    assert VaultSettings.load({}, {"VAULT_ADDR": "http://addr.example:8200/"}).url == "http://addr.example:8200"


def test_vault_url_variable_wins_over_vault_addr() -> None:
    environ = {"VAULT_ADDR": "http://addr.example:8200", "VAULT_URL": "http://url.example:8200"}
    assert VaultSettings.load({}, environ).url == "http://url.example:8200"


def test_vault_url_in_config_wins_over_vault_addr() -> None:
    settings = VaultSettings.load(
        {"VAULT_URL": "http://config.example:8200"}, {"VAULT_ADDR": "http://addr.example:8200"}
    )
    assert settings.url == "http://config.example:8200"


def test_vault_secrets_json_in_environment_replaces_default_mapping() -> None:
    mapping = {"SECRET_KEY": "flask#secret_key", "STRIPE_API_KEY": "payments#stripe"}
    settings = VaultSettings.load({}, {"VAULT_SECRETS": json.dumps(mapping)})
    assert settings.secrets == mapping


def test_default_secret_mapping_matches_issue() -> None:
    assert VaultSettings.load({}, {}).secrets == {
        "SECRET_KEY": "flask#secret_key",
        "JWT_SECRET_KEY": "flask#jwt_secret",
        "SQLALCHEMY_DATABASE_URI": "database",
    }


def test_default_prefix_applies_only_when_no_prefix_is_configured() -> None:
    assert VaultSettings.load({}, {}, default_prefix="shop").path_prefix == "shop"
    assert VaultSettings.load({}, {"VAULT_PATH_PREFIX": "erp"}, default_prefix="shop").path_prefix == "erp"


@pytest.mark.parametrize(
    ("config", "environ", "expected"),
    [
        ({}, {}, True),
        ({"VAULT_SKIP_VERIFY": True}, {}, False),
        ({}, {"VAULT_SKIP_VERIFY": "yes"}, False),
        ({"VAULT_CACERT": "{ca}"}, {}, "{ca}"),
        ({}, {"VAULT_CACERT": "{ca}"}, "{ca}"),
        ({"VAULT_CAPATH": "{dir}"}, {}, "{dir}"),
    ],
)
def test_tls_verification_from_cacert_and_skip_verify(config, environ, expected, tmp_path) -> None:
    ca = tmp_path / "vault-ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")

    paths = {"{ca}": str(ca), "{dir}": str(tmp_path)}

    def fill(mapping):
        return {k: paths.get(v, v) if isinstance(v, str) else v for k, v in mapping.items()}

    assert VaultSettings.load(fill(config), fill(environ)).verify == paths.get(expected, expected)


def test_a_cacert_that_is_not_a_file_is_refused_naming_the_key() -> None:
    with pytest.raises(VaultConfigError, match="VAULT_CACERT"):
        VaultSettings.load({"VAULT_CACERT": "/nonexistent/vault-ca.pem"}, {})


@pytest.mark.parametrize(
    ("key", "value", "expected_words"),
    [
        ("VAULT_URL", "vault.example:8200", "http"),
        ("VAULT_URL", "ftp://vault.example", "http"),
        ("VAULT_URL", "", "URL"),
        ("VAULT_CACHE_TTL", "five minutes", "number"),
        ("VAULT_CACHE_TTL", -1, ">= 0"),
        ("VAULT_CACHE_TTL", "nan", "number"),
        ("VAULT_TIMEOUT", 0, "> 0"),
        ("VAULT_TIMEOUT", True, "number"),
        ("VAULT_FAIL_FAST", "maybe", "boolean"),
        ("VAULT_FALLBACK_ENV", 2, "boolean"),
        ("VAULT_SKIP_VERIFY", "sometimes", "boolean"),
        ("VAULT_SECRETS", "{not json", "JSON"),
        ("VAULT_SECRETS", '["SECRET_KEY"]', "mapping"),
        ("VAULT_SECRETS", {"SECRET_KEY": 42}, "name#field"),
        ("VAULT_SECRETS", {"SECRET_KEY": "#field"}, "name#field"),
        ("VAULT_SECRETS", {"SECRET_KEY": "../flask#secret_key"}, "Invalid secret name"),
        ("VAULT_SECRETS", '{"SECRET_KEY": "fläsk#secret_key"}', "Invalid secret name"),
        ("VAULT_MOUNT_POINT", "", "non-empty"),
        ("VAULT_MOUNT_POINT", "secret/../sys", "segments"),
        ("VAULT_ENVIRONMENT", "prod uction", "segments"),
        ("VAULT_PATH_PREFIX", "/store-erp", "segments"),
        ("VAULT_HEALTH_URL", "health", "'/'"),
        ("VAULT_ROTATION", "not json", "JSON object"),
        ("VAULT_ROTATION", '{"flask": 5}', "list of field names"),
        ("VAULT_ROTATION", {"flask": {"secret_key": {"length": 3}}}, "weaker than 128 bits"),
        ("VAULT_ROTATION", {"database": ["host"]}, "never rotates"),
        ("VAULT_ROTATION", {"payments": {"hook": {"generator": "no_such_module:make"}}}, "cannot be imported"),
        ("VAULT_SIGNING_KEY_WINDOW", "a month", "number"),
        ("VAULT_DATABASE_BINDS", '["reports"]', "mapping"),
        ("VAULT_DATABASE_BINDS", {"reports": "../db"}, "Invalid secret name"),
        ("VAULT_DATABASE_BINDS", {"reports": 7}, "Invalid secret name"),
    ],
)
def test_bad_value_raises_config_error_naming_the_key(key: str, value: Any, expected_words: str) -> None:
    with pytest.raises(VaultConfigError) as excinfo:
        VaultSettings.load({key: value}, {})
    assert excinfo.value.key == key
    assert key in str(excinfo.value)
    assert expected_words in str(excinfo.value)


def test_bad_value_from_environment_names_the_key() -> None:
    with pytest.raises(VaultConfigError, match="VAULT_CACHE_TTL"):
        VaultSettings.load({}, {"VAULT_CACHE_TTL": "soon"})


@pytest.mark.parametrize("key", ["VAULT_TOKEN", "VAULT_SECRET_ID", "VAULT_HEALTH_TOKEN", "VAULT_JWT"])
def test_bad_credential_value_is_never_shown_in_the_message(key: str) -> None:
    credential = 987654321987  # not a string: rejected, and must not be echoed
    with pytest.raises(VaultConfigError) as excinfo:
        VaultSettings.load({key: credential}, {})
    assert key in str(excinfo.value)
    assert str(credential) not in str(excinfo.value)
    assert str(credential) not in repr(excinfo.value)


def test_credentials_are_marked_once_and_every_list_of_them_follows_the_mark() -> None:
    values = {
        "VAULT_TOKEN": "canary-token",
        "VAULT_SECRET_ID": "canary-secret-id",
        "VAULT_WRAPPED_SECRET_ID": "canary-wrapped",
        "VAULT_JWT": "canary-jwt",
        "VAULT_HEALTH_TOKEN": "canary-health",
        "VAULT_ROLE_ID": "canary-role-id",
    }
    assert set(LOGIN_CREDENTIAL_KEYS) == {
        "VAULT_TOKEN",
        "VAULT_SECRET_ID",
        "VAULT_WRAPPED_SECRET_ID",
        "VAULT_JWT",
        "VAULT_ROLE_ID",
    }
    assert CREDENTIAL_KEYS == {*LOGIN_CREDENTIAL_KEYS, "VAULT_HEALTH_TOKEN"}
    settings = VaultSettings.load(values, {})
    shown = repr(settings)
    assert not [v for v in values.values() if v in shown]
    stripped = settings.without_login_credentials()
    assert (stripped.token, stripped.secret_id, stripped.wrapped_secret_id, stripped.jwt) == (None, None, None, None)
    assert (stripped.health_token, stripped.role_id) == ("canary-health", None)


def test_settings_repr_hides_the_token() -> None:
    settings = VaultSettings.load({"VAULT_TOKEN": "s.canary-settings-token"}, {})
    assert settings.token == "s.canary-settings-token"
    assert "canary-settings-token" not in repr(settings)


def test_init_app_rejects_a_bad_setting_before_contacting_vault(requests_mock: Any) -> None:
    app = Flask("bad_settings")
    app.config.update(VAULT_URL="http://vault.invalid:8200", VAULT_TOKEN="t", VAULT_CACHE_TTL="forever")
    with pytest.raises(VaultConfigError, match="VAULT_CACHE_TTL"):
        FlaskVault(app)
    assert "vault" not in app.extensions
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("config", "environ"),
    [
        ({"VAULT_ROTATION": {"flask": {"secret_key": {"alphabet": "aa"}}}}, {}),
        ({}, {"VAULT_ROTATION": '{"payments": {"webhook": {"lenght": 40}}}'}),
    ],
)
def test_init_app_rejects_a_bad_rotation_setting_before_contacting_vault(
    config: dict[str, Any], environ: dict[str, str], requests_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    app = Flask("bad_rotation")
    app.config.update(VAULT_URL="http://vault.invalid:8200", VAULT_TOKEN="t", **config)
    with pytest.raises(VaultConfigError, match="VAULT_ROTATION") as excinfo:
        FlaskVault(app)
    assert excinfo.value.key == "VAULT_ROTATION"
    assert len(str(excinfo.value).splitlines()) == 1
    assert "vault" not in app.extensions
    assert requests_mock.call_count == 0


def test_rotation_settings_are_parsed_over_the_built_in_defaults() -> None:
    settings = VaultSettings.load({"VAULT_ROTATION": {"payments": ["webhook"], "database": None}}, {})
    rules = settings.rotation
    assert [rule.field for rule in rules.fields_for("flask")] == ["secret_key", "jwt_secret"]
    assert [rule.field for rule in rules.fields_for("payments")] == ["webhook"]
    assert rules.fields_for("database") == ()
    assert VaultSettings.load({}, {}).rotation.names() == ["database", "flask"]


def test_init_app_reads_settings_from_environment_when_config_lacks_them(
    monkeypatch: pytest.MonkeyPatch, base_config: dict[str, Any]
) -> None:
    for key in ("VAULT_URL", "VAULT_TOKEN", "VAULT_PATH_PREFIX", "VAULT_ENVIRONMENT"):
        monkeypatch.setenv(key, base_config[key])
    monkeypatch.setenv("VAULT_CACHE_TTL", "42")
    app = Flask("env_only")
    app.config["VAULT_STARTUP_TIMEOUT"] = 0
    vault = FlaskVault(app)
    with app.app_context():
        assert vault.settings.cache_ttl == 42
        assert vault.client.full_path("flask") == "secret/store-erp/test/flask"


def test_init_app_defaults_prefix_to_app_name(base_config: dict[str, Any]) -> None:
    app = Flask("store-erp")
    config = {k: v for k, v in base_config.items() if k != "VAULT_PATH_PREFIX"}
    app.config.update(config)
    vault = FlaskVault(app)
    with app.app_context():
        assert vault.settings.path_prefix == "store-erp"
        assert app.config["SECRET_KEY"] == "test-secret-key-5f1c9e2a7b"


def test_client_without_arguments_reads_vault_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "https://addr.example:8200")
    monkeypatch.setenv("VAULT_TOKEN", "env-token-value")
    monkeypatch.setenv("VAULT_PATH_PREFIX", "store-erp")
    monkeypatch.setenv("VAULT_ENVIRONMENT", "production")
    monkeypatch.setenv("VAULT_MOUNT_POINT", "kv")
    client = VaultClient()
    assert client.url == "https://addr.example:8200"
    assert client.token == "env-token-value"
    assert client.full_path("flask") == "kv/store-erp/production/flask"
    assert client.settings.cache_ttl == 300


def test_client_arguments_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_ADDR", "http://addr.example:8200")
    monkeypatch.setenv("VAULT_ENVIRONMENT", "production")
    client = VaultClient("http://arg.example:8200", "arg-token", "staging", 12, mount_point="kv", path_prefix="erp")
    assert client.url == "http://arg.example:8200"
    assert client.full_path("flask") == "kv/erp/staging/flask"
    assert client.settings.cache_ttl == 12
    assert "arg-token" not in repr(client)


def test_client_outside_an_app_has_no_default_prefix() -> None:
    assert VaultClient().full_path("flask") == "secret/development/flask"


@pytest.mark.parametrize(
    ("where", "url"),
    [
        ("config", "https://operator:hunter2-pw-marker@vault.example.com:8200"),
        ("config", "https://vault-a:8200,https://hunter2-pw-marker@vault-b:8200"),
        ("env", "https://operator:hunter2-pw-marker@vault.example.com:8200"),
    ],
)
def test_a_vault_url_with_a_user_or_password_is_a_config_error_that_hides_them(where: str, url: str) -> None:
    config, environ = ({"VAULT_URL": url}, {}) if where == "config" else ({}, {"VAULT_ADDR": url})
    with pytest.raises(VaultConfigError) as caught:
        VaultSettings.load(config, environ)
    assert caught.value.key == "VAULT_URL"
    assert "must not hold a user name or password" in str(caught.value)
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(caught.value)
    assert "operator" not in str(caught.value)
    assert "<credentials>@vault" in str(caught.value)


def test_init_app_refuses_a_vault_url_with_credentials() -> None:
    from flask import Flask

    from flask_vault import FlaskVault

    app = Flask("url_credentials")
    app.config.update(VAULT_URL="https://ci:hunter2-pw-marker@vault.example.com:8200", VAULT_TOKEN="t")
    with pytest.raises(VaultConfigError, match="VAULT_URL must not hold") as caught:
        FlaskVault(app)
    assert "hunter2" not in str(caught.value)
