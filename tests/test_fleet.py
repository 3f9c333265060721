"""A fleet against Vault, with real gunicorn processes of the example app (AppRole):

* many instances started at once against a 3-node Raft cluster with rate-limit quotas on
  the KV path and on login: every worker ready, no failed request, and Vault's audit
  devices show one login per worker and at most one read per worker and path;
* graceful worker restarts (``--max-requests``) leave exactly one live token per running
  worker; SIGKILLed workers leave theirs until its TTL, and no longer;
* with ``PROMETHEUS_MULTIPROC_DIR`` a scrape adds up every worker's Vault requests, and
  the sum is what Vault's audit device saw.

The fleet's size is ``FLASK_VAULT_FLEET`` (processes x workers, default 8x3, about 45 s on
two cores; ``FLASK_VAULT_FLEET=4x3`` on a busier machine). Worker output is checked for
credentials too.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from auth_support import token_accessors_of_role
from core_support import assert_no_leak, poll
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.fleet import Fleet, audited, peak_rate, prepare, rate_limit
from example_app.seed import APPROLE_NAME
from flask_vault.devserver import OpenBaoServer, RaftCluster, audit_device_config

pytestmark = pytest.mark.slow

PROCESSES, WORKERS = (int(n) for n in os.environ.get("FLASK_VAULT_FLEET", "8x3").lower().split("x"))
#: The longest a fleet may take to have every worker ready (reported, bounded).
READY_BOUND = float(os.environ.get("FLASK_VAULT_FLEET_READY_BOUND", "150"))
#: Distinct secret paths the example app reads (flask, database).
PATHS = 2
RESTARTS = int(os.environ.get("FLASK_VAULT_FLEET_RESTARTS", "50"))
KILLS = 10


def unique_env(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def audited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OpenBaoServer, Path]]:
    audit_log = tmp_path_factory.mktemp("audit") / "audit.log"
    with OpenBaoServer(config=audit_device_config(audit_log)) as server:
        server.root_client().sys.enable_auth_method("approle")
        yield server, audit_log


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(v for (n, sl), v in samples.items() if n == name and set(labels.items()) <= set(sl))


def test_a_scrape_under_gunicorn_adds_up_the_requests_of_every_worker_as_vault_saw_them(
    audited_server: tuple[OpenBaoServer, Path], tmp_path: Path
) -> None:
    server, audit_log = audited_server
    environment = unique_env("metrics")
    role_id, secret_id = prepare(server.root_client(), environment)
    fleet = Fleet(
        [server.url], environment, role_id, secret_id, tmp_path, processes=1, workers=3,
        extra_env={"VAULT_CACHE_TTL": "1"},
    )  # fmt: skip
    with fleet:
        fleet.wait_ready(timeout=READY_BOUND)
        deadline = time.monotonic() + 3  # with a 1 s TTL, every worker reads again while it serves
        while time.monotonic() < deadline:
            assert fleet.get("/", 1) == []
            time.sleep(0.03)

        def quiet() -> bool:  # no request in flight anywhere: the audit log stopped growing
            size = audit_log.stat().st_size
            time.sleep(1.5)
            return audit_log.stat().st_size == size

        poll(quiet, timeout=30)
        samples = scrape(fleet.instances[0].url)
        seen = audited([audit_log], since=fleet.started_at)
    reads = [s for s in seen if s.path.startswith(f"secret/data/store-erp/{environment}/") and s.operation == "read"]
    logins = [s for s in seen if s.path == "auth/approle/login"]
    scraped = total(samples, "flask_vault_requests_total")
    print(
        f"\nmultiprocess scrape: {scraped:.0f} requests (logins {total(samples, 'flask_vault_logins_total'):.0f}),"
        f" Vault's audit device: {len(reads)} reads + {len(logins)} logins"
    )
    assert len(logins) == 3, "each worker logs in once"
    assert total(samples, "flask_vault_requests_total", operation="login", outcome="ok") == 3  # all workers, not one
    assert total(samples, "flask_vault_logins_total") == 3
    assert len(reads) > 3 * PATHS, "the workers did not read again: the test would prove little"
    assert total(samples, "flask_vault_requests_total", operation="read") == len(reads)
    assert scraped == len(reads) + len(logins)
    assert total(samples, "flask_vault_cache_reads_total") <= len(reads)
    assert_no_leak(fleet.output(), [role_id, secret_id])


def test_graceful_restarts_leave_one_token_per_worker_and_killed_workers_tokens_end_at_their_ttl(
    audited_server: tuple[OpenBaoServer, Path], tmp_path: Path, record_property: Any
) -> None:
    server, _ = audited_server
    root = server.root_client()
    environment = unique_env("restarts")
    ttl = 8
    role_id, secret_id = prepare(root, environment, token_ttl=f"{ttl}s", token_max_ttl="30m")
    workers = 2
    fleet = Fleet([server.url], environment, role_id, secret_id, tmp_path, processes=1, workers=workers, max_requests=3)
    with fleet:
        fleet.wait_ready(timeout=READY_BOUND)
        deadline = time.monotonic() + 300
        while len(fleet.ready()) < workers + RESTARTS:  # every request after the third restarts its worker
            assert time.monotonic() < deadline, f"only {len(fleet.ready()) - workers} restarts in 300 s"
            fleet.get("/", 1)
        restarts = len(fleet.ready()) - workers
        fleet.wait_live(workers)
        after_restarts = poll(
            lambda: (n := len(token_accessors_of_role(root, APPROLE_NAME))) == workers and n, timeout=20
        )
        assert after_restarts == workers, f"{restarts} graceful restarts left tokens behind"

        for _ in range(KILLS):
            victim = fleet.live_workers()[0]
            booted = len(fleet.ready())
            os.kill(victim, signal.SIGKILL)
            fleet.wait_ready(booted + 1, timeout=READY_BOUND)
            fleet.wait_live(workers)
        after_kills = len(token_accessors_of_role(root, APPROLE_NAME))
        killed_at = time.monotonic()
        gone = poll(lambda: len(token_accessors_of_role(root, APPROLE_NAME)) == workers, timeout=ttl + 20)
        gone_after = time.monotonic() - killed_at
    print(
        f"\nrestart hygiene: {restarts} graceful restarts -> {after_restarts} live tokens for {workers} workers;"
        f" {KILLS} SIGKILLs -> {after_kills} live tokens, back to {workers} {gone_after:.1f} s later (TTL {ttl} s)"
    )
    record_property("tokens_after_kills", after_kills)
    assert workers < after_kills <= workers + KILLS  # killed workers could not revoke, and nothing else leaked
    assert gone
    assert_no_leak(fleet.output(), [role_id, secret_id])


@pytest.fixture(scope="module")
def cluster() -> Iterator[RaftCluster]:
    with RaftCluster(3, audit=True) as cluster:
        yield cluster


@pytest.mark.cluster
def test_a_fleet_started_at_once_against_a_rate_limited_cluster_logs_in_once_per_worker_and_reads_each_path_once(
    cluster: RaftCluster, tmp_path: Path, record_property: Any
) -> None:
    root: hvac.Client = cluster.active_node().root_client()
    environment = unique_env("fleet")
    role_id, secret_id = prepare(root, environment)
    workers = PROCESSES * WORKERS
    login_rate, kv_rate = max(2, workers // 4), max(4, workers // 2)
    rate_limit(root, "fleet-login", "auth/approle/login", login_rate)
    rate_limit(root, "fleet-kv", "secret/", kv_rate)
    fleet = Fleet(cluster.urls, environment, role_id, secret_id, tmp_path, processes=PROCESSES, workers=WORKERS)
    with fleet:
        ready = fleet.wait_ready(timeout=READY_BOUND)
        time_to_ready = max(item["ready"] for item in ready) - fleet.started_at
        failures = fleet.get("/", 5) + fleet.get("/visits", 5)
        seen = audited((node.audit_path for node in cluster.nodes), since=fleet.started_at)
        rate_limited = fleet.counter("flask_vault_retries_total", reason="rate-limited")
        other_retries = fleet.counter("flask_vault_retries_total") - rate_limited
    logins = [s for s in seen if s.path == "auth/approle/login"]
    reads = [s for s in seen if s.path.startswith(f"secret/data/store-erp/{environment}/") and s.operation == "read"]
    vault_requests = [s for s in seen if s.path in {x.path for x in logins + reads}]
    peak = peak_rate([s.at for s in vault_requests])
    print(
        f"\nfleet {PROCESSES}x{WORKERS} on a 3-node cluster (quotas: login {login_rate}/s, KV {kv_rate}/s):"
        f" all {len(ready)} workers ready {time_to_ready:.1f} s after the start, {len(failures)} failed requests;"
        f" Vault saw {len(logins)} logins and {len(reads)} reads, peak {peak:.0f} requests/s;"
        f" {rate_limited:.0f} requests sent again after a 429, {other_retries:.0f} other retries"
    )
    for name, value in {
        "workers": workers, "time_to_ready_s": round(time_to_ready, 2), "logins": len(logins), "reads": len(reads),
        "peak_requests_per_s": peak, "retries_after_429": rate_limited,
    }.items():  # fmt: skip
        record_property(name, value)
    assert len(ready) == workers
    assert failures == []
    assert len(logins) == workers
    assert len(reads) <= workers * PATHS + other_retries
    assert_no_leak(fleet.output(), [role_id, secret_id])
