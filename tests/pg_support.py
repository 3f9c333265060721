"""The machine's PostgreSQL for the connect-time credential tests: throwaway roles whose
logins really check the password.

The machine's ``pg_hba.conf`` trusts every local connection, so a wrong password would
go unnoticed. :func:`password_required` puts a ``scram-sha-256`` line for one throwaway
role at the top of the file, reloads the server, and takes the line out again afterwards
(also when the test fails), under a file lock so that two test processes never edit the
file at once.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from core_support import poll

psycopg = pytest.importorskip("psycopg")

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
LOCK_FILE = Path("/tmp/flask-vault-pg-hba.lock")
MARK = "# flask-vault test line"


def connect_admin() -> Any:
    """An autocommit connection as postgres, or a skip (a failure with FLASK_VAULT_REQUIRE_POSTGRES=1)."""
    try:
        return psycopg.connect(**PG, connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at 127.0.0.1:5432 is unreachable ({str(exc).strip().splitlines()[0]})"
        if os.environ.get("FLASK_VAULT_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"{reason} and FLASK_VAULT_REQUIRE_POSTGRES=1 requires it.")
        pytest.skip(f"{reason}; set FLASK_VAULT_REQUIRE_POSTGRES=1 to fail instead of skipping.")


@contextmanager
def admin_connection() -> Iterator[Any]:
    """:func:`connect_admin`, closed afterwards."""
    connection = connect_admin()
    try:
        yield connection
    finally:
        connection.close()


@contextmanager
def throwaway_role(admin: Any, prefix: str = "fv_conn") -> Iterator[tuple[str, str]]:
    """A LOGIN role with a known password, its sessions ended and the role dropped afterwards."""
    role, password = f"{prefix}_{uuid.uuid4().hex[:10]}", f"initial-{uuid.uuid4().hex}"
    admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    try:
        yield role, password
    finally:
        terminate(admin, role)
        admin.execute(f"DROP ROLE IF EXISTS {role}")


def terminate(admin: Any, role: str) -> int:
    """End every session of ``role`` (``pg_terminate_backend``); how many there were."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
    ).fetchall()
    return len(rows)


def sessions_of(admin: Any, role: str) -> int:
    (count,) = admin.execute("SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)).fetchone()
    return int(count)


@contextmanager
def password_required(admin: Any, *roles: str) -> Iterator[None]:
    """Make PostgreSQL check the password of ``roles`` (over TCP on 127.0.0.1) while inside."""
    (hba_file,) = admin.execute("SHOW hba_file").fetchone()
    path = Path(hba_file)
    if not os.access(path, os.W_OK):
        message = f"{path} is not writable, so no test can make PostgreSQL check a password"
        if os.environ.get("FLASK_VAULT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    lines = [f"host all {role} 127.0.0.1/32 scram-sha-256 {MARK} {role}\n" for role in roles]
    _edit(admin, path, lambda text: "".join(lines) + text)
    try:
        for role in roles:
            poll(lambda role=role: refuses_a_wrong_password(role), timeout=10)  # the reload is asynchronous
        yield
    finally:
        _edit(admin, path, lambda text: "".join(line for line in text.splitlines(True) if line not in lines))


def refuses_a_wrong_password(role: str) -> bool:
    try:
        psycopg.connect(**{**PG, "user": role, "password": "not-the-password"}, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return "password authentication failed" in str(exc)
    return False


def _edit(admin: Any, path: Path, change: Any) -> None:
    with open(LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            text = path.read_text()
            stat = path.stat()
            temporary = path.with_name(f".{path.name}.flask-vault-{os.getpid()}")
            temporary.write_text(change(text))
            os.chown(temporary, stat.st_uid, stat.st_gid)
            os.chmod(temporary, stat.st_mode)
            os.replace(temporary, path)
            (reloaded,) = admin.execute("SELECT pg_reload_conf()").fetchone()
            assert reloaded
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def database_secret(role: str, password: str) -> dict[str, Any]:
    return {
        "driver": "postgresql+psycopg",
        "host": "127.0.0.1",
        "port": 5432,
        "username": role,
        "password": password,
        "database": "test",
    }
