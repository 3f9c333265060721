"""Figure 8: query throughput around a switch of dynamic database credentials.

The extension on the plain OpenBao dev server, with ``VAULT_DATABASE_ROLE`` set to a role
of the database secrets engine on the machine's PostgreSQL (set up from
``example_app/seed.py``: a management role for Vault, an owner group, creation and
revocation statements) with ``default_ttl=6s`` and ``max_ttl=12s``: the lease is renewed
every 4 s or so and switched for a new user about every 8 to 10 s, and the previous lease
is revoked ``VAULT_DATABASE_GRACE`` (1 s) after each switch (its user dropped).

A SQLAlchemy engine (QueuePool, 5 connections) attached with ``vault.attach_engine`` is
queried by 4 threads as fast as they can (``SELECT 1``, each query a checkout and a
checkin). Each query's completion time is kept; the throughput of the one-second window
centred on each switch (and on each revocation) is compared with the median of the three
whole seconds before it (which lie between the previous revocation and the switch), in the
same run. Any query that fails (a refused login, a connection dropped under it) counts.
"""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import bisect
import secrets
import statistics
import threading
import time
import uuid
from typing import Any

from flask import Flask

from flask_vault import FlaskVault
from flask_vault.state import get_state

from .common import ENVIRONMENT, PREFIX, BenchEnv, Figure, Profile, Stat, num, ratio, root_client

TARGET = 0.95
THREADS = 4
POOL_SIZE = 5
GRACE = 1.0
#: Seconds of load per profile (the full run sees about six switches).
SECONDS = {"full": 60.0, "quick": 25.0, "smoke": 3.0}
GROUP, ADMIN = "fv_bench_owner", "fv_bench_vault"


def run(env: BenchEnv, profile: Profile) -> Figure:
    figure = Figure(8, "query throughput around a switch of dynamic database credentials")
    import psycopg

    from example_app.seed import prepare_postgres, seed_database_engine

    try:
        admin = psycopg.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test", autocommit=True)
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"figure 8 needs PostgreSQL at 127.0.0.1:5432 (scripts/ensure-postgres.sh): {exc}") from None
    password = secrets.token_urlsafe(16)
    prepare_postgres(admin, admin_password=password, group=GROUP, admin_user=ADMIN)
    role = f"bench-{uuid.uuid4().hex[:6]}"
    with root_client(env.plain) as root:
        seed_database_engine(
            root,
            admin_password=password,
            role=role,
            group=GROUP,
            admin_user=ADMIN,
            connection=f"bench-{role}",
            default_ttl="6s",
            max_ttl="12s",
        )
        address = {"driver": "postgresql+psycopg", "host": "127.0.0.1", "port": 5432, "database": "test"}
        root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/dynamic-db", address)
    app = Flask("bench_dynamic")
    app.config.update(
        env.vault_config(
            VAULT_HEALTH_URL=None,
            VAULT_SECRETS={"SQLALCHEMY_DATABASE_URI": "dynamic-db"},
            VAULT_DATABASE_ROLE=role,
            VAULT_DATABASE_GRACE=GRACE,
        )
    )
    vault = FlaskVault(app)
    lease = get_state(app).databases.leases[0]  # type: ignore[union-attr]
    try:
        result = _measure(app, vault, lease, SECONDS[profile.name], force=profile.name == "smoke")
    finally:
        users = {lease.username}
        lease.close(revoke=True)
        for user in users - {None}:  # only a failed revocation leaves one
            admin.execute(f'DROP ROLE IF EXISTS "{user}"')
        admin.close()
    _report(figure, result)
    return figure


class _Load:
    def __init__(self, engine: Any) -> None:
        from sqlalchemy import text

        self.engine = engine
        self.query = text("SELECT 1")
        self.done: list[list[float]] = [[] for _ in range(THREADS)]
        self.failures: list[str] = []
        self.stop = threading.Event()

    def run(self, index: int, deadline: float) -> None:
        done = self.done[index]
        clock = time.monotonic
        while not self.stop.is_set() and clock() < deadline:
            try:
                with self.engine.connect() as connection:
                    connection.execute(self.query)
            except Exception as exc:  # counted: the figure's second number
                self.failures.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                continue
            done.append(clock())


def _measure(app: Flask, vault: FlaskVault, lease: Any, seconds: float, *, force: bool) -> dict[str, Any]:
    import sqlalchemy
    from sqlalchemy import event

    engine = sqlalchemy.create_engine(
        "postgresql+psycopg://127.0.0.1:5432/test", pool_size=POOL_SIZE, max_overflow=POOL_SIZE
    )
    vault.attach_engine(engine, app=app)
    opened: list[float] = []
    closed: list[float] = []
    event.listen(engine, "connect", lambda *_: opened.append(time.monotonic()))
    event.listen(engine, "invalidate", lambda *_: closed.append(time.monotonic()))
    switches: list[float] = []
    lease.on_switch(lambda _credentials: switches.append(time.monotonic()))
    revocations: list[float] = []
    revoke = lease.secrets.revoke

    def timed_revoke(lease_id: str) -> None:
        revoke(lease_id)
        revocations.append(time.monotonic())

    lease.secrets.revoke = timed_revoke
    load = _Load(engine)
    for _ in range(POOL_SIZE * 20):  # warm-up: the pool is full before the clock starts
        with engine.connect() as connection:
            connection.execute(load.query)
    started = time.monotonic()
    deadline = started + seconds
    threads = [threading.Thread(target=load.run, args=(n, deadline), daemon=True) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    if force:  # a run too short for the TTLs: one switch, the way a max TTL triggers it
        time.sleep(seconds / 2)
        lease.renewal.replace_soon("the benchmark asked for a switch")
    for thread in threads:
        thread.join(seconds + 30)
    load.stop.set()
    engine.dispose()
    done = sorted(t for per_thread in load.done for t in per_thread)
    return {
        "started": started,
        "seconds": seconds,
        "done": done,
        "failures": load.failures,
        "switches": [t for t in switches if started + 2 <= t <= deadline - 1],
        "all_switches": switches,
        "revocations": list(revocations),
        "opened": len([t for t in opened if t >= started]),
        "closed": len([t for t in closed if t >= started]),
        "generation": lease.generation,
        "renewals": lease.stats.renewals,
    }


def _rate(done: list[float], start: float, end: float) -> float:
    return (bisect.bisect_left(done, end) - bisect.bisect_left(done, start)) / (end - start)


def _ratios(done: list[float], moments: list[float]) -> list[tuple[float, float, float]]:
    """(window rate, baseline rate, ratio) per moment: the second centred on it vs the 3 s before."""
    rows = []
    for moment in moments:
        window = _rate(done, moment - 0.5, moment + 0.5)
        baseline = statistics.median(_rate(done, moment - 0.5 - k, moment + 0.5 - k) for k in (2, 3, 4))
        if baseline > 0:
            rows.append((window, baseline, window / baseline))
    return rows


def _controls(switches: list[float], end: float) -> list[float]:
    """Quiet moments for the noise floor: 6 s after a switch (past its revocation), 1.5 s before the next."""
    moments = []
    for index, switch in enumerate(switches):
        moment = switch + 6.0
        following = switches[index + 1] if index + 1 < len(switches) else end
        if moment + 1.5 <= following and moment + 0.5 <= end:
            moments.append(moment)
    return moments


def _report(figure: Figure, result: dict[str, Any]) -> None:
    done, failures = result["done"], result["failures"]
    seconds = result["seconds"]
    switch_rows = _ratios(done, result["switches"])
    end = result["started"] + seconds
    revoke_rows = _ratios(done, [t for t in result["revocations"] if t + 0.5 <= end])
    control_rows = _ratios(done, _controls(result["all_switches"], end))
    total_rate = len(done) / seconds
    if switch_rows:
        switch_stat = Stat.of([r for _, _, r in switch_rows])
        steady = Stat.of([b for _, b, _ in switch_rows])
        around = Stat.of([w for w, _, _ in switch_rows])
        figure.measured = (
            f"{num(around.median)} queries/s in the second around a switch ({switch_stat.n} switches);"
            f" {len(failures)} queries failed"
        )
        figure.compared = f"steady seconds just before: {num(steady.median)} queries/s"
        figure.ratio = f"{ratio(switch_stat.median)} (worst {ratio(switch_stat.low)})"
        figure.met = switch_stat.median >= TARGET and not failures
    else:
        figure.measured = f"{num(total_rate)} queries/s; no switch inside the measured window"
        figure.compared = "n/a"
        figure.ratio = "n/a"
        figure.met = None if not failures else False
    figure.target = f"≥ {TARGET}× (no visible dip); 0 connections refused or dropped"
    figure.details = [
        ("load", f"{THREADS} threads, SELECT 1 through a QueuePool of {POOL_SIZE}, {num(seconds)} s"),
        ("queries", f"{len(done):,} ({num(total_rate)}/s), failed {len(failures)}"),
        ("switches (all / measured)", f"{len(result['all_switches'])} / {len(switch_rows)}"),
        ("generations, renewals", f"{result['generation']}, {result['renewals']}"),
        ("connections opened / closed by the pool hooks during the run", f"{result['opened']} / {result['closed']}"),
    ]
    for index, (window, baseline, value) in enumerate(switch_rows, 1):
        figure.details.append(
            (f"switch {index}: queries/s around it vs before", f"{num(window)} vs {num(baseline)}: {ratio(value)}")
        )
    if control_rows:
        control = Stat.of([r for _, _, r in control_rows])
        figure.details.append(
            (
                "noise floor: a quiet second vs the 3 s before it (no switch near), median ratio",
                f"{ratio(control.median)} (range {ratio(control.low)}–{ratio(control.high)}, n={control.n})",
            )
        )
    if revoke_rows:
        revoke_stat = Stat.of([r for _, _, r in revoke_rows])
        figure.details.append(
            (
                "revocation (old user dropped), median ratio",
                f"{ratio(revoke_stat.median)} (worst {ratio(revoke_stat.low)}, n={revoke_stat.n})",
            )
        )
    figure.notes = [
        "A role with default_ttl=6s and max_ttl=12s: renewed about every 4 s, switched for a new user"
        " near its max TTL (about every 8 to 10 s); the previous lease revoked 1 s later"
        " (VAULT_DATABASE_GRACE), which drops its user.",
        "Ratio: queries completed in the one-second window centred on the switch, over the median of the"
        " three one-second windows centred 2, 3 and 4 s before it (same run, same load); the figure is the"
        " median over the switches, the worst one is given too. The same ratio at quiet moments (6 s after"
        " a switch, no switch or revocation near) is the run's noise floor: other processes share the 2"
        " cores, and one-second throughput wanders by ±20% without any switch.",
        "At a switch the idle pooled connections of the old user are replaced from a background thread;"
        " a checkout that still meets one reconnects first; connections checked out finish their query.",
    ]
    if failures:
        figure.notes.append(f"failures (first 3): {failures[:3]}")
