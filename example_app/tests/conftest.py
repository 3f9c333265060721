"""Fixtures for the example app's own tests, on the session's real OpenBao dev server.

``openbao_server`` comes from :mod:`flask_vault.testing` (loaded by the top-level
conftest.py). Each test gets its own Vault environment, seeded with fresh secrets and a
database secret pointing at a SQLite file in ``tmp_path``, and a clean process
environment (nothing from the developer's shell).
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask

from example_app import create_app
from flask_vault.client import _reset_default_client
from flask_vault.testing import OpenBaoServer

_ISOLATED_NAMES = ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "XDG_STATE_HOME")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("VAULT_", "BAO_")) or name in _ISOLATED_NAMES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.vault-token
    _reset_default_client()
    yield
    _reset_default_client()


@pytest.fixture(scope="session")
def vault_root(openbao_server: OpenBaoServer) -> hvac.Client:
    return openbao_server.root_client()


@pytest.fixture
def store(vault_root: hvac.Client, tmp_path: Path) -> dict[str, Any]:
    """A fresh environment at secret/store-erp/<env>/{flask,database}; returns what was written."""
    environment = f"example-{uuid.uuid4().hex[:10]}"
    db_file = tmp_path / "store.db"
    flask_secret = {"secret_key": secrets.token_urlsafe(48), "jwt_secret": secrets.token_urlsafe(48)}
    database = {"url": f"sqlite:///{db_file}"}
    kv = vault_root.secrets.kv.v2
    kv.create_or_update_secret(f"store-erp/{environment}/flask", flask_secret)
    kv.create_or_update_secret(f"store-erp/{environment}/database", database)
    return {"environment": environment, "flask": flask_secret, "database": database, "db_file": db_file}


@pytest.fixture
def test_config(openbao_server: OpenBaoServer, store: dict[str, Any]) -> dict[str, Any]:
    return {
        "TESTING": True,
        "VAULT_URL": openbao_server.url,
        "VAULT_TOKEN": openbao_server.root_token,
        "VAULT_ENVIRONMENT": store["environment"],
        "VAULT_STARTUP_TIMEOUT": 0,
    }


@pytest.fixture
def app(test_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(test_config)
    yield app
    from example_app.models import db

    with app.app_context():
        db.engine.dispose()  # close the SQLite file before tmp_path goes away
