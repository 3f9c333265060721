"""Vault's database secrets engine on the machine's PostgreSQL, for the dynamic credential tests.

Set up from the project's own files (``example_app/seed.py``): a superuser management role
with a password that Vault logs in with, a group the Vault-made users join (it may read the
probe table ``fv_dynamic_probe``, so a session whose user was dropped can no longer query
it), and per test a role of the engine with the TTLs the test needs.

:func:`passwords_checked` makes PostgreSQL check the password of every member of the
group (a ``+group`` line in ``pg_hba.conf``, removed afterwards), so a query only works
with the password Vault handed out for that very user.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hvac
import pytest
from core_support import app_process_env, poll
from pg_support import _edit, admin_connection, refuses_a_wrong_password, terminate

from example_app.seed import prepare_postgres, seed_database_engine

GROUP = "fv_dynamic_app"
ADMIN = "fv_vault_mgmt"
PROBE_TABLE = "fv_dynamic_probe"
PROBE_QUERY = f"SELECT current_user, count(*) FROM {PROBE_TABLE}"
HBA_MARK = "# flask-vault dynamic test line"


def child_environment(
    base_config: dict[str, Any], environment: str, role: str, home: Path, **extra: str
) -> dict[str, str]:
    """The environment of an app process started by a test: this one's, minus any VAULT_/BAO_
    variable, pointed at the test server with a database role."""
    return app_process_env(
        home,
        VAULT_ADDR=base_config["VAULT_URL"],
        VAULT_TOKEN=base_config["VAULT_TOKEN"],
        VAULT_ENVIRONMENT=environment,
        VAULT_DATABASE_ROLE=role,
        **extra,
    )


def prepare_database(admin: Any) -> str:
    """The PostgreSQL side (idempotent); returns the management role's new password."""
    password = f"mgmt-{secrets.token_hex(12)}"
    prepare_postgres(admin, admin_password=password, group=GROUP, admin_user=ADMIN)
    admin.execute(f"CREATE TABLE IF NOT EXISTS {PROBE_TABLE} (n integer)")
    if not admin.execute(f"SELECT 1 FROM {PROBE_TABLE}").fetchone():
        admin.execute(f"INSERT INTO {PROBE_TABLE} VALUES (1)")
    admin.execute(f"GRANT SELECT ON {PROBE_TABLE} TO {GROUP}")
    return password


def make_role(
    vault_root: hvac.Client,
    admin_password: str,
    *,
    default_ttl: str,
    max_ttl: str,
    mount: str = "database",
    prefix: str = "app",
) -> str:
    """A new role of the engine (and its own connection), with these TTLs; its name."""
    role = f"{prefix}-{uuid.uuid4().hex[:8]}"
    seed_database_engine(
        vault_root,
        admin_password=admin_password,
        role=role,
        group=GROUP,
        admin_user=ADMIN,
        mount=mount,
        connection=f"pg-{role}",
        default_ttl=default_ttl,
        max_ttl=max_ttl,
    )
    return role


def make_static_role(
    vault_root: hvac.Client, admin_password: str, username: str, *, rotation_period: str, mount: str = "database"
) -> str:
    """A static role of the engine for PostgreSQL user ``username`` (which must exist); its name."""
    role = f"static-{uuid.uuid4().hex[:8]}"
    connection = f"pg-{role}"
    vault_root.secrets.database.configure(
        connection,
        "postgresql-database-plugin",
        mount_point=mount,
        allowed_roles=[role],
        connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:5432/test?sslmode=disable",
        username=ADMIN,
        password=admin_password,
    )
    vault_root.write(
        f"{mount}/static-roles/{role}", db_name=connection, username=username, rotation_period=rotation_period
    )
    return role


def vault_users(admin: Any) -> set[str]:
    """Every Vault-made user PostgreSQL has now."""
    rows = admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'v-%'").fetchall()
    return {row[0] for row in rows}


def drop_vault_users(admin: Any, users: set[str]) -> None:
    """Clean up users a test left (a killed process cannot revoke its lease)."""
    for user in users:
        terminate(admin, user)
        admin.execute(f'REASSIGN OWNED BY "{user}" TO {GROUP}')
        admin.execute(f'DROP OWNED BY "{user}"')
        admin.execute(f'DROP ROLE IF EXISTS "{user}"')


@contextmanager
def passwords_checked(admin: Any) -> Iterator[None]:
    """While inside, PostgreSQL checks the password of every member of GROUP (over TCP on 127.0.0.1)."""
    (hba_file,) = admin.execute("SHOW hba_file").fetchone()
    path = Path(hba_file)
    line = f"host all +{GROUP} 127.0.0.1/32 scram-sha-256 {HBA_MARK}\n"
    member, password = f"fv_dyn_probe_{uuid.uuid4().hex[:8]}", secrets.token_hex(8)
    admin.execute(f"CREATE ROLE {member} LOGIN PASSWORD '{password}' IN ROLE {GROUP}")
    _edit(admin, path, lambda text: line + text)
    try:
        poll(lambda: refuses_a_wrong_password(member), timeout=10)  # the reload is asynchronous
        yield
    finally:
        _edit(admin, path, lambda text: "".join(kept for kept in text.splitlines(True) if kept != line))
        admin.execute(f"DROP ROLE IF EXISTS {member}")


def address_secret() -> dict[str, Any]:
    """The KV ``database`` secret of an app on a dynamic role: where the database is, no login."""
    return {"driver": "postgresql+psycopg", "host": "127.0.0.1", "port": 5432, "database": "test"}


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Any]:
    with admin_connection() as connection:
        yield connection


@pytest.fixture(scope="session")
def engine_password(pg_admin: Any) -> str:
    """The PostgreSQL side is ready; the management role's password."""
    return prepare_database(pg_admin)
