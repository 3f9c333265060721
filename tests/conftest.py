"""Shared fixtures: one real OpenBao dev server per session, seeded with store-erp secrets.

``openbao_server`` comes from :mod:`flask_vault.testing`, and a clean process environment
for each test (no VAULT_*, SECRET_KEY, ... leaking in from the shell) from the top-level
conftest.py. Each test gets a fresh ``app``; ``vault`` applies the extension so a test
can change ``app.config`` first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from flask import Flask

from flask_vault import FlaskVault
from flask_vault.testing import OpenBaoServer
from tests.core_support import logging_to
from tests.leak_scan import LeakScan, recording

PREFIX = "store-erp"
ENVIRONMENT = "test"

#: The seeded values; tests compare against these and scan output for them.
FLASK_SECRET = {"secret_key": "test-secret-key-5f1c9e2a7b", "jwt_secret": "test-jwt-secret-8d3b6a0c4e"}
DATABASE_SECRET = {
    "host": "db.internal",
    "port": 5432,
    "username": "store",
    "password": "p@ss:w/rd%?#&=+ é",
    "database": "store_erp",
}


class _EverythingLogged(logging.Handler):
    def __init__(self, scan: LeakScan) -> None:
        super().__init__(logging.DEBUG)
        self.scan = scan

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage() + " " + repr(getattr(record, "vault", ""))
        if record.exc_info and record.exc_info[1] is not None:
            text += " " + repr(record.exc_info[1])
        self.scan.record("log", text)


def _loggers_not_scanned(scan: LeakScan) -> list[str]:
    """The flask_vault loggers whose DEBUG records do not reach ``scan``: each logs a canary line.

    This proves the scan listens whatever the session ran (a single file may log nothing of
    its own), and catches a logger that was disabled, raised above DEBUG or cut off from
    ``flask_vault`` on the way.
    """
    canary = f"leak-scan canary {uuid.uuid4().hex}"
    names = sorted(name for name in logging.Logger.manager.loggerDict if name.split(".")[0] == "flask_vault")
    for name in names:
        logging.getLogger(name).debug("%s from %s", canary, name)
    heard = {text for channel, text in scan.texts if channel == "log" and text.startswith(canary)}
    return [name for name in names if not any(text.startswith(f"{canary} from {name} ") for text in heard)]


@pytest.fixture(scope="session")
def leak_scan() -> LeakScan:
    """What the session said: flask_vault logs, CLI output, flask-vault's HTTP bodies, error messages."""
    return LeakScan()


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_anything_said(openbao_server: OpenBaoServer, leak_scan: LeakScan) -> Iterator[None]:
    """Across the whole session: no log record (audit trail included, at DEBUG), CLI output, health or
    metrics body or VaultError message holds a seeded secret value or the server's root token, as is
    or base64-encoded (see tests/leak_scan.py)."""
    with logging_to(_EverythingLogged(leak_scan), "flask_vault", logging.DEBUG), recording(leak_scan):
        yield
        unheard = _loggers_not_scanned(leak_scan)
    assert not unheard, f"DEBUG records of {', '.join(unheard)} never reached the scan, which would miss their leaks"
    forbidden = [*FLASK_SECRET.values(), str(DATABASE_SECRET["password"]), openbao_server.root_token]
    leaks = leak_scan.leaks(forbidden)
    where = sorted({channel for channel, _ in leaks})
    assert not leaks, f"{len(leaks)} texts said a secret value or the root token (channels: {', '.join(where)})"


@pytest.fixture(scope="session")
def vault_root(openbao_server: OpenBaoServer) -> hvac.Client:
    """An hvac client with the dev server's root token (for arranging and checking)."""
    return openbao_server.root_client()


@pytest.fixture(scope="session")
def seeded(vault_root: hvac.Client) -> dict[str, dict[str, Any]]:
    """The store-erp secrets at secret/store-erp/test/{flask,database}."""
    kv = vault_root.secrets.kv.v2
    kv.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/flask", FLASK_SECRET)
    kv.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/database", DATABASE_SECRET)
    return {"flask": dict(FLASK_SECRET), "database": dict(DATABASE_SECRET)}


@pytest.fixture
def transit(vault_root: hvac.Client) -> Iterator[tuple[str, str]]:
    """A Transit mount of its own with a key ``backups``: (mount, key); the mount goes afterwards."""
    mount, key = f"transit-{uuid.uuid4().hex[:8]}", "backups"
    vault_root.sys.enable_secrets_engine("transit", path=mount)
    vault_root.secrets.transit.create_key(key, mount_point=mount)
    yield mount, key
    vault_root.sys.disable_secrets_engine(mount)


@pytest.fixture
def unique_env() -> str:
    """A fresh environment name, so a test that writes does not disturb others."""
    return f"t-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def base_config(openbao_server: OpenBaoServer, seeded: dict[str, Any]) -> dict[str, Any]:
    return {
        "TESTING": True,
        "VAULT_URL": openbao_server.url,
        "VAULT_TOKEN": openbao_server.root_token,
        "VAULT_PATH_PREFIX": PREFIX,
        "VAULT_ENVIRONMENT": ENVIRONMENT,
        "VAULT_STARTUP_TIMEOUT": 0,
    }


@pytest.fixture
def app(base_config: dict[str, Any]) -> Flask:
    """A bare app configured for the test server; the extension is not applied yet."""
    app = Flask("store_erp_test")
    app.config.update(base_config)
    return app


@pytest.fixture
def vault(app: Flask) -> FlaskVault:
    """The extension applied to ``app`` (change ``app.config`` before requesting this)."""
    return FlaskVault(app)
