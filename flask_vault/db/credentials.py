"""Database credentials and where they come from: the provider an engine asks at connect time.

A :class:`CredentialProvider` yields the :class:`Credentials` (user name and password) a new
database connection should use, and is told when the database refused them. The KV
provider here reads them from a KV secret (the one behind ``SQLALCHEMY_DATABASE_URI``);
another provider (a database secrets engine lease, say) can stand in its place without
changing how engines use it (see :mod:`flask_vault.db.engines`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from flask_vault.errors import SecretNotFoundError
from flask_vault.flight import ThrottledFlight

if TYPE_CHECKING:
    from flask_vault.cache import CachedSecret
    from flask_vault.client import VaultClient

#: At most one read-through of a database secret per this many seconds per process.
REREAD_INTERVAL = 1.0


@dataclass(frozen=True)
class Credentials:
    """A database user name and password. The password is never shown in a repr."""

    username: str | None
    password: str | None = field(repr=False)
    #: Which version of the source they are (a KV version, a lease generation), for logs and health.
    version: int | None = None

    def same_login(self, other: Credentials | None) -> bool:
        return other is not None and (self.username, self.password) == (other.username, other.password)


class CredentialProvider(Protocol):
    """Where an engine gets its credentials at connect time."""

    #: What the credentials fill, for logs and health (``SQLALCHEMY_DATABASE_URI``); never a value.
    key: str
    #: Where they live (``secret/store-erp/production/database``); never a value.
    path: str

    def current(self) -> Credentials:
        """The credentials a new connection uses now (cheap: called on every connect)."""
        ...

    def refused(self, credentials: Credentials) -> Credentials | None:
        """The database refused ``credentials``: newer ones to try, or None when there are none."""
        ...

    def refresh(self) -> bool:
        """Ask the source again (bounded, like :meth:`refused`); True when it answered."""
        ...


@runtime_checkable
class SwitchingProvider(CredentialProvider, Protocol):
    """A provider whose credentials are replaced by other ones (a database lease's new user).

    Connections that logged in with a retired version are closed rather than used again
    (see :mod:`flask_vault.db.pool`); the provider calls the sweepers engines register
    when it retires a version, so their idle connections go at once.
    """

    def retired(self, version: int | None) -> bool:
        """Whether connections that logged in with credentials of ``version`` must not be used again."""
        ...

    def add_sweeper(self, sweep: Callable[[], object]) -> None:
        """Call ``sweep()`` (in the background) whenever a version is retired."""
        ...

    def accepted(self, version: int | None) -> None:
        """The database accepted a login with credentials of ``version``."""
        ...


class KVCredentials:
    """Credentials from a KV secret's ``username`` and ``password`` (or its ``url``)."""

    def __init__(self, client: VaultClient, name: str, *, key: str, reread_interval: float = REREAD_INTERVAL) -> None:
        self.client = client
        self.name = name
        self.key = key
        self.path = client.full_path(name)
        #: Read-throughs after a refusal: single flight, at most one per interval.
        self.reread = ThrottledFlight(reread_interval)

    def __repr__(self) -> str:
        return f"<KVCredentials {self.key} at {self.path}>"

    def current(self) -> Credentials:
        return credentials_from(self.client.read(self.name))

    def refused(self, credentials: Credentials) -> Credentials | None:
        current = self.current()
        if current.same_login(credentials):
            # Another process may have rotated the password: read through once (a read just made
            # may predate that rotation, so wait for the interval rather than give up).
            self.reread.run(self._read_through, wait=True)
            current = self.current()
        return None if current.same_login(credentials) else current

    def refresh(self) -> bool:
        return self.reread.run(self._read_through)

    def _read_through(self) -> None:
        self.client.read(self.name, use_cache=False)


def credentials_from(entry: CachedSecret) -> Credentials:
    """The user name and password of a database secret (fields, or those inside ``url``)."""
    return Credentials(*_login_of(entry.data, entry.path), version=entry.version)


def _login_of(data: Mapping[str, Any], path: str) -> tuple[str | None, str | None]:
    if data.get("url"):
        from sqlalchemy.engine import make_url

        url = make_url(str(data["url"]))
        return url.username, url.password if isinstance(url.password, str) else None
    if not data.get("username"):
        raise SecretNotFoundError(
            f"The database secret at {path} has no 'username' (nor a 'url' holding one); fields present:"
            f" {', '.join(sorted(map(str, data))) or 'none'}.",
            path=path,
        )
    password = data.get("password")
    return str(data["username"]), None if password in (None, "") else str(password)
