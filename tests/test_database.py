"""SQLALCHEMY_DATABASE_URI from a database secret: a ``url`` as is, or built with any password."""

from __future__ import annotations

import sys
from typing import Any

import hvac
import pytest
import sqlalchemy
from core_support import init_vault, make_app, write_secret
from sqlalchemy.engine import make_url

from flask_vault import FlaskVault, SecretNotFoundError, VaultError
from flask_vault.database import build_database_url

NASTY_PASSWORD = "p@ss:w/rd%?#&=+ é/@@::%%25?#[]"
FIELDS = {"host": "db.internal", "port": 5432, "username": "store", "password": "secret", "database": "store_erp"}


@pytest.fixture(params=["sqlalchemy", "by-hand"])
def builder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with SQLAlchemy's URL tools, and again as if SQLAlchemy were not installed."""
    if request.param == "by-hand":
        monkeypatch.setitem(sys.modules, "sqlalchemy.engine", None)  # the import in database.py fails
    return str(request.param)


def test_url_field_is_used_as_is() -> None:
    url = "postgresql+psycopg://u:p%40ss@db:5432/x?sslmode=require"
    assert build_database_url({"url": url, "host": "ignored"}) == url


def test_url_is_built_from_fields_with_postgresql_by_default(builder: str) -> None:
    url = make_url(build_database_url(FIELDS))
    assert url.drivername == "postgresql"
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "store",
        "secret",
        "db.internal",
        5432,
        "store_erp",
    )


def test_driver_field_is_used(builder: str) -> None:
    assert make_url(build_database_url({**FIELDS, "driver": "postgresql+psycopg"})).drivername == "postgresql+psycopg"


def test_port_given_as_text_is_accepted(builder: str) -> None:
    assert make_url(build_database_url({**FIELDS, "port": "6543"})).port == 6543


def test_port_and_password_are_optional(builder: str) -> None:
    url = make_url(build_database_url({"host": "db", "username": "store", "database": "erp"}))
    assert (url.host, url.port, url.password) == ("db", None, None)


@pytest.mark.parametrize("password", [NASTY_PASSWORD, "@", ":", "/", "%", "?", "#", "%41", " ", "é"])
def test_password_with_special_characters_round_trips_through_make_url(builder: str, password: str) -> None:
    url = make_url(build_database_url({**FIELDS, "password": password}))
    assert url.password == password
    assert (url.host, url.port, url.database, url.username) == ("db.internal", 5432, "store_erp", "store")


def test_username_with_special_characters_round_trips(builder: str) -> None:
    url = make_url(build_database_url({**FIELDS, "username": "app@erp:ro"}))
    assert url.username == "app@erp:ro"


@pytest.mark.skipif(
    tuple(int(part) for part in sqlalchemy.__version__.split(".")[:2]) < (2, 1),
    reason="SQLAlchemy < 2.1 URLs cannot hold '/' or '?' in a database name (make_url does not unquote it)",
)
def test_database_name_with_special_characters_round_trips(builder: str) -> None:
    url = make_url(build_database_url({**FIELDS, "database": "erp/2024?x"}))
    assert url.database == "erp/2024?x"


@pytest.mark.parametrize("missing", ["host", "username", "database"])
def test_missing_field_raises_not_found_listing_fields_present_without_values(missing: str) -> None:
    data = {k: v for k, v in FIELDS.items() if k != missing}
    data["password"] = "canary-db-password"
    with pytest.raises(SecretNotFoundError) as excinfo:
        build_database_url(data, path="secret/store-erp/test/database")
    message = str(excinfo.value)
    assert repr(missing) in message
    assert "secret/store-erp/test/database" in message
    for present in data:
        assert present in message
    assert "canary-db-password" not in message
    assert "db.internal" not in message


@pytest.mark.parametrize("port", ["not-a-port", "54 32", "5432.5"])
def test_malformed_port_raises_a_vault_error_without_values(port: str) -> None:
    with pytest.raises(VaultError) as excinfo:
        build_database_url({**FIELDS, "port": port, "password": "canary-db-password"}, path="secret/x/database")
    assert "port" in str(excinfo.value)
    assert "secret/x/database" in str(excinfo.value)
    assert "canary-db-password" not in str(excinfo.value)


# -- through init_app against the real server ------------------------------------------


def test_seeded_password_round_trips_through_init_app(app: Any, vault: FlaskVault, seeded: dict) -> None:
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    expected = seeded["database"]
    assert url.password == expected["password"]
    assert (url.username, url.host, url.port, url.database) == (
        expected["username"],
        expected["host"],
        expected["port"],
        expected["database"],
    )


def test_nasty_password_written_to_vault_round_trips(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "k", "jwt_secret": "j"})
    write_secret(
        vault_root,
        f"store-erp/{unique_env}/database",
        {"driver": "postgresql+psycopg", "host": "db", "port": "5432", "username": "u@x", "password": NASTY_PASSWORD,
         "database": "erp"},
    )  # fmt: skip
    app, _ = init_vault(base_config, VAULT_ENVIRONMENT=unique_env)
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    assert (url.drivername, url.username, url.password) == ("postgresql+psycopg", "u@x", NASTY_PASSWORD)


def test_url_field_in_vault_is_used_as_is_by_init_app(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path}/store.db"
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "k", "jwt_secret": "j"})
    write_secret(vault_root, f"store-erp/{unique_env}/database", {"url": url})
    app, _ = init_vault(base_config, VAULT_ENVIRONMENT=unique_env)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == url


def test_incomplete_database_secret_fails_fast_listing_fields_without_values(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "k", "jwt_secret": "j"})
    write_secret(vault_root, f"store-erp/{unique_env}/database", {"host": "db", "password": "canary-db-password"})
    app = make_app(base_config, VAULT_ENVIRONMENT=unique_env)
    with pytest.raises(SecretNotFoundError) as excinfo:
        FlaskVault(app)
    message = str(excinfo.value)
    assert "SQLALCHEMY_DATABASE_URI" in message
    assert f"secret/store-erp/{unique_env}/database" in message
    assert "host" in message and "password" in message
    assert "canary-db-password" not in message


def test_incomplete_database_secret_falls_back_to_database_url(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "k", "jwt_secret": "j"})
    write_secret(vault_root, f"store-erp/{unique_env}/database", {"host": "db"})
    monkeypatch.setenv("DATABASE_URL", "sqlite:///fallback.db")
    app, vault = init_vault(base_config, VAULT_ENVIRONMENT=unique_env)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///fallback.db"
    with app.app_context():
        assert vault.sources["SQLALCHEMY_DATABASE_URI"].origin == "env"


def test_malformed_port_in_vault_falls_back_to_database_url(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_secret(vault_root, f"store-erp/{unique_env}/flask", {"secret_key": "k", "jwt_secret": "j"})
    write_secret(vault_root, f"store-erp/{unique_env}/database", {**FIELDS, "port": "five-four-three-two"})
    monkeypatch.setenv("DATABASE_URL", "sqlite:///fallback.db")
    app, _ = init_vault(base_config, VAULT_ENVIRONMENT=unique_env)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "sqlite:///fallback.db"
