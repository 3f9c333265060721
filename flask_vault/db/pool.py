"""Which credentials each pooled connection logged in with, and what happens to it after a switch.

Every connection an attached engine opens is tagged (in its pool entry's ``info``) with
the process that opened it and the version of the credentials it logged in with. Pool
events then keep a live pool in step with its credentials:

* on checkout, a connection opened by another process (a forked worker inherited the
  pool) is let go without being closed (the parent still uses it), and one whose
  credentials were retired (a database lease was switched) is closed; either way the
  pool opens a new one, with the current credentials, before handing it out;
* on checkin, a connection whose credentials were retired while it was checked out is
  closed: it finished its work with the old credentials, and is not used again;
* :func:`sweep` replaces the idle connections of retired credentials, in the background,
  right after a switch, so that requests seldom meet one at checkout.

So after a switch, new connections use the new credentials, checked-out ones finish
their work, idle ones are closed, and the previous credentials can be revoked.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

log = logging.getLogger(__name__)

#: The key of a pool entry's ``info`` that holds its :class:`ConnectionTag`.
TAG = "flask_vault"


@dataclass(frozen=True)
class ConnectionTag:
    """How one pooled connection logged in."""

    pid: int
    #: The version of the credentials (a lease generation, a KV version).
    version: int | None
    #: Opened with credentials that last worked, because the current ones were refused:
    #: kept, so that a pool does not reconnect for ever while the database refuses the new ones.
    pinned: bool = False


def tag(entry: Any, version: int | None, *, pinned: bool = False) -> None:
    """Record on a pool entry how its connection logged in (``entry`` may be None outside a pool)."""
    info = getattr(entry, "info", None)
    if isinstance(info, dict):
        info[TAG] = ConnectionTag(os.getpid(), version, pinned)


def tag_of(entry: Any) -> ConnectionTag | None:
    info = getattr(entry, "info", None)
    found = info.get(TAG) if isinstance(info, dict) else None
    return found if isinstance(found, ConnectionTag) else None


#: ``retired(tag)``: True when a connection with this tag must not be used again.
Retired = Callable[[ConnectionTag], bool]


def follow(engine: Engine, retired: Retired) -> None:
    """Add the checkout and checkin listeners to ``engine`` (once per engine)."""
    from sqlalchemy import event
    from sqlalchemy.exc import DisconnectionError

    def on_checkout(dbapi_connection: Any, entry: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        found = tag_of(entry)
        if found is None:
            return
        if found.pid != os.getpid():
            # Inherited through fork(): the parent's session. Forget it without closing it.
            # SQLAlchemy's documented recipe for pools that cross a fork; the stubs call these read-only.
            entry.dbapi_connection = None  # type: ignore[misc]
            proxy.dbapi_connection = None  # type: ignore[misc]
            raise DisconnectionError("a connection opened by another process")
        if retired(found):
            raise DisconnectionError("a connection that logged in with retired credentials")

    def on_checkin(dbapi_connection: Any, entry: ConnectionPoolEntry) -> None:
        found = tag_of(entry)
        if found is not None and found.pid == os.getpid() and retired(found):
            entry.invalidate()  # closed now; the pool opens a new one at the next checkout

    event.listen(engine, "checkout", on_checkout)
    event.listen(engine, "checkin", on_checkin)


def sweep(engine: Engine) -> int:
    """Check each idle connection of ``engine``'s pool out and in again; how many were taken.

    The checkout listener replaces those of retired credentials (or of another process)
    with new ones, so this runs in the background, after a switch, instead of in a request.
    Pools that keep no idle connections (NullPool) have nothing to sweep.
    """
    pool = engine.pool
    checkedin = getattr(pool, "checkedin", None)
    if not callable(checkedin):
        return 0
    taken = 0
    for _ in range(int(checkedin())):
        if int(checkedin()) <= 0:
            break  # requests took the rest meanwhile: they meet them at checkout
        try:
            connection = pool.connect()
        except Exception as exc:  # the database is unreachable: checkout tries again later
            log.debug("Sweeping the pool of %s failed (%s).", _name(engine), type(exc).__name__)
            break
        connection.close()
        taken += 1
    return taken


def sweeper(engine: Engine) -> Callable[[], int]:
    """A :func:`sweep` of ``engine`` that does not keep the engine alive."""
    ref = weakref.ref(engine)

    def run() -> int:
        target = ref()
        return sweep(target) if target is not None else 0

    return run


def _name(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)
