"""One app's database logins: one per database secret or database role, shared by the engines that use it.

A bind whose role is set (``VAULT_DATABASE_ROLE`` for the default bind,
``VAULT_DATABASE_BIND_ROLES`` for others) logs in with credentials of that database
secrets engine role (:class:`~flask_vault.db.lease.LeaseCredentials`); any other bind with
the user name and password of its KV secret (:class:`~flask_vault.db.credentials.KVCredentials`).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from flask_vault.database import build_database_url
from flask_vault.db.credentials import KVCredentials
from flask_vault.db.engines import DatabaseLogin, attach_engine
from flask_vault.db.lease import LeaseCredentials
from flask_vault.errors import VaultError
from flask_vault.mapping import DATABASE_KEY, parse_references

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from flask_vault.client import VaultClient
    from flask_vault.settings import VaultSettings

log = logging.getLogger(__name__)


class DatabaseLogins:
    """The :class:`DatabaseLogin` of each database secret an app's engines use."""

    def __init__(self, client: VaultClient, settings: VaultSettings) -> None:
        self.client = client
        self.settings = settings
        self._logins: dict[str, DatabaseLogin] = {}
        self._leases: dict[str, DatabaseLogin] = {}  # role -> its login
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"<DatabaseLogins {sorted(self._logins)} roles={sorted(self._leases)}>"

    @property
    def logins(self) -> list[DatabaseLogin]:
        """Every login, KV secrets' first."""
        return [*self._logins.values(), *self._leases.values()]

    @property
    def leases(self) -> list[LeaseCredentials]:
        """The database secrets engine roles in use (their providers)."""
        return [login.provider for login in self._leases.values() if isinstance(login.provider, LeaseCredentials)]

    def role_for_bind(self, bind: str | None) -> str | None:
        """The database secrets engine role of a Flask-SQLAlchemy bind (None: the default bind), if any."""
        return self.settings.database_role if bind is None else self.settings.database_bind_roles.get(bind)

    def lease_login(self, role: str, *, key: str = DATABASE_KEY) -> DatabaseLogin:
        """The login of database role ``role`` (created once; ``key`` names it in logs and health)."""
        with self._lock:
            login = self._leases.get(role)
            if login is None:
                settings = self.settings
                setting = "VAULT_DATABASE_ROLE" if role == settings.database_role else "VAULT_DATABASE_BIND_ROLES"
                provider = LeaseCredentials(
                    self.client,
                    role,
                    mount=settings.database_mount,
                    key=key,
                    setting=setting,
                    grace=settings.database_grace,
                    warn_ttl=settings.database_warn_ttl,
                    revoke_at_exit=settings.revoke_on_exit is not False,
                )
                login = self._leases[role] = DatabaseLogin(provider)
            return login

    def lease_for_key(self, key: str) -> LeaseCredentials | None:
        """The lease provider that fills config key ``key`` (only SQLALCHEMY_DATABASE_URI can be one)."""
        role = self.settings.database_role
        if key != DATABASE_KEY or role is None:
            return None
        return self.lease(role, key=key)

    def lease(self, role: str, *, key: str = DATABASE_KEY) -> LeaseCredentials:
        """The credentials provider of database role ``role`` (see :meth:`lease_login`)."""
        provider = self.lease_login(role, key=key).provider
        assert isinstance(provider, LeaseCredentials)
        return provider

    def attach_bind(self, engine: Engine, bind: str | None) -> DatabaseLogin | None:
        """Attach a Flask-SQLAlchemy bind's engine to its role's login, else its secret's.

        None (and the engine is left alone) when the bind has neither, or nothing to log in
        with (SQLite, or a URL without a user).
        """
        key = DATABASE_KEY if bind is None else f"SQLALCHEMY_BINDS[{bind!r}]"
        role = self.role_for_bind(bind)
        if role is not None:
            return attach_engine(engine, self.lease_login(role, key=key))
        name = self.secret_for_bind(bind)
        if name is None:
            return None
        key_name = None if bind is None else key
        if self.login_for(name, key=key_name).provider.current().username is None:
            return None
        return self.attach(engine, name, key=key_name)

    def lease_stats(self) -> dict[str, int]:
        """Renewals, switches, failures and revocations of every lease, added up (for ``vault.stats()``)."""
        totals: dict[str, int] = {}
        for provider in self.leases:
            for name, count in provider.stats.as_dict().items():
                totals[name] = totals.get(name, 0) + count
        return totals

    def close(self, *, revoke: bool | None = None) -> None:
        """Stop renewing every lease and revoke them (by default as each was configured)."""
        for provider in self.leases:
            provider.close(revoke=revoke)

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

    def attach(
        self, engine: Engine, name: str | None = None, *, key: str | None = None, role: str | None = None
    ) -> DatabaseLogin:
        """Make ``engine`` log in with the credentials of database role ``role`` or of secret ``name``.

        Default: ``VAULT_DATABASE_ROLE`` when it is set, else the database secret.
        """
        if role is None and name is None:
            role = self.settings.database_role
        if role is not None:
            return attach_engine(engine, self.lease_login(role, key=key or DATABASE_KEY))
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
