"""Dynamic database credentials: ``VAULT_DATABASE_ROLE`` against the session's OpenBao and the
machine's PostgreSQL (see dynamic_support: a database secrets engine set up from
example_app/seed.py; Vault-made users may read the probe table only while they exist).

Switches are forced here with ``lease.renewal.replace_soon(...)`` (what a max TTL near, a
refused renewal or a new token does) so that each test runs in seconds; the acceptance
tests (test_dynamic_acceptance.py) let TTLs of a few seconds drive them for a minute.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import sqlalchemy
from core_support import FakeClock, poll
from dynamic_app import PROBE_QUERY, build_app, db, vault
from dynamic_support import (
    address_secret,
    child_environment,
    engine_password,
    make_role,
    make_static_role,
    passwords_checked,
    pg_admin,
    vault_users,
)
from faults import TcpProxy
from flask import Flask
from pg_support import password_required, sessions_of, terminate, throwaway_role

from flask_vault import FlaskVault, VaultConfigError, VaultError
from flask_vault.db.lease import LeaseCredentials
from flask_vault.health.monitor import get_monitor
from flask_vault.state import find_state, get_state

pytestmark = pytest.mark.postgres
__all__ = ["engine_password", "pg_admin"]  # fixtures

PREFIX = "store-erp"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(vault_root: hvac.Client, unique_env: str) -> str:
    kv = vault_root.secrets.kv.v2
    kv.create_or_update_secret(f"{PREFIX}/{unique_env}/flask", {"secret_key": "sk-dynamic", "jwt_secret": "jwt"})
    kv.create_or_update_secret(f"{PREFIX}/{unique_env}/database", address_secret())
    return unique_env


@pytest.fixture
def role(vault_root: hvac.Client, engine_password: str) -> str:
    return make_role(vault_root, engine_password, default_ttl="1m", max_ttl="10m")


@pytest.fixture
def config(base_config: dict[str, Any], env: str, role: str) -> dict[str, Any]:
    return {
        **base_config,
        "VAULT_ENVIRONMENT": env,
        "VAULT_HEALTH_URL": None,
        "VAULT_DATABASE_ROLE": role,
        "VAULT_DATABASE_GRACE": 0.5,
    }


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    """Apps a test made: their leases are revoked and their pools closed afterwards."""
    made: list[Flask] = []
    yield made
    for app in made:
        state = find_state(app)
        if state is not None and state.databases is not None:
            state.databases.close(revoke=True)
        extension = app.extensions.get("sqlalchemy")
        if extension is not None:
            with app.app_context():
                for engine in extension.engines.values():
                    engine.dispose()


def lease_of(app: Flask, index: int = 0) -> LeaseCredentials:
    databases = get_state(app).databases
    assert databases is not None
    return databases.leases[index]


def switch(lease: LeaseCredentials) -> int:
    """Force a switch (as a max TTL near would) and wait for it; the new generation."""
    before = lease.generation
    lease.renewal.replace_soon("the test asked for a switch")
    return int(poll(lambda: lease.generation if lease.generation > before else 0, timeout=10))


def query_user(app: Flask, bind: str | None = None) -> str:
    with app.app_context():
        arguments = {"bind": db.engines[bind]} if bind else None
        user, _count = db.session.execute(sqlalchemy.text(PROBE_QUERY), bind_arguments=arguments).one()
        db.session.remove()
        return str(user)


def test_the_database_url_takes_its_login_from_the_role_and_its_address_from_the_secret(
    config: dict[str, Any], role: str, env: str, apps: list[Flask], pg_admin: Any
) -> None:
    with passwords_checked(pg_admin):
        app = build_app(config)
        apps.append(app)
        lease = lease_of(app)
        url = sqlalchemy.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
        assert url.username == lease.username and url.username.startswith("v-")
        assert (url.host, url.port, url.database) == ("127.0.0.1", 5432, "test")
        assert query_user(app) == lease.username  # the password Vault handed out is the one checked
        source = get_state(app).sources["SQLALCHEMY_DATABASE_URI"]
        assert (source.origin, source.path, source.lease) == (
            "vault",
            f"secret/{PREFIX}/{env}/database",
            f"database/creds/{role}",
        )
    user = lease.username
    lease.close(revoke=True)
    assert user not in vault_users(pg_admin)  # revoked: Vault dropped the user


@pytest.mark.parametrize("order", ["vault-first", "db-first"])
def test_flask_sqlalchemy_in_either_order_with_a_bind_on_a_role_of_its_own(
    config: dict[str, Any],
    vault_root: hvac.Client,
    engine_password: str,
    apps: list[Flask],
    monkeypatch: pytest.MonkeyPatch,
    order: str,
) -> None:
    reports = make_role(vault_root, engine_password, default_ttl="1m", max_ttl="10m", prefix="rep")
    address = "postgresql+psycopg://127.0.0.1:5432/test"  # no login: each role's users log in
    monkeypatch.setenv("DYNAMIC_DATABASE_URL", address)
    config = {
        **config,
        "VAULT_DATABASE_BIND_ROLES": {"reports": reports},
        "SQLALCHEMY_BINDS": {"reports": address},
    }
    app = build_app(config, db_first=order == "db-first")
    apps.append(app)
    main, other = lease_of(app, 0), lease_of(app, 1)
    assert {main.role, other.role} == {config["VAULT_DATABASE_ROLE"], reports}
    by_role = {lease.role: lease for lease in (main, other)}
    assert query_user(app) == by_role[config["VAULT_DATABASE_ROLE"]].username
    assert query_user(app, "reports") == by_role[reports].username
    assert by_role[reports].key == "SQLALCHEMY_BINDS['reports']"
    switch(by_role[reports])
    assert query_user(app, "reports") == by_role[reports].username  # the bind follows its own role
    assert query_user(app) == by_role[config["VAULT_DATABASE_ROLE"]].username


def test_a_plain_engine_follows_switches_after_one_call(
    config: dict[str, Any], apps: list[Flask], pg_admin: Any
) -> None:
    app = Flask("plain_dynamic")
    app.config.update(config)
    extension = FlaskVault(app)
    apps.append(app)
    engine = sqlalchemy.create_engine("postgresql+psycopg://127.0.0.1:5432/test")
    extension.attach_engine(engine, app=app)  # the one call

    def user() -> str:
        with engine.connect() as connection:
            return str(connection.execute(sqlalchemy.text(PROBE_QUERY)).one()[0])

    lease = lease_of(app)
    first = lease.username
    assert user() == first
    switch(lease)
    assert user() == lease.username != first
    poll(lambda: first not in vault_users(pg_admin), timeout=10)  # revoked after VAULT_DATABASE_GRACE
    engine.dispose()


def test_after_a_switch_checked_out_connections_finish_and_idle_ones_are_closed(
    config: dict[str, Any], apps: list[Flask], pg_admin: Any
) -> None:
    app = build_app({**config, "VAULT_DATABASE_GRACE": 30})
    apps.append(app)
    lease = lease_of(app)
    first = lease.username
    assert first is not None
    with app.app_context():
        engine = db.engine
        held = engine.connect()
        idle = [engine.connect() for _ in range(2)]
        for connection in [held, *idle]:
            assert connection.execute(sqlalchemy.text(PROBE_QUERY)).one()[0] == first
        for connection in idle:
            connection.close()  # back to the pool: idle, logged in as the first user
        assert sessions_of(pg_admin, first) == 3
        switch(lease)
        second = lease.username
        # The idle ones are replaced in the background; the checked-out one is left to finish.
        poll(lambda: sessions_of(pg_admin, first) == 1, timeout=10)
        poll(lambda: sessions_of(pg_admin, second) >= 2, timeout=10)
        assert held.execute(sqlalchemy.text(PROBE_QUERY)).one()[0] == first
        with engine.connect() as fresh:
            assert fresh.execute(sqlalchemy.text(PROBE_QUERY)).one()[0] == second
        held.close()  # checked in: closed, not used again
        poll(lambda: sessions_of(pg_admin, first) == 0, timeout=10)
        assert first in vault_users(pg_admin)  # still within the grace period
    assert lease.status()["retiring"] == 1


def test_a_lease_revoked_elsewhere_costs_no_failed_query(
    config: dict[str, Any], role: str, vault_root: hvac.Client, apps: list[Flask], pg_admin: Any
) -> None:
    app = build_app({**config, "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True}})
    apps.append(app)
    lease = lease_of(app)
    first = lease.username
    assert query_user(app) == first
    pids = [row[0] for row in pg_admin.execute("SELECT pid FROM pg_stat_activity WHERE usename = %s", (first,))]
    assert pids
    vault_root.sys.revoke_prefix(f"database/creds/{role}")  # an operator revokes it: the user is dropped
    poll(lambda: first not in vault_users(pg_admin), timeout=10)
    for pid in pids:  # its sessions end (a database restart): the pool must log in again
        pg_admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert query_user(app) == lease.username != first  # refused, new credentials read, logged in
    assert lease.generation == 2


def test_a_new_vault_token_switches_the_lease_obtained_with_the_old_one(
    config: dict[str, Any], vault_root: hvac.Client, apps: list[Flask]
) -> None:
    app = build_app(config)
    apps.append(app)
    lease = lease_of(app)
    assert query_user(app) == lease.username
    child = vault_root.auth.token.create(policies=["root"], ttl="10m")["auth"]["client_token"]
    get_state(app).client.keeper.use_token(child)  # Vault revokes a lease with the token it was obtained with
    poll(lambda: lease.generation == 2, timeout=10)
    assert query_user(app) == lease.username


def test_a_static_role_picks_up_the_password_vault_rotates(
    base_config: dict[str, Any],
    env: str,
    vault_root: hvac.Client,
    engine_password: str,
    apps: list[Flask],
    pg_admin: Any,
) -> None:
    with throwaway_role(pg_admin, "fv_static") as (user, _password), password_required(pg_admin, user):
        pg_admin.execute(f"GRANT SELECT ON fv_dynamic_probe TO {user}")
        static = make_static_role(vault_root, engine_password, user, rotation_period="5s")
        try:
            config = {
                **base_config,
                "VAULT_ENVIRONMENT": env,
                "VAULT_HEALTH_URL": None,
                "VAULT_DATABASE_ROLE": static,
                "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
            }
            app = build_app(config)
            apps.append(app)
            lease = lease_of(app)
            assert lease.static and lease.path == f"database/static-creds/{static}"
            assert query_user(app) == user
            poll(lambda: lease.generation >= 2, timeout=15)  # Vault rotated the password; it was read again
            terminate(pg_admin, user)
            assert query_user(app) == user  # a new connection logs in with the new password
            status = lease.status()
            assert status["expires_in"] is None and status["next_rotation_in"] is not None
            assert status["switches"] >= 1 and status["revocations"] == 0
        finally:
            vault_root.delete(f"database/static-roles/{static}")
            pg_admin.execute(f"REVOKE SELECT ON fv_dynamic_probe FROM {user}")


def test_health_and_status_show_the_lease_and_stats_count_it(
    config: dict[str, Any], role: str, apps: list[Flask]
) -> None:
    app = build_app({**config, "VAULT_HEALTH_URL": "/health/vault", "VAULT_HEALTH_DETAILS": True})
    apps.append(app)
    lease = lease_of(app)
    switch(lease)
    lease_id, password = lease._current.issued.lease_id, lease._current.issued.password  # type: ignore[union-attr]
    result = app.test_cli_runner().invoke(args=["vault", "status"])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("lease")]
    for part in (f"role={role}", f"user={lease.username}", "generation=2", "ttl_left=", "last_switch=20"):
        assert part in line
    document = json.loads(app.test_client().get("/health/vault").data)
    [item] = document["checks"]["vault:lease"]
    assert item["status"] == "pass" and item["role"] == role and item["generation"] == 2
    assert item["componentId"] == "SQLALCHEMY_DATABASE_URI" and item["observedUnit"] == "s"
    assert item["lastSwitch"] and item["switches"] == 1
    with app.app_context():
        stats = vault.stats()
    assert stats["lease_switches"] == 1 and stats["lease_failures"] == 0
    text = result.output + json.dumps(document) + json.dumps(stats)
    assert lease_id not in text and password not in text


def test_prometheus_counts_renewals_switches_and_failures(config: dict[str, Any], apps: list[Flask]) -> None:
    prometheus = pytest.importorskip("prometheus_client")
    from flask_vault.observe.metrics import track

    app = build_app(config)
    apps.append(app)
    registry = prometheus.CollectorRegistry()
    track("dynamic_metrics", get_state(app), registry=registry)
    switch(lease_of(app))
    text = prometheus.generate_latest(registry).decode()
    assert 'flask_vault_lease_switches_total{app="dynamic_metrics"} 1.0' in text
    assert 'flask_vault_lease_failures_total{app="dynamic_metrics"} 0.0' in text
    assert "flask_vault_lease_renewals_total" in text
    assert 'flask_vault_lease_generation{app="dynamic_metrics",key="SQLALCHEMY_DATABASE_URI"} 2.0' in text


def test_health_warns_while_vault_cannot_renew_the_lease_and_fails_once_it_expired(
    config: dict[str, Any], openbao_server: Any, apps: list[Flask], caplog: pytest.LogCaptureFixture
) -> None:
    proxy = TcpProxy(openbao_server.port)
    try:
        app = build_app({**config, "VAULT_URL": proxy.url, "VAULT_MAX_RETRIES": 0, "VAULT_HEALTH_CACHE_SECONDS": 0})
        apps.append(app)
        lease = lease_of(app)
        # Drive the lease's spine by hand on a clock the test moves.
        lease.renewal.stop()
        lease.renewal.background = False
        lease.renewal.resume()
        clock = FakeClock(time.monotonic())
        lease.clock = lease.renewal.clock = clock
        monitor = get_monitor(get_state(app))

        def lease_status() -> str:
            return monitor.report(fresh=True).check_status("vault:lease")

        assert lease_status() == "pass"
        lease_id, password = lease._current.issued.lease_id, lease._current.issued.password  # type: ignore[union-attr]
        proxy.set_mode("down")
        caplog.set_level(logging.INFO, logger="flask_vault")
        clock.advance(41)  # past the renewal point of its 60 s: 19 s left
        lease.renewal.step()
        assert lease.generation == 1 and lease.stats.renewal_failures == 1
        assert lease_status() == "pass"  # above the threshold (a quarter of the TTL)
        clock.advance(6)  # 13 s left
        assert lease_status() == "warn"
        report = monitor.report(fresh=True)
        assert "expires in 13s" in str(report.checks["vault:lease"][0]["output"])
        assert query_user(app) == lease.username  # new connections keep using it
        clock.advance(14)  # expired
        assert lease_status() == "fail"
        assert report.http_status == 200 and monitor.report(fresh=True).http_status == 503
        proxy.set_mode("forward")
        clock.advance(5)  # the next try: Vault answers (the lease has not really expired: it is renewed)
        lease.renewal.step()
        assert lease.stats.renewals == 1 and lease_status() == "pass"
        [warning] = [r.getMessage() for r in caplog.records if "Could not renew the database lease" in r.getMessage()]
        assert f"database/creds/{config['VAULT_DATABASE_ROLE']}" in warning and "bring Vault back" in warning
        assert lease_id not in caplog.text and password not in caplog.text
    finally:
        proxy.set_mode("forward")
        for app in apps:
            get_state(app).databases.close(revoke=True)  # type: ignore[union-attr]  # while Vault is reachable
        proxy.close()


def test_an_unknown_role_stops_start_up_naming_it(config: dict[str, Any]) -> None:
    app = Flask("unknown_role")
    app.config.update({**config, "VAULT_DATABASE_ROLE": "no-such-role"})
    with pytest.raises(VaultError, match="VAULT_DATABASE_ROLE 'no-such-role'") as caught:
        FlaskVault(app)
    assert "database/creds/no-such-role" in str(caught.value) and "database/static-creds/no-such-role" in str(
        caught.value
    )


def test_a_role_without_an_address_stops_start_up_saying_what_is_missing(
    base_config: dict[str, Any], unique_env: str, role: str
) -> None:
    app = Flask("no_address")
    app.config.update({**base_config, "VAULT_ENVIRONMENT": unique_env, "VAULT_DATABASE_ROLE": role})
    app.config["VAULT_SECRETS"] = {"SQLALCHEMY_DATABASE_URI": "database"}  # no such secret, and no URL given
    with pytest.raises(VaultError, match="VAULT_DATABASE_ROLE needs the database's address"):
        FlaskVault(app)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("VAULT_DATABASE_ROLE", "a/../b", "VAULT_DATABASE_ROLE must be"),
        ("VAULT_DATABASE_MOUNT", "", "VAULT_DATABASE_MOUNT must be a non-empty string"),
        ("VAULT_DATABASE_BIND_ROLES", {"reports": 3}, "VAULT_DATABASE_BIND_ROLES['reports'] must be a role name"),
        ("VAULT_DATABASE_GRACE", "-1", "VAULT_DATABASE_GRACE must be a number of seconds >= 0"),
        ("VAULT_DATABASE_WARN_TTL", "soon", "VAULT_DATABASE_WARN_TTL must be a number of seconds"),
    ],
)
def test_bad_database_settings_are_refused_at_start_up(
    base_config: dict[str, Any], key: str, value: Any, expected: str
) -> None:
    app = Flask("bad_database_setting")
    app.config.update({**base_config, key: value})
    with pytest.raises(VaultConfigError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        FlaskVault(app)


def test_the_lease_is_revoked_when_the_process_exits(
    base_config: dict[str, Any], env: str, role: str, pg_admin: Any, tmp_path: Path
) -> None:
    child_env = child_environment(base_config, env, role, tmp_path)
    code = "import dynamic_app; print(dynamic_app.create_app().test_client().get('/db').get_json()['user'])"
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO / "tests", env=child_env, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    user = run.stdout.strip()
    assert user.startswith("v-")
    assert user not in vault_users(pg_admin)  # revoked at exit, before the process ended


def test_flask_vault_status_in_a_fresh_process_shows_the_lease_and_revokes_it_at_exit(
    base_config: dict[str, Any], env: str, role: str, pg_admin: Any, tmp_path: Path
) -> None:
    child_env = child_environment(base_config, env, role, tmp_path)
    command = [sys.executable, "-m", "flask", "--app", "tests/dynamic_app.py:create_app", "vault", "status"]
    before = vault_users(pg_admin)
    run = subprocess.run(command, cwd=REPO, env=child_env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    [line] = [line for line in run.stdout.splitlines() if line.startswith("lease")]
    assert f"role={role}" in line and "user=v-" in line and "generation=1" in line and "ttl_left=" in line
    assert f"login from database/creds/{role}" in run.stdout
    user = line.split("user=")[1].split()[0]
    assert user not in before and user not in vault_users(pg_admin)  # its own user, revoked at exit
    policy = subprocess.run(
        [*command[:-1], "policy", "database"], cwd=REPO, env=child_env, capture_output=True, text=True, timeout=60
    )
    assert policy.returncode == 0 and f'path "database/creds/{role}"' in policy.stdout


FORK_AFTER_START_UP = """
import json, os, sys
import dynamic_app
from flask_vault.state import get_state

app = dynamic_app.create_app()
lease = get_state(app).databases.leases[0]
first = lease.username
client = app.test_client()
if os.environ["USE_BEFORE_FORK"] == "1":
    assert client.get("/db").get_json()["user"] == first
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print(json.dumps({"first": first, "handed_over": lease.renewal._release_pending}), flush=True)
sys.stdin.readline()  # the test looks at PostgreSQL meanwhile
from flask_vault.health.monitor import get_monitor
lease_check = get_monitor(get_state(app)).report(fresh=True).checks["vault:lease"][0]
print(json.dumps({"released": lease.status()["released"], "health": lease_check["status"]}), flush=True)
print(json.dumps({"user": client.get("/db").get_json()["user"], "released": lease.status()["released"]}), flush=True)
"""


@pytest.mark.parametrize("used", [True, False], ids=["used", "unused"])
def test_after_a_fork_a_process_keeps_the_lease_it_used_and_revokes_one_it_did_not(
    base_config: dict[str, Any], env: str, role: str, pg_admin: Any, tmp_path: Path, used: bool
) -> None:
    child_env = child_environment(base_config, env, role, tmp_path, USE_BEFORE_FORK="1" if used else "0")
    with subprocess.Popen(
        [sys.executable, "-c", FORK_AFTER_START_UP], cwd=REPO / "tests", env=child_env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None and process.stdin is not None
            at_fork = json.loads(process.stdout.readline() or "{}")
            first = at_fork.get("first")
            assert first, "the script did not get to the fork"
            if used:  # nothing was handed to the background thread inside fork(): nothing will be released
                assert at_fork["handed_over"] is False and first in vault_users(pg_admin)
            else:
                poll(lambda: first not in vault_users(pg_admin), timeout=10)  # revoked from the background thread
            process.stdin.write("go\n")
            process.stdin.flush()
            before_use = json.loads(process.stdout.readline() or "{}")
            after = json.loads(process.stdout.readline() or "{}")
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()
    assert before_use == {"released": not used, "health": "pass"}  # released: no failing lease check
    if used:
        assert after == {"user": first, "released": False}  # kept: the same user serves on
    else:
        assert after["user"].startswith("v-") and after["user"] != first  # the next use got a new one
        assert after["released"] is False
    assert not {first, after["user"]} & vault_users(pg_admin)  # and whatever it had is revoked at exit
