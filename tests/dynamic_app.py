"""The app the dynamic database credential tests run: in-process, in gunicorn workers, in a subprocess.

Flask-SQLAlchemy on a database secrets engine role: settings come from the environment
(``VAULT_ADDR``, ``VAULT_TOKEN``, ``VAULT_ENVIRONMENT``, ``VAULT_DATABASE_ROLE``, ...) or
from the mapping given to :func:`build_app`. ``DYNAMIC_INIT_ORDER=db-first`` initialises
Flask-SQLAlchemy before FlaskVault (it then needs a URL: ``DYNAMIC_DATABASE_URL``, one
without a login). ``DYNAMIC_LOG=1``: flask_vault's INFO lines on stderr.

Routes:

* ``GET /db``: 200 ``{"user": current_user, "pid": ...}`` from a query on the probe table
  (which only the Vault-made users may read), on the default bind;
* ``GET /lease``: the lease as ``flask vault status`` sees it (no password, no lease id).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from flask_vault import FlaskVault
from flask_vault.state import get_state

PROBE_QUERY = "SELECT current_user, count(*) FROM fv_dynamic_probe"

vault = FlaskVault()
db = SQLAlchemy()


def create_app() -> Flask:
    """The app with settings from the environment (gunicorn, ``flask --app``)."""
    if os.environ.get("DYNAMIC_LOG"):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(process)d %(name)s %(levelname)s %(message)s"))
        logger = logging.getLogger("flask_vault")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    return build_app(db_first=os.environ.get("DYNAMIC_INIT_ORDER") == "db-first")


def build_app(config: Mapping[str, Any] | None = None, *, db_first: bool = False) -> Flask:
    app = Flask("store_erp_dynamic", instance_path=tempfile.mkdtemp(prefix="dynamic-app-"))
    app.config.update(VAULT_PATH_PREFIX="store-erp", VAULT_SECRETS={"SQLALCHEMY_DATABASE_URI": "database"})
    app.config.update(config or {})
    if db_first:
        app.config.setdefault("SQLALCHEMY_DATABASE_URI", os.environ.get("DYNAMIC_DATABASE_URL"))
        db.init_app(app)
        vault.init_app(app)
    else:
        vault.init_app(app)
        if not vault.loaded_for_cli(app):  # `flask vault policy` fills nothing: no URL for Flask-SQLAlchemy
            db.init_app(app)

    @app.get("/db")
    def database_user() -> Any:
        user, _count = db.session.execute(text(PROBE_QUERY)).one()
        return jsonify(user=user, pid=os.getpid())

    @app.get("/lease")
    def lease() -> Any:
        databases = get_state().databases
        assert databases is not None
        return jsonify(pid=os.getpid(), leases=[provider.status() for provider in databases.leases])

    return app
