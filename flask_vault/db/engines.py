"""SQLAlchemy engines that take their database credentials when they open a connection.

:func:`attach_engine` adds a ``do_connect`` listener to an engine. Each new DBAPI
connection then logs in with what the engine's :class:`DatabaseLogin` says now (its
provider's current user name and password), not with the URL the engine was created with.
Connections already open are not touched (PostgreSQL keeps a session after ``ALTER ROLE``).

When the database refuses a login (bad password, not an unreachable server):

1. the provider is told, which makes one bounded read-through of the secret (another
   process may just have rotated it) and, if the credentials changed, the connection is
   opened again with the new ones;
2. if the database refuses those too (or nothing changed), the credentials that last
   worked in this process are tried once more (Vault may be a moment ahead of the
   database while a rotation commits); the status then says Vault's credentials are refused;
3. otherwise the original error is raised.

So a rotation done by another process costs no failed query, a database outage costs no
Vault reads, and a forged or broken secret costs at most one read-through per interval.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask_vault.db import pool
from flask_vault.db.credentials import CredentialProvider, Credentials, SwitchingProvider
from flask_vault.errors import VaultConfigError, VaultError

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect, Engine

log = logging.getLogger(__name__)

#: Database error codes (SQLSTATE) of a refused login: invalid_password, invalid_authorization_specification.
REFUSED_SQLSTATES = frozenset({"28P01", "28000"})
#: Lower-case fragments of the messages drivers give for a refused login (psycopg has no SQLSTATE there).
REFUSED_MESSAGES = (
    "password authentication failed",
    "authentication failed",
    "access denied for user",
    "no password supplied",
    "invalid password",
    "login failed for user",
)

_PROBE_USER = "flaskvaultprobeuser"
_PROBE_PASSWORD = "flaskvaultprobepassword"


#: PostgreSQL's word for a user that is gone (a revoked lease's): refused like a wrong password.
_NO_SUCH_ROLE = re.compile(r'role ".*" does not exist')


def is_login_refused(exc: BaseException) -> bool:
    """Whether a DBAPI error from opening a connection means the credentials were refused."""
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    if isinstance(code, str) and code in REFUSED_SQLSTATES:
        return True
    text = str(exc).lower()
    return any(fragment in text for fragment in REFUSED_MESSAGES) or bool(_NO_SUCH_ROLE.search(text))


@dataclass(frozen=True)
class CredentialKeys:
    """The keyword arguments a dialect's DBAPI ``connect()`` takes the user name and password as."""

    user: str
    password: str


def credential_keys(engine: Engine) -> CredentialKeys:
    """Find them by asking the dialect to translate a URL with recognisable credentials."""
    probe = engine.url.set(username=_PROBE_USER, password=_PROBE_PASSWORD)
    try:
        _cargs, cparams = engine.dialect.create_connect_args(probe)
    except Exception:  # a dialect with no place for credentials may refuse the URL outright
        cparams = {}
    user = next((k for k, v in cparams.items() if v == _PROBE_USER), None)
    password = next((k for k, v in cparams.items() if v == _PROBE_PASSWORD), None)
    if user is None or password is None:
        raise VaultConfigError(
            f"attach_engine: the {engine.dialect.name}+{engine.dialect.driver} driver does not take a user name"
            " and password as connect() keywords (or the database needs none, like SQLite), so they cannot"
            " be supplied at connect time.",
            key="engine",
        )
    return CredentialKeys(user, password)


@dataclass
class LoginStatus:
    """What the database last said to the provider's credentials. Never holds a value."""

    #: "unknown" (no connection yet), "ok", or "refused" (refused even after a read-through).
    state: str = "unknown"
    #: The version of the credentials this state is about.
    version: int | None = None
    #: Unix time of the change to this state.
    since: float | None = None
    #: While refused: new connections use the credentials that last worked in this process.
    using_previous: bool = False
    #: Logins the database refused, and connections opened after a read-through found new credentials.
    refusals: int = 0
    recoveries: int = 0


class DatabaseLogin:
    """Connect-time credentials from one provider, shared by every engine attached to it."""

    def __init__(self, provider: CredentialProvider) -> None:
        self.provider = provider
        self.status = LoginStatus()
        self._last_good: Credentials | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        #: (dialect, cargs, cparams, keys) of the last connection, to check credentials with (health).
        self._template: tuple[Dialect, list[Any], dict[str, Any], CredentialKeys] | None = None
        self._engines: weakref.WeakSet[Engine] = weakref.WeakSet()

    def __repr__(self) -> str:
        return f"<DatabaseLogin {self.provider.key} at {self.provider.path} {self.status.state}>"

    @property
    def engines(self) -> list[Engine]:
        return list(self._engines)

    # -- the do_connect listener -------------------------------------------------------

    def connect(
        self, keys: CredentialKeys, dialect: Dialect, cargs: list[Any], cparams: dict[str, Any], entry: Any = None
    ) -> Any:  # a DBAPI connection
        """Open a connection with the current credentials; ``entry`` (the pool's) is tagged with them."""
        self._template = (dialect, list(cargs), _without(cparams, keys), keys)
        try:
            credentials: Credentials | None = self.provider.current()
        except VaultError as exc:  # Vault unreachable past the stale limit: the last login that worked
            credentials = self._last_good
            log.warning("No current database credentials for %s (%s).", self.provider.key, exc.message)
        if credentials is None:
            return dialect.connect(*cargs, **cparams)
        try:
            connection = _open(dialect, cargs, cparams, keys, credentials)
        except Exception as exc:
            if not is_login_refused(exc):
                raise
            return self._after_refusal(keys, dialect, cargs, cparams, credentials, exc, entry)
        self._accepted(credentials, current=True)
        pool.tag(entry, credentials.version)
        return connection

    def _after_refusal(
        self,
        keys: CredentialKeys,
        dialect: Dialect,
        cargs: list[Any],
        cparams: dict[str, Any],
        refused: Credentials,
        error: Exception,
        entry: Any = None,
    ) -> Any:
        self.status.refusals += 1
        try:
            newer = self.provider.refused(refused)
        except VaultError as exc:
            log.warning("Cannot read %s again after the database refused it (%s).", self.provider.path, exc.message)
            newer = None
        tried = [refused]
        for candidate in (newer, self._last_good):
            if candidate is None or any(candidate.same_login(t) for t in tried):
                continue
            tried.append(candidate)
            try:
                connection = _open(dialect, cargs, cparams, keys, candidate)
            except Exception as exc:
                if not is_login_refused(exc):
                    raise
                continue
            if candidate is newer:
                self.status.recoveries += 1
                log.info(
                    "The database refused %s version %s; version %s from %s works.",
                    self.provider.key,
                    refused.version,
                    candidate.version,
                    self.provider.path,
                )
                self._accepted(candidate, current=True)
                pool.tag(entry, candidate.version)
            else:
                self._refused(newer or refused, using_previous=True)
                self._accepted(candidate, current=False)
                pool.tag(entry, candidate.version, pinned=True)
            return connection
        self._refused(newer or refused, using_previous=False)
        raise error

    # -- status ---------------------------------------------------------------------------

    def _guard(self) -> threading.Lock:
        if self._pid != os.getpid():  # a forked child: the parent's lock may have been held at the fork
            self._pid, self._lock = os.getpid(), threading.Lock()
        return self._lock

    def _accepted(self, credentials: Credentials, *, current: bool) -> None:
        self._last_good = credentials
        if not current:
            return
        if isinstance(self.provider, SwitchingProvider):
            self.provider.accepted(credentials.version)
        with self._guard():
            status = self.status
            if status.state == "refused":
                log.warning(
                    "The database accepts the credentials for %s from %s again (version %s).",
                    self.provider.key,
                    self.provider.path,
                    credentials.version,
                )
            if status.state != "ok" or status.version != credentials.version:
                status.state, status.version, status.since = "ok", credentials.version, time.time()
            status.using_previous = False

    def _refused(self, credentials: Credentials, *, using_previous: bool) -> None:
        with self._guard():
            status = self.status
            first = status.state != "refused" or status.version != credentials.version
            status.using_previous = using_previous
            if not first:
                return
            status.state, status.version, status.since = "refused", credentials.version, time.time()
        then = (
            "New connections use the previous credentials, which still work."
            if using_previous
            else "New connections fail until the credentials in Vault or the database are fixed."
        )
        log.error(
            "The database refuses the credentials in Vault for %s at %s (version %s), even after reading them"
            " again. %s",
            self.provider.key,
            self.provider.path,
            credentials.version,
            then,
        )

    def verify(self) -> LoginStatus:
        """Check the provider's current credentials against the database, when they changed.

        Asks the provider again (bounded), then opens one connection (closed at once) when
        the current credentials are not the ones known to work. Before any connection was
        made, or when the database cannot be reached, the status stays as it is.
        """
        template = self._template
        if template is None:
            return self.status
        try:
            self.provider.refresh()
            credentials = self.provider.current()
        except VaultError:
            return self.status
        if self.status.state == "ok" and credentials.same_login(self._last_good):
            return self.status
        dialect, cargs, cparams, keys = template
        try:
            connection = _open(dialect, cargs, cparams, keys, credentials)
        except Exception as exc:
            if is_login_refused(exc):
                self._refused(credentials, using_previous=self._last_good is not None)
            else:
                log.debug("Checking the credentials for %s failed (%s).", self.provider.key, type(exc).__name__)
            return self.status
        try:
            connection.close()
        except Exception:  # noqa: S110 - the check is done; a failed close changes nothing
            pass
        self._accepted(credentials, current=True)
        return self.status


def _without(cparams: dict[str, Any], keys: CredentialKeys) -> dict[str, Any]:
    return {k: v for k, v in cparams.items() if k not in (keys.user, keys.password)}


def _open(dialect: Dialect, cargs: list[Any], cparams: dict[str, Any], keys: CredentialKeys, login: Credentials) -> Any:
    params = _without(cparams, keys)
    if login.username is not None:
        params[keys.user] = login.username
    if login.password is not None:
        params[keys.password] = login.password
    return dialect.connect(*cargs, **params)


#: engine -> its login, so an engine is attached once.
_attached: weakref.WeakKeyDictionary[Engine, DatabaseLogin] = weakref.WeakKeyDictionary()
_attach_lock = threading.Lock()


def attach_engine(engine: Engine, login: DatabaseLogin | CredentialProvider) -> DatabaseLogin:
    """Make ``engine`` take its user name and password from ``login`` at each new connection.

    ``login``: a :class:`DatabaseLogin` (shared with other engines of the same database) or
    a :class:`~flask_vault.db.credentials.CredentialProvider`. An engine attached twice to
    the same login is left as it is; to another login, it is a ``RuntimeError``.
    """
    from sqlalchemy import event

    if not isinstance(login, DatabaseLogin):
        login = DatabaseLogin(login)
    keys = credential_keys(engine)
    with _attach_lock:
        existing = _attached.get(engine)
        if existing is login:
            return login
        if existing is not None:
            raise RuntimeError(
                f"The engine for {engine.url.render_as_string(hide_password=True)} already takes its credentials"
                f" from {existing.provider.path}; an engine has one source of credentials."
            )
        _attached[engine] = login
        login._engines.add(engine)

    def do_connect(dialect: Dialect, entry: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        return login.connect(keys, dialect, cargs, cparams, entry)

    event.listen(engine, "do_connect", do_connect)
    provider = login.provider
    if isinstance(provider, SwitchingProvider):
        # A pinned connection (the new credentials were refused) goes once the database accepts them again.
        pool.follow(
            engine, lambda tag: provider.retired(tag.version) and (not tag.pinned or login.status.state == "ok")
        )
        provider.add_sweeper(pool.sweeper(engine))
    else:
        pool.follow(engine, _never_retired)
    log.debug("%s takes its credentials from %s at connect time.", engine.url.render_as_string(), login.provider.path)
    return login


def _never_retired(tag: pool.ConnectionTag) -> bool:
    return False


def login_of(engine: Engine) -> DatabaseLogin | None:
    """The login ``engine`` was attached to, if any."""
    return _attached.get(engine)
