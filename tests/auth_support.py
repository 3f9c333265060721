"""Helpers for the auth tests: a dedicated OpenBao server, AppRoles, log capture, leak checks.

The auth tests enable auth methods and create short-lived roles, so they run against a
server of their own (module scope) instead of the shared session server.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import hvac
import pytest
import requests
from core_support import logging_to, poll, read_policy
from flask import Flask

from flask_vault import FlaskVault
from flask_vault.devserver import OpenBaoServer

PREFIX = "store-erp"
ENVIRONMENT = "auth"
FLASK_SECRET = {"secret_key": "auth-secret-key-3e9d1c7a55", "jwt_secret": "auth-jwt-secret-71b2f0c9d4"}
DATABASE_SECRET = {"url": "sqlite://"}
APP_POLICY = "store-erp-auth-app"


def start_auth_server() -> OpenBaoServer:
    """A dev server with the store-erp secrets, an app policy and AppRole at ``approle/``."""
    server = OpenBaoServer().start()
    root = server.root_client()
    root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/flask", FLASK_SECRET)
    root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/database", DATABASE_SECRET)
    root.sys.create_or_update_policy(APP_POLICY, app_policy(ENVIRONMENT))
    root.sys.enable_auth_method("approle")
    return server


def app_policy(environment: str) -> str:
    return read_policy("secret", f"{PREFIX}/{environment}/*")


@pytest.fixture(scope="module")
def auth_server() -> Iterator[OpenBaoServer]:
    server = start_auth_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def root(auth_server: OpenBaoServer) -> hvac.Client:
    return auth_server.root_client()


def unique(prefix: str = "r") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def make_approle(root: hvac.Client, name: str | None = None, *, mount: str = "approle", **params: Any) -> AppRole:
    """Create an AppRole with the app policy; returns its name, role_id and one secret_id."""
    name = name or unique("role")
    params.setdefault("token_policies", [APP_POLICY])
    root.auth.approle.create_or_update_approle(name, mount_point=mount, **params)
    role_id = root.auth.approle.read_role_id(name, mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(name, mount_point=mount)["data"]["secret_id"]
    return AppRole(name, role_id, secret_id, mount)


class AppRole:
    def __init__(self, name: str, role_id: str, secret_id: str, mount: str) -> None:
        self.name, self.role_id, self.secret_id, self.mount = name, role_id, secret_id, mount

    def config(self, server: OpenBaoServer, **extra: Any) -> dict[str, Any]:
        """App config for this role on ``server`` (no VAULT_TOKEN)."""
        return {
            "TESTING": True,
            "VAULT_URL": server.url,
            "VAULT_ROLE_ID": self.role_id,
            "VAULT_SECRET_ID": self.secret_id,
            "VAULT_APPROLE_MOUNT": self.mount,
            "VAULT_PATH_PREFIX": PREFIX,
            "VAULT_ENVIRONMENT": ENVIRONMENT,
            "VAULT_STARTUP_TIMEOUT": 0,
            **extra,
        }


def uncached_secret_app(name: str, role: AppRole, server: OpenBaoServer) -> Flask:
    """An AppRole app whose GET /secret reads flask#secret_key from Vault on every request."""
    app = Flask(name)
    app.config.update(role.config(server))

    @app.get("/secret")
    def secret() -> str:
        value: str = app.extensions["vault"].client.get_secret("flask", "secret_key", use_cache=False)
        return value

    FlaskVault(app)
    return app


def wrapped_secret_id(server: OpenBaoServer, path: str, ttl: str = "60s") -> str:
    """A response-wrapped answer of POST ``path`` (e.g. an AppRole secret-id endpoint)."""
    response = requests.post(
        f"{server.url}/v1/{path}",
        headers={"X-Vault-Token": server.root_token, "X-Vault-Wrap-TTL": ttl},
        json={} if "wrapping/wrap" not in path else {"secret_id": "not-a-real-secret-id"},
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["wrap_info"]["token"]
    return token


def token_accessors_of_role(root: hvac.Client, role_name: str) -> list[str]:
    """Accessors of the live tokens whose metadata names ``role_name`` (AppRole logins)."""
    accessors = root.adapter.list("/v1/auth/token/accessors")["data"]["keys"]
    found = []
    for accessor in accessors:
        try:
            data = root.auth.token.lookup_accessor(accessor)["data"]
        except hvac.exceptions.InvalidRequest:
            continue  # revoked or expired meanwhile
        if (data.get("meta") or {}).get("role_name") == role_name:
            found.append(accessor)
    return found


class LogCapture(logging.Handler):
    """Every record of the ``flask_vault`` loggers (audit included), kept for inspection."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Messages, structured fields and tracebacks, as anything shipping them would see."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        lines = []
        for record in list(self.records):
            lines.append(formatter.format(record))
            lines.append(repr(getattr(record, "vault", "")))
        return "\n".join(lines)

    def audit(self, operation: str, outcome: str = "ok") -> list[logging.LogRecord]:
        return [
            r
            for r in list(self.records)
            if r.name == "flask_vault.audit"
            and isinstance(getattr(r, "vault", None), dict)
            and r.vault["operation"] == operation  # type: ignore[attr-defined]
            and r.vault["outcome"] == outcome  # type: ignore[attr-defined]
        ]

    def messages(self, logger: str) -> list[str]:
        return [r.getMessage() for r in list(self.records) if r.name == logger]


@pytest.fixture
def flask_vault_logs() -> Iterator[LogCapture]:
    with logging_to(LogCapture(), "flask_vault", logging.DEBUG) as handler:
        yield handler


def assert_no_leak(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret and secret not in text, "a credential reached the output"


def wait_for(condition: Callable[[], Any], timeout: float, message: str, interval: float = 0.05) -> Any:
    """Poll ``condition`` until it is truthy or ``timeout`` passes (then fail with ``message``)."""
    return poll(condition, timeout=timeout, interval=interval, message=message)
