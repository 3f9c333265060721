"""The store-erp example: secrets from Vault drive its JWT login, its database and its sessions."""

from __future__ import annotations

import sqlite3
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from flask.testing import FlaskClient
from itsdangerous import BadSignature

from example_app import create_app
from flask_vault import VaultError


def login(client: FlaskClient, username: str = "demo", password: str = "demo") -> Any:
    return client.post("/login", json={"username": username, "password": password})


@pytest.fixture
def auth_headers(client: FlaskClient) -> dict[str, str]:
    response = login(client)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


def session_serializer(secret_key: str) -> Any:
    signer = Flask("cookie_check")
    signer.secret_key = secret_key
    return SecureCookieSessionInterface().get_signing_serializer(signer)


# -- start-up --------------------------------------------------------------------------


def test_create_app_fills_the_three_keys_from_vault(app: Flask, store: dict[str, Any]) -> None:
    assert app.config["SECRET_KEY"] == store["flask"]["secret_key"]
    assert app.config["JWT_SECRET_KEY"] == store["flask"]["jwt_secret"]
    assert app.config["SQLALCHEMY_DATABASE_URI"] == store["database"]["url"]
    assert "VAULT_TOKEN" not in app.config


def test_create_app_creates_the_tables_in_the_database_from_vault(app: Flask, store: dict[str, Any]) -> None:
    with sqlite3.connect(store["db_file"]) as conn:
        tables = {row[0] for row in conn.execute("select name from sqlite_master where type='table'")}
    assert "store_product" in tables


def test_create_app_refuses_to_start_without_secrets(test_config: dict[str, Any]) -> None:
    with pytest.raises(VaultError, match="SECRET_KEY"):
        create_app({**test_config, "VAULT_ENVIRONMENT": "no-such-environment"})


def test_the_factory_builds_independent_apps_with_one_extension(
    app: Flask, test_config: dict[str, Any], store: dict[str, Any]
) -> None:
    other = create_app(test_config)
    assert other is not app
    assert other.extensions["vault"] is not app.extensions["vault"]
    assert other.config["SECRET_KEY"] == app.config["SECRET_KEY"]
    with other.app_context():
        from example_app.models import db

        db.engine.dispose()


def test_index_shows_where_secrets_came_from_but_not_their_values(client: FlaskClient, store: dict[str, Any]) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_json()["secrets"] == {
        "SECRET_KEY": "vault",
        "JWT_SECRET_KEY": "vault",
        "SQLALCHEMY_DATABASE_URI": "vault",
    }
    body = response.get_data(as_text=True)
    for value in (*store["flask"].values(), store["database"]["url"], str(store["db_file"])):
        assert value not in body


# -- JWT login -------------------------------------------------------------------------


def test_login_with_good_credentials_returns_a_jwt_signed_with_the_vault_key(
    client: FlaskClient, store: dict[str, Any]
) -> None:
    response = login(client)
    assert response.status_code == 200
    token = response.get_json()["access_token"]
    claims = pyjwt.decode(token, store["flask"]["jwt_secret"], algorithms=["HS256"])
    assert claims["sub"] == "demo"
    with pytest.raises(pyjwt.InvalidSignatureError):
        pyjwt.decode(token, store["flask"]["secret_key"], algorithms=["HS256"])


@pytest.mark.parametrize(
    "body",
    [
        {"username": "demo", "password": "wrong"},
        {"username": "someone", "password": "demo"},
        {"username": "demo"},
        {},
    ],
    ids=["bad-password", "bad-user", "no-password", "empty"],
)
def test_login_with_bad_credentials_is_refused(client: FlaskClient, body: dict[str, str]) -> None:
    response = client.post("/login", json=body)
    assert response.status_code == 401
    assert "access_token" not in response.get_json()


# -- products --------------------------------------------------------------------------


def test_products_require_a_jwt(client: FlaskClient) -> None:
    assert client.get("/products").status_code == 401
    assert client.post("/products", json={"sku": "A", "name": "a", "price": "1"}).status_code == 401


def test_jwt_signed_with_another_key_is_rejected(client: FlaskClient) -> None:
    forged = pyjwt.encode(
        {"sub": "demo", "type": "access", "fresh": False, "jti": "x", "nbf": 0, "iat": 0, "exp": 4102444800},
        "another-key-that-is-long-enough-for-hs256-0123456789",
        algorithm="HS256",
    )
    response = client.get("/products", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code in (401, 422)
    assert "products" not in response.get_json()


def test_create_and_list_a_product_with_a_jwt(
    client: FlaskClient, auth_headers: dict[str, str], store: dict[str, Any]
) -> None:
    created = client.post(
        "/products", json={"sku": "ERP-001", "name": "Barcode scanner", "price": "49.90"}, headers=auth_headers
    )
    assert created.status_code == 201
    assert created.get_json()["sku"] == "ERP-001"
    listed = client.get("/products", headers=auth_headers)
    assert listed.status_code == 200
    body = listed.get_json()
    assert body["user"] == "demo"
    assert [(p["sku"], p["name"], p["price"]) for p in body["products"]] == [("ERP-001", "Barcode scanner", "49.90")]
    # The row is in the SQLite file named by the Vault secret.
    with sqlite3.connect(store["db_file"]) as conn:
        assert conn.execute("select sku from store_product").fetchall() == [("ERP-001",)]


def test_product_with_bad_body_is_rejected(client: FlaskClient, auth_headers: dict[str, str]) -> None:
    response = client.post("/products", json={"sku": "X", "name": "x", "price": "cheap"}, headers=auth_headers)
    assert response.status_code == 400
    assert client.get("/products", headers=auth_headers).get_json()["products"] == []


# -- session ---------------------------------------------------------------------------


def test_visits_cookie_is_signed_with_the_vault_secret_key(client: FlaskClient, store: dict[str, Any]) -> None:
    assert client.get("/visits").get_json() == {"visits": 1}
    assert client.get("/visits").get_json() == {"visits": 2}
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert session_serializer(store["flask"]["secret_key"]).loads(cookie.value) == {"visits": 2}
    with pytest.raises(BadSignature):
        session_serializer(store["flask"]["jwt_secret"]).loads(cookie.value)


def test_session_cookie_signed_with_another_key_is_ignored(client: FlaskClient) -> None:
    forged = session_serializer("not-the-vault-secret-key").dumps({"visits": 99})
    client.set_cookie("session", forged)
    assert client.get("/visits").get_json() == {"visits": 1}
