"""Fixtures for the example app's own tests, on the session's real OpenBao dev server.

``openbao_server`` comes from :mod:`flask_vault.testing` (loaded by the top-level
conftest.py). Each test gets its own Vault environment, seeded with fresh secrets and a
database secret pointing at a SQLite file in ``tmp_path``; the top-level conftest.py gives
it a clean process environment (nothing from the developer's shell).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask

from example_app import create_app
from flask_vault.testing import OpenBaoServer


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
