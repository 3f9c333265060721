"""Dynamic database credentials end to end: a minute of queries through switches every few seconds.

A role of the database secrets engine with ``default_ttl=5s`` and ``max_ttl=15s`` makes a
lease that is renewed twice and then, near its max TTL, switched for a new user: about
every 10 to 13 s. PostgreSQL checks the password of every Vault-made user (a ``+group``
line in ``pg_hba.conf``), and only those users may read the probe table, so a query
succeeds only as a user that exists, with the password Vault gave for it.

* In one process (Flask-SQLAlchemy, 4 threads, 60 s): no failed query, at least three
  generations, every query as a Vault-made user, and every user but the last gone from
  ``pg_roles`` once its lease was revoked.
* Under ``gunicorn -w 3`` with ``--preload`` (60 s) and without (20 s): no failed request,
  and each worker its own users (never another worker's, nor the master's).
* With Vault stopped for 10 s when a lease is due (a persistent server, restarted and
  unsealed): queries keep working on the current credentials, health says ``warn`` for
  the lease meanwhile, and a new generation comes once Vault is back.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
import sqlalchemy
from core_support import assert_no_leak, poll, wait_until_answering
from dynamic_app import PROBE_QUERY, build_app, db
from dynamic_support import (
    address_secret,
    child_environment,
    drop_vault_users,
    engine_password,
    make_role,
    passwords_checked,
    pg_admin,
    vault_users,
)
from flask import Flask

from flask_vault.devserver import PersistentOpenBaoServer, free_port_pair, stop_process
from flask_vault.health.monitor import get_monitor
from flask_vault.state import get_state

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
__all__ = ["engine_password", "pg_admin"]  # fixtures

REPO = Path(__file__).resolve().parent.parent
PREFIX = "store-erp"
THREADS = 4
PACE = 0.005  # seconds between two queries of one thread


class QueryLoad:
    """Threads that run ``one()`` until stopped; what each returned, and every failure."""

    def __init__(self, one: Any) -> None:
        self.one = one
        self.users: Counter[str] = Counter()
        self.by_pid: dict[int, set[str]] = {}
        self.failures: list[str] = []
        self.failed = 0
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(THREADS)]

    def _run(self) -> None:
        while not self.stop.wait(PACE):
            try:
                user, pid = self.one()
            except Exception as exc:
                with self._lock:
                    self.failed += 1
                    if len(self.failures) < 20:
                        self.failures.append(f"{type(exc).__name__}: {str(exc)[:300]}")
                continue
            with self._lock:
                self.users[user] += 1
                self.by_pid.setdefault(pid, set()).add(user)

    def __enter__(self) -> QueryLoad:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def total(self) -> int:
        return sum(self.users.values()) + self.failed


def seed_kv(client: hvac.Client, environment: str) -> None:
    kv = client.secrets.kv.v2
    kv.create_or_update_secret(f"{PREFIX}/{environment}/database", address_secret())


def in_app(app: Flask) -> Any:
    def one() -> tuple[str, int]:
        with app.app_context():
            user, _count = db.session.execute(sqlalchemy.text(PROBE_QUERY)).one()
            db.session.remove()
            return str(user), os.getpid()

    return one


def test_a_minute_of_queries_through_switches_every_few_seconds(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, engine_password: str, pg_admin: Any
) -> None:
    role = make_role(vault_root, engine_password, default_ttl="5s", max_ttl="15s")
    seed_kv(vault_root, unique_env)
    config = {**base_config, "VAULT_ENVIRONMENT": unique_env, "VAULT_HEALTH_URL": None, "VAULT_DATABASE_ROLE": role}
    with passwords_checked(pg_admin):
        app = build_app(config)
        lease = get_state(app).databases.leases[0]  # type: ignore[union-attr]
        issued = [lease.username]
        lease.on_switch(lambda credentials: issued.append(credentials.username))
        try:
            with QueryLoad(in_app(app)) as load:
                time.sleep(60)
            generations = lease.generation
            status = lease.status()
        finally:
            last = lease.username
            previous = set(issued) - {last}
            # Each previous user is revoked within its grace period, capped by its lease's end (<= 5 s).
            poll(lambda: not previous & vault_users(pg_admin), timeout=20)
            get_state(app).databases.close(revoke=True)  # type: ignore[union-attr]
            with app.app_context():
                db.engine.dispose()
    print(
        f"\none process, {THREADS} threads, 60 s: {load.total} queries, {load.failed} failed,"
        f" generations {generations}, users {dict(load.users)}, lease {status}"
    )
    assert load.failures == []
    assert generations >= 3 and status["switches"] >= 2
    assert all(user.startswith("v-") for user in load.users)
    assert set(load.users) <= set(issued)
    assert len(load.users) >= 3  # queries ran as each generation's user
    assert last not in vault_users(pg_admin)  # revoked at close too


@pytest.mark.parametrize(("preload", "seconds"), [(True, 60.0), (False, 20.0)], ids=["preload", "no-preload"])
def test_gunicorn_workers_each_get_users_of_their_own(
    base_config: dict[str, Any],
    vault_root: hvac.Client,
    unique_env: str,
    engine_password: str,
    pg_admin: Any,
    tmp_path: Path,
    preload: bool,
    seconds: float,
) -> None:
    role = make_role(vault_root, engine_password, default_ttl="5s", max_ttl="15s")
    seed_kv(vault_root, unique_env)
    env = child_environment(base_config, unique_env, role, tmp_path, VAULT_HEALTH_URL="none", DYNAMIC_LOG="1")
    port = free_port_pair()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "gunicorn", "-w", "3", "-b", f"127.0.0.1:{port}", "--graceful-timeout", "10",
        *(["--preload"] if preload else []), "tests.dynamic_app:create_app()",
    ]  # fmt: skip
    log_file = tmp_path / "gunicorn.log"

    def one() -> tuple[str, int]:
        response = requests.get(f"{base}/db", headers={"Connection": "close"}, timeout=10)
        assert response.status_code == 200, f"HTTP {response.status_code} {response.text[:200]!r}"
        body = response.json()
        return str(body["user"]), int(body["pid"])

    load = QueryLoad(one)
    with passwords_checked(pg_admin):
        with open(log_file, "wb") as out:
            server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until_answering(server, f"{base}/db", log_file)
            with load:
                time.sleep(seconds)
        finally:
            stop_process(server, timeout=30)  # SIGTERM, then SIGKILL
            logs = log_file.read_text()
            issued = _issued_users(logs)
            left = (set().union(*issued.values()) | set(load.users)) & vault_users(pg_admin)
            drop_vault_users(pg_admin, left)  # only a crash leaves any: asserted below
    workers = load.by_pid
    print(
        f"\ngunicorn -w 3{' --preload' if preload else ''}, {seconds:.0f} s: {load.total} requests,"
        f" {load.failed} failed; users per worker: { {pid: len(users) for pid, users in workers.items()} };"
        f" master {server.pid} users: {sorted(issued.get(server.pid, set()))}"
    )
    assert load.failures == []
    assert len(workers) == 3
    for pid, users in workers.items():
        assert all(user.startswith("v-") for user in users)
        others = set().union(*(u for p, u in workers.items() if p != pid), issued.get(server.pid, set()))
        assert not users & others, f"worker {pid} used another process's user"
        assert users <= issued.get(pid, set())
    if seconds >= 60:
        assert all(len(users) >= 3 for users in workers.values())  # each worker switched too
    assert (server.pid in issued) == preload  # with --preload the master has a lease of its own (its own user)
    assert not left, f"not revoked at exit: {sorted(left)}"
    assert_no_leak(logs, [base_config["VAULT_TOKEN"]])
    assert "lease_id" not in logs and not re.search(r"database/creds/[^ ]+/[A-Za-z0-9]{20,}", logs)


def _issued_users(logs: str) -> dict[int, set[str]]:
    """pid -> the users each process got (from flask_vault.db.lease's INFO lines)."""
    issued: dict[int, set[str]] = {}
    pattern = re.compile(r"^(\d+) flask_vault\.db\.lease INFO (?:Database credentials|Switched).*?: user (v-\S+?)[ ,]")
    for line in logs.splitlines():
        match = pattern.match(line)
        if match:
            issued.setdefault(int(match.group(1)), set()).add(match.group(2))
    return issued


def test_queries_ride_out_a_vault_outage_when_the_lease_is_due(
    engine_password: str, pg_admin: Any, tmp_path: Path
) -> None:
    server = PersistentOpenBaoServer().start()
    try:
        root = server.root_client()
        role = make_role(root, engine_password, default_ttl="60s", max_ttl="60s")
        seed_kv(root, "outage")
        config = {
            "VAULT_URL": server.url,
            "VAULT_TOKEN": server.root_token,
            "VAULT_PATH_PREFIX": PREFIX,
            "VAULT_ENVIRONMENT": "outage",
            "VAULT_HEALTH_URL": None,
            "VAULT_HEALTH_CACHE_SECONDS": 0,
            "VAULT_TIMEOUT": 1,
            "VAULT_DATABASE_ROLE": role,
        }
        with passwords_checked(pg_admin):
            app = build_app(config)
            state = get_state(app)
            lease = state.databases.leases[0]  # type: ignore[union-attr]
            monitor = get_monitor(state)
            statuses: list[str] = []
            try:
                with QueryLoad(in_app(app)) as load:
                    assert monitor.report(fresh=True).check_status("vault:lease") == "pass"
                    # Stop Vault just before the lease is due (renewal at about two thirds of its 60 s).
                    poll(lambda: (lease.status()["next_renewal_in"] or 99) < 1.0, timeout=50, interval=0.1)
                    first, left_at_stop = lease.username, lease.expires_in()
                    server.stop()
                    stopped = time.monotonic()
                    while time.monotonic() - stopped < 10:
                        statuses.append(monitor.report(fresh=True).check_status("vault:lease"))
                        time.sleep(0.25)
                    queries_during = load.total
                    server.start()  # restarted with its data, and unsealed
                    restarted = time.monotonic()
                    poll(lambda: lease.generation >= 2, timeout=30, interval=0.1)
                    back_after = time.monotonic() - restarted
                    time.sleep(3)
                    after = monitor.report(fresh=True).check_status("vault:lease")
            finally:
                second = lease.username
                lease.close(revoke=True)
                with app.app_context():
                    db.engine.dispose()
                drop_vault_users(pg_admin, {first, second} & vault_users(pg_admin))
        print(
            f"\nVault stopped 10 s with {left_at_stop:.1f}s left on the lease: {load.total} queries"
            f" ({queries_during} by the end of the outage), {load.failed} failed; lease statuses meanwhile"
            f" {dict(Counter(statuses))}; new generation {back_after:.1f}s after the restart"
        )
        assert load.failures == []
        assert "warn" in statuses and "fail" not in statuses
        assert after == "pass" and second != first
        assert load.users[first] > 0 and load.users[second] > 0
    finally:
        server.stop()
