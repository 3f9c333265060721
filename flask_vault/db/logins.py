"""One app's database logins: one per database secret, shared by the engines that use it."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from flask_vault.database import build_database_url
from flask_vault.db.credentials import KVCredentials
from flask_vault.db.engines import DatabaseLogin, attach_engine
from flask_vault.errors import VaultError
from flask_vault.mapping import parse_references

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from flask_vault.client import VaultClient
    from flask_vault.settings import VaultSettings

log = logging.getLogger(__name__)

#: The config key whose bare secret reference (``"database"``) is the default database.
DATABASE_KEY = "SQLALCHEMY_DATABASE_URI"


class DatabaseLogins:
    """The :class:`DatabaseLogin` of each database secret an app's engines use."""

    def __init__(self, client: VaultClient, settings: VaultSettings) -> None:
        self.client = client
        self.settings = settings
        self._logins: dict[str, DatabaseLogin] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<DatabaseLogins {sorted(self._logins)}>"

    @property
    def logins(self) -> list[DatabaseLogin]:
        return list(self._logins.values())

    def default_name(self) -> str | None:
        """The secret behind ``SQLALCHEMY_DATABASE_URI`` (a bare name in ``VAULT_SECRETS``)."""
        name, field_name = parse_references(self.settings.secrets).get(DATABASE_KEY, (None, "-"))
        return name if field_name is None else None

    def secret_for_bind(self, bind: str | None) -> str | None:
        """The secret of a Flask-SQLAlchemy bind (None: the default bind)."""
        return self.default_name() if bind is None else self.settings.database_binds.get(bind)

    def login_for(self, name: str, *, key: str | None = None) -> DatabaseLogin:
        """The login of secret ``name`` (created once; ``key`` names it in logs and health)."""
        with self._lock:
            login = self._logins.get(name)
            if login is None:
                if key is None:
                    key = DATABASE_KEY if name == self.default_name() else name
                login = self._logins[name] = DatabaseLogin(KVCredentials(self.client, name, key=key))
            return login

    def attach(self, engine: Engine, name: str | None = None, *, key: str | None = None) -> DatabaseLogin:
        """Make ``engine`` log in with the credentials of secret ``name`` (default: the database's)."""
        name = name or self.default_name() or "database"
        login = attach_engine(engine, self.login_for(name, key=key))
        _warn_if_elsewhere(engine, self.client, name)
        return login


def _warn_if_elsewhere(engine: Engine, client: VaultClient, name: str) -> None:
    """The engine's URL was frozen at its creation: say so when it points elsewhere than the secret."""
    from sqlalchemy.engine import make_url

    try:
        entry = client.read(name)
        secret_url = make_url(build_database_url(entry.data, path=entry.path))
    except (VaultError, ValueError):
        return
    ours = (secret_url.host, secret_url.port or None, secret_url.database)
    theirs = (engine.url.host, engine.url.port or None, engine.url.database)
    if ours != theirs:
        log.warning(
            "The engine connects to %s:%s/%s but %s names %s:%s/%s; only the user name and password are taken"
            " from Vault at connect time. Create the engine after FlaskVault.init_app, or from its URL.",
            *theirs,
            entry.path,
            *ours,
        )
