"""Figure 10: a fleet started at once: Vault requests, peak rate and time to ready, with and without jitter.

``processes`` gunicorn instances of the example app x ``workers`` workers (``full``: 8 x 3;
``--quick``: 4 x 3) start together against the audited dev server, which has rate-limit
quotas on the AppRole login (workers / 4 per second) and on the KV mount (workers / 2
per second): a deploy meeting Vault's quotas. Once as shipped, with flask-vault's random
spreads, once without them (``flask_vault.jitter.ENABLED = False`` in every worker: each
retry waits exactly its ``Retry-After`` or backoff), rounds alternating.

Counted: the requests the workers sent (each worker records its own, 429s included),
the requests Vault answered (its audit device; a quota refuses a request before it is
audited), the peak rate of requests sent (the most in any second, and in any 100 ms,
per second), and the time from the start to the last worker ready.
"""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import statistics
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .common import BenchEnv, Figure, Profile, num, ratio, root_client
from .fleet import Fleet, audited, peak_rate, prepare, rate_limit

#: Distinct secret paths the example app reads (flask, database).
PATHS = 2
READY_BOUND = 300.0


def _one_start(
    env: BenchEnv, size: tuple[int, int], jitter: bool, workdir: Path, login: tuple[str, str, str]
) -> dict[str, Any]:
    processes, workers = size
    environment, role_id, secret_id = login
    fleet = Fleet(
        [env.audited.url], environment, role_id, secret_id, workdir, processes=processes, workers=workers,
        jitter=jitter, trace=True,
    )  # fmt: skip
    with fleet:
        ready = fleet.wait_ready(timeout=READY_BOUND)
        failures = fleet.get("/", 2)
    reads_under = f"/v1/secret/data/store-erp/{environment}/"
    sent = [a for a in fleet.attempts() if a[2] == "/v1/auth/approle/login" or a[2].startswith(reads_under)]
    seen = [
        s
        for s in audited([env.audit.path], since=fleet.started_at)
        if s.path == "auth/approle/login" or (s.path.startswith(reads_under[4:]) and s.operation == "read")
    ]
    times = [at for at, _, _ in sent]
    return {
        "workers": processes * workers,
        "ready": max(item["ready"] for item in ready) - fleet.started_at,
        "failures": len(failures),
        "sent": len(sent),
        "limited": sum(1 for _, status, _ in sent if status == 429),
        "logins": sum(1 for s in seen if s.path == "auth/approle/login"),
        "reads": sum(1 for s in seen if s.path != "auth/approle/login"),
        "peak": peak_rate(times, 1.0),
        "burst": peak_rate(times, 0.1),
    }


def run(env: BenchEnv, profile: Profile) -> Figure:
    processes, workers = profile.fleet
    total = processes * workers
    figure = Figure(10, f"fleet start, {processes} × {workers} gunicorn workers at once, rate-limited Vault")
    login_rate, kv_rate = max(2, total // 4), max(4, total // 2)
    results: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    logins: list[tuple[str, str, str]] = []
    with root_client(env.audited) as root:  # every start's secrets and AppRole first: the quotas bind the root too
        for _ in range(2 * profile.fleet_rounds):
            environment = f"fleet-{uuid.uuid4().hex[:8]}"
            logins.append((environment, *prepare(root, environment, role=environment)))
        rate_limit(root, "bench-fleet-login", "auth/approle/login", login_rate)
        rate_limit(root, "bench-fleet-kv", "secret/", kv_rate)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
            for number in range(profile.fleet_rounds):
                for jitter in (True, False):
                    workdir = Path(tmp) / f"{number}-{'jitter' if jitter else 'fixed'}"
                    workdir.mkdir()
                    results[jitter].append(_one_start(env, profile.fleet, jitter, workdir, logins.pop()))
    finally:
        with root_client(env.audited) as root:
            for name in ("bench-fleet-login", "bench-fleet-kv"):
                root.adapter.delete(f"/v1/sys/quotas/rate-limit/{name}")

    def median(jitter: bool, key: str) -> float:
        return float(statistics.median(r[key] for r in results[jitter]))

    def count(jitter: bool, key: str) -> str:
        value = median(jitter, key)
        return str(int(value)) if value == int(value) else num(value)

    def summary(jitter: bool) -> str:
        return (
            f"ready in {num(median(jitter, 'ready'))} s; Vault answered {count(jitter, 'logins')} logins +"
            f" {count(jitter, 'reads')} reads; {count(jitter, 'sent')} sent, peak"
            f" {num(median(jitter, 'peak'))}/s ({count(jitter, 'limited')} got 429)"
        )

    figure.measured = f"with jitter: {summary(True)}"
    figure.compared = f"without jitter: {summary(False)}"
    figure.ratio = (
        f"peak {ratio(median(True, 'peak') / max(1.0, median(False, 'peak')))}, 429s"
        f" {ratio(median(True, 'limited') / max(1.0, median(False, 'limited')))},"
        f" ready {ratio(median(True, 'ready') / median(False, 'ready'))}"
    )
    figure.target = f"1 login per worker, ≤ {PATHS} reads per worker, 0 failed requests"
    figure.met = all(
        r["logins"] == r["workers"] and r["reads"] <= PATHS * r["workers"] and r["failures"] == 0 for r in results[True]
    )
    figure.detail_header = (
        "spreads", "round", "workers", "ready after, s", "requests sent", "got 429", "Vault answered (logins + reads)",
        "peak sent, /s (1 s)", "peak sent, /s (100 ms)", "failed requests",
    )  # fmt: skip
    for jitter in (True, False):
        for number, r in enumerate(results[jitter], 1):
            figure.details.append(
                (
                    "on" if jitter else "off", str(number), str(r["workers"]), num(r["ready"]), str(r["sent"]),
                    str(r["limited"]), f"{r['logins']} + {r['reads']}", num(r["peak"]), num(r["burst"]),
                    str(r["failures"]),
                )
            )  # fmt: skip
    figure.notes.append(
        f"Quotas during the figure: AppRole login {login_rate}/s, KV mount {kv_rate}/s (sys/quotas/rate-limit, with"
        " the Retry-After header on). Each worker logs in and reads the flask and database secrets once at start;"
        " what it sent again after a 429 waited at least the Retry-After (0.5 s doubling when Vault says 0), plus a"
        " random half of it with the spreads on."
    )
    figure.notes.append(
        "Requests sent are what the workers' HTTP layer sent (a gunicorn post_fork hook records them); Vault answered"
        " is its audit device, which never sees a request a quota refused. Time to ready is from starting the"
        " first gunicorn to the last worker's post_worker_init."
    )
    return figure
