"""Flask-SQLAlchemy's engines take their credentials from Vault, in either init order.

* ``FlaskVault.init_app`` after ``db.init_app``: the engines exist and are attached at once.
* ``FlaskVault.init_app`` first: ``db.init_app`` creates them later, and they are attached
  when the app's next application context is pushed; Flask-SQLAlchemy needs one for
  every use of an engine (``db.session``, ``db.engine``, ``db.create_all()``), so no
  connection is opened before that.

The default bind uses the secret behind ``SQLALCHEMY_DATABASE_URI``; other binds the
secret ``VAULT_DATABASE_BINDS`` names for them (whose URL also goes into
``SQLALCHEMY_BINDS``). Binds without a Vault secret, and secrets without a user name
(SQLite), are left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, appcontext_pushed, current_app, has_app_context

from flask_vault.database import build_database_url
from flask_vault.db.engines import login_of
from flask_vault.errors import VaultConfigError, VaultError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from flask_vault.db.logins import DatabaseLogins

log = logging.getLogger(__name__)


def follow_flask_sqlalchemy(app: Flask, logins: DatabaseLogins) -> None:
    """Attach the app's Flask-SQLAlchemy engines now, or once ``db.init_app`` has made them."""
    fill_bind_urls(app, logins)
    if attach_engines(app, logins):
        return

    def on_push(sender: Flask, **_: Any) -> None:
        if attach_engines(sender, logins):
            appcontext_pushed.disconnect(on_push, app)

    appcontext_pushed.connect(on_push, app, weak=False)


def fill_bind_urls(app: Flask, logins: DatabaseLogins) -> None:
    """``SQLALCHEMY_BINDS[bind]`` from each secret ``VAULT_DATABASE_BINDS`` names."""
    if not logins.settings.database_binds:
        return
    binds = dict(app.config.get("SQLALCHEMY_BINDS") or {})
    for bind, name in logins.settings.database_binds.items():
        entry = logins.client.read(name)
        url = build_database_url(entry.data, path=entry.path)
        current = binds.get(bind)
        binds[bind] = {**current, "url": url} if isinstance(current, Mapping) else url
    app.config["SQLALCHEMY_BINDS"] = binds


def attach_engines(app: Flask, logins: DatabaseLogins) -> bool:
    """Attach every engine Flask-SQLAlchemy made for ``app``; False when it has made none yet."""
    extension = app.extensions.get("sqlalchemy")
    if extension is None:
        return False
    for bind, engine in _engines(app, extension).items():
        name = logins.secret_for_bind(bind)
        if name is None or login_of(engine) is not None:
            continue
        key = None if bind is None else f"SQLALCHEMY_BINDS[{bind!r}]"
        try:
            if logins.login_for(name, key=key).provider.current().username is None:
                continue  # nothing to log in with (SQLite, or a URL without a user)
            logins.attach(engine, name, key=key)
        except VaultConfigError as exc:
            log.info("The %s bind keeps its URL's credentials: %s", bind or "default", exc.message)
        except VaultError as exc:
            log.warning("The %s bind keeps its URL's credentials for now: %s", bind or "default", exc.message)
    return True


def _engines(app: Flask, extension: Any) -> dict[str | None, Engine]:
    if has_app_context() and current_app._get_current_object() is app:  # type: ignore[attr-defined]
        return dict(extension.engines)
    with app.app_context():  # before our appcontext_pushed receiver is connected: no recursion
        return dict(extension.engines)
