"""Build ``SQLALCHEMY_DATABASE_URI`` from a database secret.

A ``url`` field is used as it is. Otherwise the URL is built from ``driver``
(default ``postgresql``), ``username``, ``password``, ``host``, ``port`` and
``database``, with every part escaped so that any character in a password works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from flask_vault.display import safe_text
from flask_vault.errors import SecretNotFoundError, VaultError

REQUIRED_FIELDS = ("username", "host", "database")


def build_database_url(data: Mapping[str, Any], *, path: str | None = None) -> str:
    if data.get("url"):
        return str(data["url"])
    missing = [name for name in REQUIRED_FIELDS if not data.get(name)]
    if missing:
        raise SecretNotFoundError(
            f"The database secret at {path or '?'} has no 'url' field and lacks "
            f"{', '.join(repr(m) for m in missing)} to build one; fields present: "
            f"{safe_text(', '.join(sorted(map(str, data)))) or 'none'}.",
            path=path,
        )
    driver = str(data.get("driver") or "postgresql")
    port = _port(data.get("port"), path)
    password = None if data.get("password") in (None, "") else str(data["password"])
    try:
        from sqlalchemy.engine import URL
    except ImportError:
        return _build_by_hand(driver, str(data["username"]), password, str(data["host"]), port, str(data["database"]))
    url = URL.create(
        driver,
        username=str(data["username"]),
        password=password,
        host=str(data["host"]),
        port=port,
        database=str(data["database"]),
    )
    return url.render_as_string(hide_password=False)


def _port(value: Any, path: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        port = int(str(value).strip())
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        # A VaultError (not ValueError) so the fallback order still applies; the value is not shown.
        raise VaultError(
            f"The database secret at {path or '?'} has a 'port' that is not a port number (1-65535).", path=path
        )
    return port


def _build_by_hand(driver: str, username: str, password: str | None, host: str, port: int | None, database: str) -> str:
    credentials = quote(username, safe="")
    if password is not None:
        credentials += ":" + quote(password, safe="")
    netloc = f"{credentials}@{host}" + (f":{port}" if port is not None else "")
    return f"{driver}://{netloc}/{quote(database, safe='')}"


def connection_url(data: Mapping[str, Any], *, path: str | None = None) -> str:
    """Where the database is, without a login: ``url`` with its user and password taken out, or
    ``driver``, ``host``, ``port`` and ``database`` (for credentials that come from elsewhere)."""
    from sqlalchemy.engine import URL

    if data.get("url"):
        return without_login(str(data["url"]))
    missing = [name for name in ("host", "database") if not data.get(name)]
    if missing:
        raise SecretNotFoundError(
            f"The database secret at {path or '?'} has no 'url' field and lacks "
            f"{', '.join(repr(m) for m in missing)} to say where the database is; fields present: "
            f"{', '.join(sorted(map(str, data))) or 'none'}.",
            path=path,
        )
    url = URL.create(
        str(data.get("driver") or "postgresql"),
        host=str(data["host"]),
        port=_port(data.get("port"), path),
        database=str(data["database"]),
    )
    return url.render_as_string(hide_password=False)


def without_login(url: str) -> str:
    """``url`` with no user name or password."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        raise VaultError("The database URL is not a URL SQLAlchemy can read.") from None
    # URL.set() ignores None; URL is a named tuple, so _replace is its public way to clear fields.
    return parsed._replace(username=None, password=None).render_as_string(hide_password=False)


def with_login(url: str, username: str | None, password: str | None) -> str:
    """``url`` (one without a login) with ``username`` and ``password`` put in, escaped."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(username=username, password=password).render_as_string(hide_password=False)
