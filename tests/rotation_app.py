"""The app the rotation tests run in fresh processes: a subprocess, gunicorn workers,
``flask --app tests/rotation_app.py vault rotate``.

``create_app()`` takes its settings from the environment (VAULT_ADDR, VAULT_TOKEN or
VAULT_TOKEN_FILE, VAULT_ENVIRONMENT, VAULT_CACHE_TTL, ...); ``build_app(config)`` from a
mapping (in-process tests). ``ROTATION_INIT_ORDER=db-first`` initialises Flask-SQLAlchemy
before FlaskVault (it then needs a SQLALCHEMY_DATABASE_URI: ``ROTATION_DATABASE_URL``, a
URL without the password).

Routes (each answers 200 only when what it checks holds):

* ``POST /login``: a session with ``user`` set, and ``{"token": <JWT>}``;
* ``GET /session``: 200 ``{"user": ...}`` when the session cookie was accepted, else 401;
* ``GET /jwt``: 200 when the bearer JWT was accepted (flask-jwt-extended answers 401/422);
* ``GET /db``: 200 ``{"user": current_user}`` from a query on the default bind;
* ``GET /pid``: the worker's process id.

``python tests/rotation_app.py check`` builds the app in this (fresh) process and prints
``{"session": status, "jwt": status}`` for ``ROTATION_COOKIE`` and ``ROTATION_JWT``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from typing import Any

from flask import Flask, jsonify, session
from flask_jwt_extended import JWTManager, create_access_token, get_jwt_identity, jwt_required
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

from flask_vault import FlaskVault
from flask_vault.jwt import use_vault_jwt_keys

vault = FlaskVault()
db = SQLAlchemy()
jwt = JWTManager()
use_vault_jwt_keys(jwt)


def create_app() -> Flask:
    """The app with settings from the environment (gunicorn, ``flask --app``)."""
    if os.environ.get("ROTATION_LOG"):  # e.g. "flask_vault.db": its INFO lines on stderr, for the test to count
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(process)d %(name)s %(levelname)s %(message)s"))
        for name in os.environ["ROTATION_LOG"].split(","):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
    return build_app(db_first=os.environ.get("ROTATION_INIT_ORDER") == "db-first")


def build_app(
    config: Mapping[str, Any] | None = None,
    *,
    db_first: bool = False,
    name: str = "rotation",
    instance: str | None = None,
) -> Flask:
    """The app, with ``config`` on top of the defaults; ``db_first``: Flask-SQLAlchemy first."""
    instance = instance or os.environ.get("ROTATION_INSTANCE") or tempfile.mkdtemp(prefix="rotation-app-")
    app = Flask(f"store_erp_{name}", instance_path=instance)
    app.config.update(
        VAULT_PATH_PREFIX="store-erp",
        JWT_ACCESS_TOKEN_EXPIRES=3600,
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
    )
    app.config.update(config or {})
    if db_first:
        app.config.setdefault("SQLALCHEMY_DATABASE_URI", os.environ.get("ROTATION_DATABASE_URL"))
        db.init_app(app)
        vault.init_app(app)
    else:
        vault.init_app(app)
        db.init_app(app)
    jwt.init_app(app)

    @app.post("/login")
    def login() -> Any:
        session["user"] = "demo"
        return jsonify(token=create_access_token(identity="demo"))

    @app.get("/session")
    def whoami() -> Any:
        user = session.get("user")
        return (jsonify(user=user), 200) if user else (jsonify(error="no session"), 401)

    @app.get("/jwt")
    @jwt_required()
    def jwt_identity() -> Any:
        return jsonify(user=get_jwt_identity())

    @app.get("/pid")
    def pid() -> Any:
        return str(os.getpid())

    @app.get("/db")
    def database_user() -> Any:
        return jsonify(user=db.session.execute(text("SELECT current_user")).scalar())

    return app


def check() -> dict[str, int]:
    """Status codes a fresh process gives the cookie and the JWT in its environment."""
    web = create_app().test_client()
    web.set_cookie("session", os.environ["ROTATION_COOKIE"])
    session_status = web.get("/session").status_code
    jwt_status = web.get("/jwt", headers={"Authorization": f"Bearer {os.environ['ROTATION_JWT']}"}).status_code
    return {"session": session_status, "jwt": jwt_status}


if __name__ == "__main__" and sys.argv[1:] == ["check"]:
    print(json.dumps(check()))
