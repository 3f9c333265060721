"""Signing keys come from Vault's KV versions, so sessions and JWTs survive rotations in every process.

Each test writes its own environment on the shared dev server; the app is
``tests/rotation_app.py`` (Flask sessions, flask-jwt-extended with ``use_vault_jwt_keys``),
built in-process or run as a fresh process.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import hvac
import jwt as pyjwt
import pytest
from core_support import FakeClock, app_process_env
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from rotation_app import build_app

from flask_vault import VaultConfigError
from flask_vault.flight import ThrottledFlight
from flask_vault.sessions import VaultSessionInterface
from flask_vault.signing import MAX_VERSIONS_BACK, parse_kid, parse_vault_time
from flask_vault.state import VaultState, get_state

REPO = Path(__file__).resolve().parent.parent
PREFIX = "store-erp"


def rotate_flask(vault_root: hvac.Client, environment: str) -> int:
    """A new version of the flask secret with new keys (what `flask vault rotate` writes)."""
    response = vault_root.secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{environment}/flask",
        {"secret_key": f"sk-{secrets.token_hex(16)}", "jwt_secret": f"jwt-{secrets.token_hex(16)}"},
    )
    return int(response["data"]["version"])


@pytest.fixture
def env(vault_root: hvac.Client, unique_env: str) -> str:
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{unique_env}/database", {"url": "sqlite://"})
    rotate_flask(vault_root, unique_env)
    return unique_env


@pytest.fixture
def make(base_config: dict[str, Any], env: str, tmp_path: Path) -> Any:
    def make(name: str, **config: Any) -> Flask:
        settings = {**base_config, "VAULT_ENVIRONMENT": env, "VAULT_HEALTH_URL": None, **config}
        return build_app(settings, name=name, instance=str(tmp_path))

    return make


def sign_in(app: Flask) -> tuple[str, str]:
    """(session cookie, JWT) the app signs for a login."""
    web = app.test_client()
    token = web.post("/login").get_json()["token"]
    cookie = web.get_cookie("session")
    assert cookie is not None
    return cookie.value, token


def session_status(app: Flask, cookie: str) -> int:
    web = app.test_client()
    web.set_cookie("session", cookie)
    return web.get("/session").status_code


def jwt_status(app: Flask, token: str) -> int:
    return app.test_client().get("/jwt", headers={"Authorization": f"Bearer {token}"}).status_code


def state_of(app: Flask) -> VaultState:
    return get_state(app)


def reads(app: Flask) -> int:
    return state_of(app).client.metrics.count("read")


def forged_cookie() -> str:
    forger = Flask("forger")
    forger.secret_key = secrets.token_hex(16)
    serializer = SecureCookieSessionInterface().get_signing_serializer(forger)
    assert serializer is not None
    return serializer.dumps({"user": "demo"})


def forged_jwt(kid: str) -> str:
    now = int(time.time())
    claims = {"sub": "demo", "type": "access", "fresh": False, "jti": secrets.token_hex(8), "iat": now, "nbf": now}
    return pyjwt.encode({**claims, "exp": now + 600}, secrets.token_hex(16), headers={"kid": kid})


# -- across processes and workers --------------------------------------------------------


def test_sessions_and_jwts_signed_before_rotations_are_accepted_by_a_fresh_process(
    make: Any, openbao_server: Any, vault_root: hvac.Client, env: str, tmp_path: Path
) -> None:
    cookie, token = sign_in(make("before"))
    assert pyjwt.get_unverified_header(token)["kid"] == "vault-v1"
    rotate_flask(vault_root, env)
    assert rotate_flask(vault_root, env) == 3
    child_env = app_process_env(
        tmp_path,
        VAULT_ADDR=openbao_server.url,
        VAULT_TOKEN=openbao_server.root_token,
        VAULT_ENVIRONMENT=env,
        VAULT_HEALTH_URL="none",
        ROTATION_INSTANCE=str(tmp_path),
        ROTATION_COOKIE=cookie,
        ROTATION_JWT=token,
    )
    result = subprocess.run(
        [sys.executable, "tests/rotation_app.py", "check"], cwd=REPO, env=child_env, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert json.loads(result.stdout.decode().strip().splitlines()[-1]) == {"session": 200, "jwt": 200}

    child_env.update(ROTATION_COOKIE=forged_cookie(), ROTATION_JWT=forged_jwt("vault-v1"))
    refused = subprocess.run(
        [sys.executable, "tests/rotation_app.py", "check"], cwd=REPO, env=child_env, capture_output=True, timeout=60
    )
    assert json.loads(refused.stdout.decode().strip().splitlines()[-1]) == {"session": 401, "jwt": 422}


def test_what_a_worker_that_saw_the_rotation_signs_is_accepted_by_one_that_did_not(
    make: Any, vault_root: hvac.Client, env: str
) -> None:
    behind = make("behind")  # VAULT_CACHE_TTL 300: on its own it would see version 2 in minutes
    rotate_flask(vault_root, env)
    ahead = make("ahead")
    cookie, token = sign_in(ahead)
    assert pyjwt.get_unverified_header(token)["kid"] == "vault-v2"
    before = reads(behind)

    assert session_status(behind, cookie) == 200
    assert jwt_status(behind, token) == 200
    assert session_status(behind, cookie) == 200
    assert reads(behind) - before == 1  # one re-read of the secret found version 2
    # It signs with version 2 itself now, and its old sessions still count.
    assert pyjwt.get_unverified_header(sign_in(behind)[1])["kid"] == "vault-v2"


def test_older_versions_are_read_once_when_a_signature_needs_them_not_at_start_up(
    make: Any, vault_root: hvac.Client, env: str
) -> None:
    first = sign_in(make("first"))
    for _ in range(3):
        rotate_flask(vault_root, env)
    fresh = make("fresh")
    assert reads(fresh) == 2  # flask and database: no older version read at start-up
    for _ in range(3):
        assert session_status(fresh, first[0]) == 200
        assert jwt_status(fresh, first[1]) == 200
    # Versions 3, 2, 1 for the cookie (walking back from 4), nothing more for the JWT's kid.
    assert reads(fresh) == 2 + 3


def test_a_key_replaced_longer_ago_than_the_window_is_refused(make: Any, vault_root: hvac.Client, env: str) -> None:
    cookie, token = sign_in(make("old"))
    rotate_flask(vault_root, env)
    app = make("windowed", VAULT_SIGNING_KEY_WINDOW=60, VAULT_CACHE_TTL=1)
    keyring = state_of(app).keyring
    assert keyring is not None and keyring.window == 61
    assert session_status(app, cookie) == 200 and jwt_status(app, token) == 200
    for secret in keyring.secrets:
        secret.wall_clock = lambda: time.time() + 3600  # an hour after the rotation
    assert session_status(app, cookie) == 401
    assert jwt_status(app, token) == 422


def test_the_window_defaults_to_the_session_lifetime_plus_the_cache_ttl(make: Any) -> None:
    app = make("lifetime", PERMANENT_SESSION_LIFETIME=600, VAULT_CACHE_TTL=5)
    keyring = state_of(app).keyring
    assert keyring is not None and keyring.window == 605


@pytest.mark.parametrize("deleted", [[1], [2]])
def test_a_deleted_version_retires_itself_and_every_older_one(
    make: Any, vault_root: hvac.Client, env: str, deleted: list[int]
) -> None:
    cookie, token = sign_in(make("signer"))  # version 1
    rotate_flask(vault_root, env)
    rotate_flask(vault_root, env)
    vault_root.secrets.kv.v2.delete_secret_versions(f"{PREFIX}/{env}/flask", versions=deleted)
    fresh = make("after_delete")
    assert session_status(fresh, cookie) == 401
    assert jwt_status(fresh, token) == 422


# -- bounded Vault reads -----------------------------------------------------------------


def test_forged_cookies_and_jwts_cause_a_bounded_number_of_vault_reads(
    make: Any, vault_root: hvac.Client, env: str
) -> None:
    rotate_flask(vault_root, env)
    rotate_flask(vault_root, env)  # versions 1-3
    app = make("attacked")
    keyring = state_of(app).keyring
    assert keyring is not None
    [secret] = keyring.secrets
    clock = FakeClock()
    secret.reread.clock = clock
    before = reads(app)
    statuses = set()
    for n in range(100):
        statuses.add(session_status(app, forged_cookie()))
        statuses.add(jwt_status(app, forged_jwt(f"vault-v{n % 5}")))  # 0-4: current, older, newer, nonsense
        statuses.add(jwt_status(app, forged_jwt(f"vault-v{10**6 + n}")))
    assert statuses == {401, 422}
    # Versions 2 and 1 once each, and one re-read of the secret while the clock stood still.
    assert reads(app) - before == 3
    assert secret.reread.runs == 1 and secret.reread.throttled >= 200
    clock.advance(1.0)
    assert session_status(app, forged_cookie()) == 401
    assert reads(app) - before == 4


def test_kids_far_below_the_current_version_are_not_read(make: Any, vault_root: hvac.Client, env: str) -> None:
    app = make("far")
    [secret] = state_of(app).keyring.secrets  # type: ignore[union-attr]
    assert secret.get(1 - MAX_VERSIONS_BACK - 5) is None
    assert jwt_status(app, forged_jwt("vault-v-3")) == 422
    assert reads(app) == 2


# -- pieces ------------------------------------------------------------------------------


def test_an_app_with_its_own_session_interface_keeps_it(base_config: dict[str, Any], env: str) -> None:
    class Custom(SecureCookieSessionInterface):
        pass

    app = Flask("custom_sessions")
    app.session_interface = Custom()
    app.config.update(base_config, VAULT_ENVIRONMENT=env)
    from flask_vault import FlaskVault

    FlaskVault(app)
    assert type(app.session_interface) is Custom
    plain = Flask("plain_sessions")
    plain.config.update(base_config, VAULT_ENVIRONMENT=env)
    FlaskVault(plain)
    assert isinstance(plain.session_interface, VaultSessionInterface)


@pytest.mark.parametrize("value", ["soon", -1, "nan"])
def test_a_bad_window_is_refused_naming_the_setting(base_config: dict[str, Any], env: str, value: Any) -> None:
    from core_support import make_app

    from flask_vault import FlaskVault

    with pytest.raises(VaultConfigError, match="VAULT_SIGNING_KEY_WINDOW must be a number of seconds"):
        FlaskVault(make_app(base_config, VAULT_ENVIRONMENT=env, VAULT_SIGNING_KEY_WINDOW=value))


def test_vault_times_and_kids_parse() -> None:
    assert parse_vault_time("2026-11-30T04:24:00.123456789Z") == pytest.approx(1796012640.123457, abs=1e-5)
    assert parse_vault_time("2026-11-30T05:24:00+01:00") == 1796012640.0
    assert parse_vault_time("yesterday") is None and parse_vault_time(None) is None
    assert [parse_kid(k) for k in ("vault-v7", "vault-v", "vault-v-1", "v7", 7, "vault-v" + "9" * 13)] == [
        7,
        None,
        None,
        None,
        None,
        None,
    ]


def test_a_throttled_flight_runs_once_for_concurrent_callers_and_once_per_interval() -> None:
    clock = FakeClock()
    flight = ThrottledFlight(1.0, clock=clock)
    release = threading.Event()
    calls: list[int] = []

    def slow_read() -> None:
        calls.append(1)
        release.wait(5)

    results: list[bool] = []
    threads = [threading.Thread(target=lambda: results.append(flight.run(slow_read))) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while not calls and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(5)
    # One run: every caller joined it, or (arriving after it ended) was throttled; none ran again.
    assert calls == [1] and len(results) == 8
    assert results.count(True) + flight.throttled == 8 and results.count(True) >= 1
    throttled = flight.throttled
    assert flight.run(slow_read) is False and flight.throttled == throttled + 1
    clock.advance(1.0)
    assert flight.run(slow_read) is True and len(calls) == 2


def test_a_failed_flight_says_so() -> None:
    def broken() -> None:
        raise RuntimeError("no")

    assert ThrottledFlight(0.0).run(broken) is False
