"""Rotating secrets in Vault while the example app runs (issue 6, live refresh).

Sessions and JWTs issued before a rotation stay valid; new ones use the new key;
``vault.on_change`` callbacks and the ``secret_changed`` signal report the change
(names and versions only).
"""

from __future__ import annotations

import time
from typing import Any

import hvac
import jwt as pyjwt
import pytest
from flask import Flask
from flask.testing import FlaskClient

from example_app import vault as example_vault
from flask_vault import SecretChange, secret_changed


@pytest.fixture
def test_config(test_config: dict[str, Any]) -> dict[str, Any]:
    return {**test_config, "VAULT_CACHE_TTL": 1}


def rotate(vault_root: hvac.Client, store: dict[str, Any], **fields: str) -> int:
    path = f"store-erp/{store['environment']}/flask"
    current = vault_root.secrets.kv.v2.read_secret_version(path, raise_on_deleted_version=True)["data"]
    response = vault_root.secrets.kv.v2.create_or_update_secret(
        path, {**current["data"], **fields}, cas=current["metadata"]["version"]
    )
    return int(response["data"]["version"])


def wait_for_config(web: FlaskClient, app: Flask, key: str, value: str, timeout: float = 4.0) -> float:
    """Make requests until app.config[key] == value; return how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        web.get("/")
        if app.config[key] == value:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{key} did not follow the new version within {timeout}s")


def session_cookie(web: FlaskClient, app: Flask) -> str:
    cookie = web.get_cookie(app.config.get("SESSION_COOKIE_NAME", "session"))
    assert cookie is not None
    return cookie.value


def test_session_signed_before_a_secret_key_rotation_is_still_accepted(
    app: Flask, vault_root: hvac.Client, store: dict[str, Any]
) -> None:
    web = app.test_client()
    assert web.get("/visits").get_json() == {"visits": 1}
    old_key = app.config["SECRET_KEY"]

    rotate(vault_root, store, secret_key="rotated-secret-key-" + "x" * 40)
    elapsed = wait_for_config(web, app, "SECRET_KEY", "rotated-secret-key-" + "x" * 40)
    assert elapsed <= 1 + 1  # VAULT_CACHE_TTL + 1 s
    assert app.config["SECRET_KEY"] != old_key

    # The cookie from before the rotation still counts; the answer is signed with the new key.
    assert web.get("/visits").get_json() == {"visits": 2}
    only_new_key = Flask("verifier")
    only_new_key.config["SECRET_KEY"] = app.config["SECRET_KEY"]
    serializer = only_new_key.session_interface.get_signing_serializer(only_new_key)  # type: ignore[attr-defined]
    assert serializer.loads(session_cookie(web, app)) == {"visits": 2}


def test_jwt_signed_before_a_jwt_secret_rotation_stays_valid_and_new_ones_carry_the_new_kid(
    app: Flask, vault_root: hvac.Client, store: dict[str, Any]
) -> None:
    web = app.test_client()
    login = {"username": "demo", "password": "demo"}
    old_token = web.post("/login", json=login).get_json()["access_token"]
    old_kid = pyjwt.get_unverified_header(old_token)["kid"]

    version = rotate(vault_root, store, jwt_secret="rotated-jwt-secret-" + "y" * 40)
    wait_for_config(web, app, "JWT_SECRET_KEY", "rotated-jwt-secret-" + "y" * 40)

    headers = {"Authorization": f"Bearer {old_token}"}
    assert web.get("/products", headers=headers).status_code == 200
    new_token = web.post("/login", json=login).get_json()["access_token"]
    assert pyjwt.get_unverified_header(new_token)["kid"] == f"vault-v{version}" != old_kid
    pyjwt.decode(new_token, "rotated-jwt-secret-" + "y" * 40, algorithms=["HS256"])
    forged = pyjwt.encode(
        {"sub": "demo", "type": "access", "fresh": False}, "not-the-key-" + "q" * 40, headers={"kid": old_kid}
    )
    assert web.get("/products", headers={"Authorization": f"Bearer {forged}"}).status_code == 422


def test_on_change_callback_and_signal_report_names_and_versions_only(
    app: Flask, vault_root: hvac.Client, store: dict[str, Any]
) -> None:
    calls: list[SecretChange] = []
    signalled: list[SecretChange] = []
    example_vault.on_change("flask", calls.append)

    def on_signal(sender: Flask, change: SecretChange) -> None:
        signalled.append(change)

    secret_changed.connect(on_signal, app)
    try:
        web = app.test_client()
        version = rotate(vault_root, store, secret_key="another-rotated-key-" + "z" * 40)
        wait_for_config(web, app, "SECRET_KEY", "another-rotated-key-" + "z" * 40)
        # The refresher fills app.config first, then runs the callbacks and sends the signal
        # (from the thread that read the new version): wait for the signal, sent last.
        deadline = time.monotonic() + 4
        while not signalled and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        secret_changed.disconnect(on_signal, app)
        example_vault._change_callbacks["flask"].remove(calls.append)
    assert len(calls) == 1 and signalled == calls
    change = calls[0]
    assert (change.name, change.version, change.previous_version) == ("flask", version, version - 1)
    assert change.changed_fields == ("secret_key",)
    assert change.config_keys == ("SECRET_KEY",)
    assert "another-rotated-key" not in repr(change)
