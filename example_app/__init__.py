"""The store-erp example: FlaskVault in an app factory, JWT login and a SQLAlchemy model.

flask --app example_app run
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from flask_vault import FlaskVault

from .models import db
from .views import bp, jwt

vault = FlaskVault()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(
        VAULT_PATH_PREFIX="store-erp",
        JWT_ACCESS_TOKEN_EXPIRES=900,
        # Pooled connections the database ended (a restart) are replaced before use; new ones
        # take the current password from Vault when they open.
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        DEMO_USER="demo",
        DEMO_PASSWORD="demo",  # the example's only login; replace with real users
    )
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)  # backups and the demo's SQLite file live here
    vault.init_app(app)  # fills SECRET_KEY, JWT_SECRET_KEY and SQLALCHEMY_DATABASE_URI
    if vault.loaded_for_cli(app):
        return app  # `flask vault ...` needs no database or views, and the secrets may not exist yet
    db.init_app(app)
    jwt.init_app(app)
    app.register_blueprint(bp)
    with app.app_context():
        db.create_all()
    return app
