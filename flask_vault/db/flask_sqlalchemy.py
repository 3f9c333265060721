"""Flask-SQLAlchemy's engines take their credentials from Vault, in either init order.

* ``FlaskVault.init_app`` after ``db.init_app``: the engines exist and are attached at once.
* ``FlaskVault.init_app`` first: ``db.init_app`` creates them later, and they are attached
  when the app's next application context is pushed; Flask-SQLAlchemy needs one for
  every use of an engine (``db.session``, ``db.engine``, ``db.create_all()``), so no
  connection is opened before that. (Only when ``flask_sqlalchemy`` is imported by the
  time ``FlaskVault.init_app`` runs: the wait costs every request a signal.)

The default bind uses the secret behind ``SQLALCHEMY_DATABASE_URI``; other binds the
secret ``VAULT_DATABASE_BINDS`` names for them (whose URL also goes into
``SQLALCHEMY_BINDS``). A bind with a database secrets engine role (``VAULT_DATABASE_ROLE``
for the default bind, ``VAULT_DATABASE_BIND_ROLES`` for others) logs in as that role's
users instead; its address comes from its secret, else from the URL already in
``SQLALCHEMY_BINDS``. Binds without a Vault secret or role, and secrets without a user
name (SQLite), are left alone.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, appcontext_pushed, current_app, has_app_context

from flask_vault.database import build_database_url, connection_url, with_login, without_login
from flask_vault.db.engines import login_of
from flask_vault.errors import VaultConfigError, VaultError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from flask_vault.db.logins import DatabaseLogins

log = logging.getLogger(__name__)


def follow_flask_sqlalchemy(app: Flask, logins: DatabaseLogins) -> None:
    """Attach the app's Flask-SQLAlchemy engines now, or once ``db.init_app`` has made them.

    Waiting for them costs every app context push (every request) a signal, so an app
    that has not even imported Flask-SQLAlchemy by now (its ``db = SQLAlchemy()`` lives
    in a module the app imports first) is not waited for.
    """
    fill_bind_urls(app, logins)
    if attach_engines(app, logins) or "flask_sqlalchemy" not in sys.modules:
        return

    def on_push(sender: Flask, **_: Any) -> None:
        if attach_engines(sender, logins):
            appcontext_pushed.disconnect(on_push, app)

    appcontext_pushed.connect(on_push, app, weak=False)


def fill_bind_urls(app: Flask, logins: DatabaseLogins) -> None:
    """``SQLALCHEMY_BINDS[bind]`` from each secret ``VAULT_DATABASE_BINDS`` names, with the
    credentials of its ``VAULT_DATABASE_BIND_ROLES`` role when it has one."""
    settings = logins.settings
    if not settings.database_binds and not settings.database_bind_roles:
        return
    binds = dict(app.config.get("SQLALCHEMY_BINDS") or {})
    for bind in [
        *settings.database_binds,
        *(b for b in settings.database_bind_roles if b not in settings.database_binds),
    ]:
        current = binds.get(bind)
        given = current.get("url") if isinstance(current, Mapping) else current
        name, role = settings.database_binds.get(bind), settings.database_bind_roles.get(bind)
        if role is None:
            assert name is not None
            entry = logins.client.read(name)
            url = build_database_url(entry.data, path=entry.path)
        else:
            if name is not None:
                entry = logins.client.read(name)
                base = connection_url(entry.data, path=entry.path)
            elif isinstance(given, str) and given:
                base = without_login(given)
            else:
                raise VaultConfigError(
                    f"VAULT_DATABASE_BIND_ROLES[{bind!r}] needs the database's address: a secret for the bind in"
                    f" VAULT_DATABASE_BINDS, or a URL in SQLALCHEMY_BINDS[{bind!r}].",
                    key="VAULT_DATABASE_BIND_ROLES",
                )
            login = logins.lease(role, key=f"SQLALCHEMY_BINDS[{bind!r}]").obtain()  # filling a URL is no use
            url = with_login(base, login.username, login.password)
        binds[bind] = {**current, "url": url} if isinstance(current, Mapping) else url
    app.config["SQLALCHEMY_BINDS"] = binds


def attach_engines(app: Flask, logins: DatabaseLogins) -> bool:
    """Attach every engine Flask-SQLAlchemy made for ``app``; False when it has made none yet."""
    extension = app.extensions.get("sqlalchemy")
    if extension is None:
        return False
    for bind, engine in _engines(app, extension).items():
        if login_of(engine) is not None:
            continue
        try:
            logins.attach_bind(engine, bind)
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
