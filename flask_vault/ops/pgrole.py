"""Change a PostgreSQL role's password together with the Vault secret that holds it.

A database secret (``driver`` absent or ``postgresql[+driver]``, with ``username`` and
``host``) is PostgreSQL. Changing its ``password`` in Vault alone would lock the app out,
so the change is made in two halves that stand or fall together:

1. :func:`begin_password_change` logs in as the role with its current password, opens a
   transaction and runs ``ALTER ROLE ... PASSWORD`` with a SCRAM verifier computed on
   this side (the plaintext never reaches the server's statement log). Nothing is
   visible to other sessions yet.
2. The caller writes the new version to Vault (check-and-set).
3. :meth:`PendingPasswordChange.commit` commits the transaction, or
   :meth:`~PendingPasswordChange.rollback` drops it when the Vault write failed.

If the commit itself fails after Vault accepted the write, the caller writes the old
data back to Vault (see :mod:`flask_vault.ops.changes`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask_vault.errors import DatabaseRotationError

log = logging.getLogger(__name__)

#: Seconds to wait for the connection, a lock on the role, and the statement.
CONNECT_TIMEOUT = 5
LOCK_TIMEOUT_MS = 5000
STATEMENT_TIMEOUT_MS = 10000

_POSTGRES_DRIVERS = ("postgresql", "postgres")


def is_postgres_secret(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` describes a PostgreSQL login that flask-vault can change.

    Same rule as the database URL builder: no ``url`` field, ``driver`` missing or a
    PostgreSQL one, and a ``username`` and ``host``.
    """
    if data.get("url"):
        return False
    driver = str(data.get("driver") or "postgresql").split("+", 1)[0].lower()
    return driver in _POSTGRES_DRIVERS and bool(data.get("username")) and bool(data.get("host"))


def describe(data: Mapping[str, Any]) -> str:
    """``role 'store' on 127.0.0.1:5432/test`` (no password)."""
    port = data.get("port") or 5432
    database = data.get("database") or ""
    return f"role {data.get('username')!r} on {data.get('host')}:{port}/{database}"


class PendingPasswordChange:
    """An open transaction holding an uncommitted ``ALTER ROLE ... PASSWORD``."""

    def __init__(self, connection: Any, where: str, secrets: tuple[str, ...]) -> None:
        self._connection = connection
        self.where = where
        self._secrets = secrets

    def __repr__(self) -> str:
        return f"<PendingPasswordChange {self.where}>"

    def commit(self) -> None:
        """Make the new password effective; raises :class:`DatabaseRotationError` on failure."""
        try:
            self._connection.commit()
        except Exception as exc:
            raise DatabaseRotationError(
                f"PostgreSQL did not commit the new password for {self.where}: {_safe(exc, self._secrets)}"
            ) from exc
        finally:
            self._close()

    def rollback(self) -> None:
        """Drop the change; the role keeps its old password. Never raises."""
        try:
            self._connection.rollback()
        except Exception as exc:  # the connection is gone: the server rolls back by itself
            log.warning("Rolling back the password change for %s failed: %s", self.where, type(exc).__name__)
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self._connection.close()
        except Exception:  # noqa: S110 - closing a dead connection has nothing left to report
            pass


def require_driver() -> None:
    """Raise when psycopg is missing: checked while planning, before any backup or write."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise DatabaseRotationError(
            "Rotating a PostgreSQL password needs psycopg: pip install 'psycopg[binary]'. Nothing was changed."
        ) from None


def begin_password_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> PendingPasswordChange:
    """Log in with ``old``'s credentials and ALTER ROLE to ``new``'s password, uncommitted.

    Raises :class:`DatabaseRotationError` (nothing changed anywhere) when PostgreSQL cannot
    be reached, the login fails or the role may not change its password.
    """
    require_driver()
    import psycopg
    from psycopg import sql

    where = describe(old)
    username = str(old["username"])
    if str(new.get("username")) != username:
        raise DatabaseRotationError(
            f"The new data names another role ({new.get('username')!r}) than the current one ({username!r});"
            " change the role's password in PostgreSQL yourself. Nothing was changed."
        )
    old_password = "" if old.get("password") is None else str(old["password"])
    new_password = str(new["password"])
    secrets = tuple(s for s in (old_password, new_password) if s)
    params: dict[str, Any] = {
        "host": str(old["host"]),
        "port": int(old.get("port") or 5432),
        "user": username,
        "dbname": str(old.get("database") or username),
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": "flask-vault-rotate",
    }
    if old_password:
        params["password"] = old_password
    if old.get("sslmode"):
        params["sslmode"] = str(old["sslmode"])
    try:
        connection = psycopg.connect(**params)
    except Exception as exc:
        raise DatabaseRotationError(
            f"Cannot log in to PostgreSQL as {where} to change its password: {_safe(exc, secrets)}."
            " Nothing was changed in PostgreSQL or Vault."
        ) from exc
    try:
        verifier = connection.pgconn.encrypt_password(new_password.encode(), username.encode(), None).decode()
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT_MS)))
            cursor.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(STATEMENT_TIMEOUT_MS)))
            cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(username), sql.Literal(verifier)))
    except Exception as exc:
        pending = PendingPasswordChange(connection, where, secrets)
        pending.rollback()
        raise DatabaseRotationError(
            f"PostgreSQL refused to change the password of {where}: {_safe(exc, secrets)}."
            " Nothing was changed in PostgreSQL or Vault."
        ) from exc
    log.info("Password change for %s is pending (uncommitted).", where)
    return PendingPasswordChange(connection, where, secrets)


def _safe(exc: BaseException, secrets: tuple[str, ...]) -> str:
    """The first line of a driver error, with any password scrubbed out."""
    text = (str(exc).strip().splitlines() or [""])[0]
    for secret in secrets:
        text = text.replace(secret, "<hidden>")
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
