"""The example on dynamic database credentials, set up as ``DATABASE=dynamic make demo`` does:
``example_app.seed`` prepares PostgreSQL (a database of its own here), enables the engine,
makes the role and gives the AppRole the ``database`` policy; the app logs in with that
AppRole, so the shipped policies are exactly what it has.

The first user creates the tables (``db.create_all()``); after a switch the next user
reads and writes them (default privileges to the owner group), and when the first user's
lease is revoked its tables go to the group (``REASSIGN OWNED``) and it is dropped.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from flask import Flask

from example_app import create_app
from example_app.models import db
from example_app.seed import prepare_postgres, seed, seed_database_engine
from flask_vault.state import get_state

psycopg = pytest.importorskip("psycopg")
pytestmark = pytest.mark.postgres

GROUP = "fv_example_owner"
ADMIN = "fv_example_vault"


def connect(dbname: str) -> Any:
    try:
        return psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname=dbname, autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({str(exc).strip().splitlines()[0]})")


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards."""
    name = f"fv_example_{uuid.uuid4().hex[:8]}"
    admin = connect("postgres")
    try:
        yield name
    finally:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.close()


@pytest.fixture
def dynamic_config(openbao_server: Any, vault_root: hvac.Client, database: str) -> dict[str, Any]:
    environment = f"example-{uuid.uuid4().hex[:10]}"
    role = f"store-app-{uuid.uuid4().hex[:6]}"
    password = secrets.token_urlsafe(16)
    admin = connect("postgres")
    try:
        prepare_postgres(admin, admin_password=password, group=GROUP, admin_user=ADMIN, database=database)
    finally:
        admin.close()
    address = {"driver": "postgresql+psycopg", "host": "127.0.0.1", "port": 5432, "database": database}
    seeded = seed(vault_root, environment=environment, database=address, database_role=role)
    seed_database_engine(
        vault_root,
        admin_password=password,
        role=role,
        group=GROUP,
        admin_user=ADMIN,
        connection=f"example-{role}",
        database=database,
        default_ttl="1m",
        max_ttl="10m",
    )
    secret_id = vault_root.auth.approle.generate_secret_id(seeded["role"])["data"]["secret_id"]
    return {
        "TESTING": True,
        "VAULT_URL": openbao_server.url,
        "VAULT_ROLE_ID": seeded["role_id"],
        "VAULT_SECRET_ID": secret_id,
        "VAULT_ENVIRONMENT": environment,
        "VAULT_STARTUP_TIMEOUT": 0,
        "VAULT_DATABASE_ROLE": role,
        "VAULT_DATABASE_GRACE": 0.5,
    }


@pytest.fixture
def dynamic_app(dynamic_config: dict[str, Any]) -> Iterator[Flask]:
    app = create_app(dynamic_config)
    yield app
    databases = get_state(app).databases
    assert databases is not None
    databases.close(revoke=True)
    with app.app_context():
        db.engine.dispose()


def test_the_example_keeps_its_tables_through_a_switch_on_the_shipped_policies(
    dynamic_app: Flask, database: str
) -> None:
    web = dynamic_app.test_client()
    token = web.post("/login", json={"username": "demo", "password": "demo"}).get_json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    anvil = {"sku": "a-1", "name": "Anvil", "price": "9.50"}
    assert web.post("/products", json=anvil, headers=headers).status_code == 201
    lease = get_state(dynamic_app).databases.leases[0]  # type: ignore[union-attr]
    first = lease.username
    pg = connect(database)
    try:
        (owner,) = pg.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'store_product'").fetchone()
        assert owner == first  # the first user created the table

        lease.renewal.replace_soon("the test asked for a switch")
        wait_for(lambda: lease.generation == 2)
        assert lease.username != first
        body = web.get("/products", headers=headers).get_json()
        assert [p["sku"] for p in body["products"]] == ["a-1"]  # the next user reads the first one's table
        bolt = {"sku": "b-2", "name": "Bolt", "price": "0.20"}
        assert web.post("/products", json=bolt, headers=headers).status_code == 201

        wait_for(lambda: lease.stats.revocations == 1)  # after VAULT_DATABASE_GRACE, with the app's own token
        (owner,) = pg.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'store_product'").fetchone()
        assert owner == GROUP  # REASSIGN OWNED: the revocation could drop the first user
        assert not pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (first,)).fetchone()
        body = web.get("/products", headers=headers).get_json()
        assert [p["sku"] for p in body["products"]] == ["a-1", "b-2"]
    finally:
        pg.close()
