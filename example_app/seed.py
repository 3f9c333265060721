"""Seed a Vault or OpenBao server with the store-erp secrets, an app policy and an AppRole.

    VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN=... python -m example_app.seed \
        --environment development [--database postgresql|dynamic]

Works against either server (only the HTTP API is used). Existing secrets are kept
unless ``--force`` is given, so re-running it never rotates a live key by accident.

``--database dynamic`` also sets up Vault's database secrets engine on the local
PostgreSQL (PGHOST, PGPORT, PGUSER, PGPASSWORD; as a superuser): a database
``store_erp_dynamic`` (PGDATABASE to choose another), a management role for Vault, a group
that owns the app's tables, the engine and a role ``store-erp-app`` whose users Vault
creates and drops (see :func:`prepare_postgres` and :func:`seed_database_engine`), and a
``database`` policy for the AppRole. The app then runs with
``VAULT_DATABASE_ROLE=store-erp-app``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from typing import Any

import hvac
import hvac.exceptions

from flask_vault.ops.policies import render_policy

PREFIX = "store-erp"
MOUNT = "secret"
APPROLE_NAME = "store-ci"


def app_policy(prefix: str, environment: str, mount: str = MOUNT) -> str:
    """Least privilege for the app: the shipped ``policies/app.hcl`` for these paths."""
    return render_policy("app", mount=mount, prefix=prefix, environment=environment)


#: The database secrets engine role of the demo, and what the set-up creates in PostgreSQL.
DYNAMIC_ROLE = "store-erp-app"
OWNER_GROUP = "store_erp_owner"
VAULT_ADMIN = "store_erp_vault"
DYNAMIC_DATABASE = "store_erp_dynamic"


def creation_statements(group: str) -> list[str]:
    """SQL Vault runs to create a user: a login until the lease's end, member of ``group``.

    Tables the user creates stay usable by the next users (members of ``group`` too):
    default privileges grant them to ``group`` from the start.
    """
    return [
        f"CREATE ROLE \"{{{{name}}}}\" WITH LOGIN PASSWORD '{{{{password}}}}' VALID UNTIL '{{{{expiration}}}}'"
        f" IN ROLE {group};",
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{{{{name}}}}" IN SCHEMA public GRANT ALL ON TABLES TO {group};',
        f'ALTER DEFAULT PRIVILEGES FOR ROLE "{{{{name}}}}" IN SCHEMA public GRANT ALL ON SEQUENCES TO {group};',
    ]


def revocation_statements(group: str) -> list[str]:
    """SQL Vault runs to drop a user: what it owns goes to ``group`` first, or DROP ROLE would fail."""
    return [
        f'REASSIGN OWNED BY "{{{{name}}}}" TO {group};',
        'DROP OWNED BY "{{name}}";',
        'DROP ROLE IF EXISTS "{{name}}";',
    ]


def seed_database_engine(
    client: hvac.Client,
    *,
    admin_password: str,
    role: str = DYNAMIC_ROLE,
    group: str = OWNER_GROUP,
    admin_user: str = VAULT_ADMIN,
    mount: str = "database",
    connection: str = "store-erp",
    host: str = "127.0.0.1",
    port: int = 5432,
    database: str = "test",
    default_ttl: str = "1h",
    max_ttl: str = "24h",
) -> dict[str, str]:
    """Enable the database secrets engine at ``mount`` (if it is not), connect it to PostgreSQL
    as ``admin_user`` and create ``role``. The PostgreSQL side (``admin_user`` with
    ``admin_password``, ``group``) must exist: see :func:`prepare_postgres`."""
    if f"{mount}/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("database", path=mount)
    client.secrets.database.configure(
        connection,
        "postgresql-database-plugin",
        mount_point=mount,
        allowed_roles=[role],
        connection_url=f"postgresql://{{{{username}}}}:{{{{password}}}}@{host}:{port}/{database}?sslmode=disable",
        username=admin_user,
        password=admin_password,
    )
    client.secrets.database.create_role(
        role,
        connection,
        mount_point=mount,
        creation_statements=creation_statements(group),
        revocation_statements=revocation_statements(group),
        default_ttl=default_ttl,
        max_ttl=max_ttl,
    )
    return {"mount": mount, "role": role, "connection": connection}


def prepare_postgres(
    admin: Any,
    *,
    admin_password: str,
    group: str = OWNER_GROUP,
    admin_user: str = VAULT_ADMIN,
    database: str | None = None,
) -> None:
    """On an autocommit superuser connection: Vault's management role, the owner group and
    (with ``database``) a database the group owns, created if it does not exist.

    ``admin_user`` is a superuser with a password (Vault logs in with it to create and drop
    users); ``group`` owns the app's objects and may create tables in ``public`` (of
    ``database``, or of the database ``admin`` is connected to).
    """
    from psycopg import sql

    exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (admin_user,)).fetchone()
    statement = (
        "ALTER ROLE {} WITH LOGIN SUPERUSER PASSWORD {}" if exists else "CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}"
    )
    admin.execute(sql.SQL(statement).format(sql.Identifier(admin_user), sql.Literal(admin_password)))
    if not admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (group,)).fetchone():
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(group)))
    if database is None:
        admin.execute(sql.SQL("GRANT USAGE, CREATE ON SCHEMA public TO {}").format(sql.Identifier(group)))
    elif not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone():
        # Its owner (the group) owns its public schema too (PostgreSQL 15: pg_database_owner).
        owner = sql.Identifier(group)
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), owner))


def database_secret(kind: str, sqlite_path: str | None = None) -> dict[str, Any]:
    if kind == "dynamic":  # the login comes from the database secrets engine: only the address here
        return {
            "driver": "postgresql+psycopg",
            "host": os.environ.get("PGHOST", "127.0.0.1"),
            "port": int(os.environ.get("PGPORT", "5432")),
            "database": os.environ.get("PGDATABASE", DYNAMIC_DATABASE),
        }
    if kind == "postgresql":
        return {
            "driver": "postgresql+psycopg",
            "host": os.environ.get("PGHOST", "127.0.0.1"),
            "port": int(os.environ.get("PGPORT", "5432")),
            "username": os.environ.get("PGUSER", "postgres"),
            "password": os.environ.get("PGPASSWORD", ""),
            "database": os.environ.get("PGDATABASE", "test"),
        }
    path = sqlite_path or os.path.abspath(os.path.join("instance", "store.db"))
    return {"url": f"sqlite:///{path}"}


def seed(
    client: hvac.Client,
    *,
    environment: str = "development",
    prefix: str = PREFIX,
    mount: str = MOUNT,
    database: dict[str, Any] | None = None,
    force: bool = False,
    database_role: str | None = None,
    database_mount: str = "database",
) -> dict[str, str]:
    """Write the secrets, policy and AppRole; return the AppRole's role_id and names used.

    With ``database_role``, the AppRole's tokens also get the ``database`` policy for it.
    """
    base = f"{prefix}/{environment}"
    flask_secret = {"secret_key": secrets.token_urlsafe(48), "jwt_secret": secrets.token_urlsafe(48)}
    for name, data in (("flask", flask_secret), ("database", database or database_secret("sqlite"))):
        if force or not _exists(client, f"{base}/{name}", mount):
            client.secrets.kv.v2.create_or_update_secret(f"{base}/{name}", data, mount_point=mount)
    policy_name = f"{prefix}-{environment}-app"
    client.sys.create_or_update_policy(policy_name, app_policy(prefix, environment, mount))
    policies = [policy_name]
    if database_role is not None:
        database_policy = f"{prefix}-{environment}-database"
        hcl = render_policy(
            "database",
            prefix=prefix,
            environment=environment,
            database_mount=database_mount,
            database_role=database_role,
        )
        client.sys.create_or_update_policy(database_policy, hcl)
        policies.append(database_policy)
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    client.auth.approle.create_or_update_approle(
        APPROLE_NAME, token_policies=policies, token_ttl="1h", token_max_ttl="4h"
    )
    role_id = client.auth.approle.read_role_id(APPROLE_NAME)["data"]["role_id"]
    return {"policy": policy_name, "role": APPROLE_NAME, "role_id": role_id, "path": f"{mount}/{base}"}


def _exists(client: hvac.Client, path: str, mount: str) -> bool:
    try:
        client.secrets.kv.v2.read_secret_version(path, mount_point=mount, raise_on_deleted_version=False)
    except hvac.exceptions.InvalidPath:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", default=os.environ.get("VAULT_ENVIRONMENT", "development"))
    parser.add_argument("--database", choices=["sqlite", "postgresql", "dynamic"], default="sqlite")
    parser.add_argument("--sqlite-path", help="SQLite file for the demo database (default: instance/store.db)")
    parser.add_argument("--force", action="store_true", help="overwrite existing secrets with new values")
    args = parser.parse_args(argv)
    url = os.environ.get("VAULT_ADDR") or os.environ.get("VAULT_URL") or "http://127.0.0.1:8200"
    token = os.environ.get("VAULT_TOKEN")
    if not token:
        print("seed: set VAULT_TOKEN to a token that may write secrets and policies.", file=sys.stderr)
        return 2
    client = hvac.Client(url=url, token=token)
    dynamic = args.database == "dynamic"
    result = seed(
        client,
        environment=args.environment,
        database=database_secret(args.database, args.sqlite_path),
        force=args.force,
        database_role=DYNAMIC_ROLE if dynamic else None,
    )
    print(f"seeded {result['path']}/{{flask,database}}, policy {result['policy']}, AppRole {result['role']}")
    if dynamic:
        engine = set_up_dynamic_database(client)
        print(
            f"database secrets engine at {engine['mount']}/, role {engine['role']} on PostgreSQL database"
            f" {engine['database']}: run the app with VAULT_DATABASE_ROLE={engine['role']}"
        )
    return 0


def set_up_dynamic_database(client: hvac.Client, *, default_ttl: str = "1h", max_ttl: str = "24h") -> dict[str, str]:
    """The PostgreSQL side (PG* variables, as a superuser) and the engine, for the demo's role."""
    import psycopg

    address = database_secret("dynamic")
    password = secrets.token_urlsafe(24)
    connection = psycopg.connect(
        host=address["host"],
        port=address["port"],
        user=os.environ.get("PGUSER", "postgres"),
        password=os.environ.get("PGPASSWORD") or None,
        dbname="postgres",
        autocommit=True,
    )
    try:
        prepare_postgres(connection, admin_password=password, database=address["database"])
    finally:
        connection.close()
    engine = seed_database_engine(
        client,
        admin_password=password,
        host=address["host"],
        port=address["port"],
        database=address["database"],
        default_ttl=default_ttl,
        max_ttl=max_ttl,
    )
    return {**engine, "database": address["database"]}


if __name__ == "__main__":
    raise SystemExit(main())
