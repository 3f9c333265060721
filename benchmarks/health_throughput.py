"""Figure 5: ``/health/vault`` throughput against a bare ``return "ok"`` route of the same app.

The app (``benchmarks.apps:health_app()``) runs in gunicorn (one ``gthread`` worker,
8 threads; werkzeug's threaded server when gunicorn is missing) on a free loopback port,
in its own process. A threaded client in this process keeps one HTTP/1.1 keep-alive
connection per thread and calls one route as fast as it answers, for 10 s per route per
round (``--quick``: 2 s), the routes alternating. Vault's side: the app process counts
the ``sys/health`` and ``lookup-self`` requests it sent (``/_bench/stats``), to compare
with one probe per ``VAULT_HEALTH_CACHE_SECONDS`` window (default 5 s).
"""

# ruff: noqa: RUF001, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import subprocess
import tempfile
import threading
import time
from collections import Counter
from typing import Any

from flask_vault.devserver import free_port_pair

from .common import ENVIRONMENT, PREFIX, ROOT, BenchEnv, Figure, Profile, Stat, num, python, ratio

TARGET = 0.8
HEALTH_WINDOW = 5.0  # VAULT_HEALTH_CACHE_SECONDS' default, left as is
SERVER_THREADS = 8
MAX_REQUESTS_PER_THREAD = 10_000_000


class AppServer:
    """The health app in a child process on 127.0.0.1."""

    def __init__(self, env: BenchEnv) -> None:
        self.port = free_port_pair()
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.log: Any = None
        self.kind = "gunicorn" if importlib.util.find_spec("gunicorn") else "werkzeug"

    def start(self, timeout: float = 30.0) -> AppServer:
        server = self.env.plain
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update(
            VAULT_URL=server.url,
            VAULT_TOKEN=server.root_token,
            VAULT_PATH_PREFIX=PREFIX,
            VAULT_ENVIRONMENT=ENVIRONMENT,
            PYTHONPATH=str(ROOT),
        )
        if self.kind == "gunicorn":
            command = [
                python(), "-m", "gunicorn", "-k", "gthread", "-w", "1", "--threads", str(SERVER_THREADS),
                "-b", f"127.0.0.1:{self.port}", "--log-level", "warning", "--keep-alive", "30",
                "benchmarks.apps:health_app()",
            ]  # fmt: skip
        else:
            command = [
                python(), "-c",
                "import sys; from werkzeug.serving import WSGIRequestHandler, run_simple;"
                " from benchmarks.apps import health_app;"
                " WSGIRequestHandler.protocol_version = 'HTTP/1.1';"
                f" run_simple('127.0.0.1', {self.port}, health_app(), threaded=True)",
            ]  # fmt: skip
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                output = self.log.read().decode(errors="replace")[-2000:]
                self.log.close()
                raise RuntimeError(f"The app server exited: {output}")
            try:
                status, _ = get_once(self.port, "/ok")
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"The app server did not answer within {timeout:g}s.")

    def stats(self) -> dict[str, Any]:
        status, body = get_once(self.port, "/_bench/stats")
        if status != 200:
            raise RuntimeError(f"/_bench/stats answered {status}")
        return dict(json.loads(body))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self.log is not None:
            self.log.close()


def get_once(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def hammer(port: int, path: str, seconds: float, clients: int) -> tuple[float, Counter[Any]]:
    """``clients`` threads, one keep-alive connection each, for ``seconds``: (requests/s, statuses)."""
    statuses: list[Counter[Any]] = [Counter() for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        counts = statuses[index]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        start.wait()
        deadline = stop_at[0]
        sent = 0
        try:
            while sent < MAX_REQUESTS_PER_THREAD and time.monotonic() < deadline:
                sent += 1
                try:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    response.read()
                    counts[response.status] += 1
                except (OSError, http.client.HTTPException) as exc:
                    counts[type(exc).__name__] += 1
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    began = time.monotonic()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join(timeout=seconds + 30)
    elapsed = time.monotonic() - began
    total: Counter[Any] = Counter()
    for counts in statuses:
        total.update(counts)
    return total.get(200, 0) / elapsed, total


def run(env: BenchEnv, profile: Profile) -> Figure:
    figure = Figure(5, "`/health/vault` throughput vs a bare route")
    server = AppServer(env).start()
    try:
        for path in ("/ok", "/health/vault"):  # warm-up
            hammer(server.port, path, min(1.0, profile.health_seconds), profile.health_clients)
        before = server.stats()
        rates: dict[str, list[float]] = {"/ok": [], "/health/vault": []}
        statuses: dict[str, Counter[Any]] = {"/ok": Counter(), "/health/vault": Counter()}
        health_seconds = 0.0
        for _ in range(profile.health_rounds):
            for path in ("/ok", "/health/vault"):
                began = time.monotonic()
                rate, counts = hammer(server.port, path, profile.health_seconds, profile.health_clients)
                if path == "/health/vault":
                    health_seconds += time.monotonic() - began
                rates[path].append(rate)
                statuses[path].update(counts)
        after = server.stats()
    finally:
        server.stop()
    ok, health = Stat.of(rates["/ok"]), Stat.of(rates["/health/vault"])
    relative = health.median / ok.median
    probes = after["probes"] - before["probes"]
    sys_health = after["sys_health"] - before["sys_health"]
    lookups = after["lookup_self"] - before["lookup_self"]
    allowed = profile.health_rounds * (int(profile.health_seconds // HEALTH_WINDOW) + 1)
    failures = {path: sum(v for k, v in counts.items() if k != 200) for path, counts in statuses.items()}
    figure.measured = f"{num(health.median)} req/s"
    figure.compared = f"bare route {num(ok.median)} req/s"
    figure.ratio = ratio(relative)
    figure.target = f"≥ {TARGET:g}×; ≤ 1 Vault probe per {HEALTH_WINDOW:g} s window"
    figure.met = relative >= TARGET and sys_health <= allowed and not any(failures.values())
    figure.detail_header = ("measure", "value")
    figure.details = [
        ("`/health/vault` req/s (min–max over rounds)", health.fmt()),
        ("`/ok` req/s", ok.fmt()),
        ("health ÷ bare", ratio(relative)),
        ("non-200 answers or client errors", ", ".join(f"{p}: {n}" for p, n in failures.items())),
        ("health requests answered", f"{statuses['/health/vault'].get(200, 0):,} in {health_seconds:.1f} s"),
        ("probes / sys/health / lookup-self sent to Vault", f"{probes} / {sys_health} / {lookups}"),
        ("allowed (one per window per round, +1)", str(allowed)),
    ]
    figure.notes.append(
        f"{server.kind} ({'1 gthread worker, ' if server.kind == 'gunicorn' else ''}{SERVER_THREADS} threads) in a"
        f" child process; {profile.health_clients} client threads with keep-alive connections in this process"
        f" (`wrk` is {'not ' if not _have_wrk() else ''}installed here); {profile.health_rounds} rounds of"
        f" {profile.health_seconds:g} s per route, alternating. Server and client share the machine's"
        f" {os.cpu_count()} cores, so the client's own cost is part of both rates."
    )
    return figure


def _have_wrk() -> bool:
    from shutil import which

    return which("wrk") is not None
