"""A fleet of app servers started at once against Vault, and what Vault saw of it.

:class:`Fleet` starts ``processes`` gunicorn instances of the example app
(``example_app:create_app()``), each with ``workers`` workers, in one go, all logging in
with the same AppRole, each with its own ``PROMETHEUS_MULTIPROC_DIR``. A generated
gunicorn configuration records when each worker is ready (``post_worker_init``), turns
flask-vault's random spreads off in a worker when asked (the "without jitter" side of
figure 10), and marks dead workers for ``prometheus_client`` (``child_exit``).
:func:`audited` reads what Vault's file audit devices saw, one request once even when a
standby forwarded it.

Used by figure 10 (``benchmarks/fleet_start.py``) and by ``tests/test_fleet.py``.
Everything listens on 127.0.0.1 and is bounded in time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import hvac
import requests

from flask_vault.devserver import free_port_pair

ROOT = Path(__file__).resolve().parent.parent

#: The gunicorn configuration every instance runs with (see the module docstring).
GUNICORN_CONF = Path(__file__).with_name("fleet_gunicorn.py")


@dataclass
class Instance:
    """One gunicorn master and its workers."""

    index: int
    port: int
    process: subprocess.Popen[bytes]
    multiproc_dir: Path
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Fleet:
    """``processes`` gunicorn instances x ``workers`` workers of the example app (see the module docstring)."""

    urls: Sequence[str]
    environment: str
    role_id: str
    secret_id: str
    workdir: Path
    processes: int = 4
    workers: int = 3
    jitter: bool = True
    #: gunicorn --max-requests (0: never restart a worker on its own).
    max_requests: int = 0
    #: Record every HTTP request each worker sends (see attempts()).
    trace: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    instances: list[Instance] = field(default_factory=list)
    started_at: float = 0.0

    @property
    def ready_dir(self) -> Path:
        return self.workdir / "ready"

    def environ(self, index: int) -> dict[str, str]:
        """The environment of instance ``index``: its addresses start at a different node than its neighbour's."""
        urls = list(self.urls)
        rotated = urls[index % len(urls) :] + urls[: index % len(urls)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "PROMETHEUS_"))}
        env.update(
            HOME=str(self.workdir),
            PYTHONPATH=str(ROOT),
            VAULT_ADDR=",".join(rotated),
            VAULT_ROLE_ID=self.role_id,
            VAULT_SECRET_ID=self.secret_id,
            VAULT_ENVIRONMENT=self.environment,
            VAULT_STARTUP_TIMEOUT="120",
            FLEET_READY_DIR=str(self.ready_dir),
            FLEET_INSTANCE=str(index),
            PROMETHEUS_MULTIPROC_DIR=str(self.workdir / f"metrics-{index}"),
        )
        if not self.jitter:
            env["FLEET_NO_JITTER"] = "1"
        if self.trace:
            env["FLEET_TRACE_DIR"] = str(self.workdir / "trace")
        env.update(self.extra_env)
        return env

    def start(self) -> Fleet:
        """Start every instance, one right after the other."""
        self.ready_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "trace").mkdir(exist_ok=True)
        conf = GUNICORN_CONF
        commands = []
        for index in range(self.processes):
            port = free_port_pair()
            env = self.environ(index)
            Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
            command = [
                sys.executable, "-m", "gunicorn", "-c", str(conf), "-w", str(self.workers),
                "-b", f"127.0.0.1:{port}", "--timeout", "180", "--graceful-timeout", "20",
                "--error-logfile", str(self.workdir / f"gunicorn-{index}.log"),
            ]  # fmt: skip
            if self.max_requests:
                command += ["--max-requests", str(self.max_requests), "--max-requests-jitter", "0"]
            commands.append((index, port, env, [*command, "example_app:create_app()"]))
        self.started_at = time.time()
        for index, port, env, command in commands:
            log = self.workdir / f"stdout-{index}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            self.instances.append(Instance(index, port, process, Path(env["PROMETHEUS_MULTIPROC_DIR"]), log))
        return self

    # -- readiness ------------------------------------------------------------------------

    def ready(self) -> list[dict[str, Any]]:
        """Every worker that has been ready so far (pid, instance, ready time), oldest first."""
        found = []
        for path in self.ready_dir.glob("*.ready"):
            try:
                found.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return sorted(found, key=lambda item: item["ready"])

    def live_workers(self) -> list[int]:
        """Pids of ready workers that are still running."""
        return [item["pid"] for item in self.ready() if _alive(item["pid"])]

    def wait_ready(self, count: int | None = None, timeout: float = 120.0) -> list[dict[str, Any]]:
        """Wait until ``count`` workers (default: all) have been ready; raises with the logs when not."""
        count = self.processes * self.workers if count is None else count
        deadline = time.monotonic() + timeout
        while True:
            ready = self.ready()
            if len(ready) >= count:
                return ready
            dead = [i for i in self.instances if i.process.poll() is not None]
            if dead or time.monotonic() > deadline:
                why = f"instance {dead[0].index} exited" if dead else f"not ready within {timeout:g}s"
                raise RuntimeError(f"{why}: {len(ready)} of {count} workers ready.\n{self.logs()[-4000:]}")
            time.sleep(0.05)

    def wait_live(self, count: int, timeout: float = 60.0) -> list[int]:
        """Wait until exactly ``count`` ready workers are running (after restarts and kills)."""
        deadline = time.monotonic() + timeout
        while True:
            live = self.live_workers()
            if len(live) == count:
                return live
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(live)} live workers, expected {count}.\n{self.logs()[-4000:]}")
            time.sleep(0.05)

    # -- traffic -----------------------------------------------------------------------

    def get(self, path: str, count: int) -> list[str]:
        """``count`` GETs of ``path`` to each instance, a new connection each (they spread over its workers);
        the failures."""
        failures = []
        for _ in range(count):
            for instance in self.instances:
                try:
                    response = requests.get(f"{instance.url}{path}", headers={"Connection": "close"}, timeout=30)
                    if response.status_code != 200:
                        failures.append(f"instance {instance.index}: HTTP {response.status_code}")
                except requests.RequestException as exc:
                    failures.append(f"instance {instance.index}: {type(exc).__name__}")
        return failures

    # -- what the workers counted --------------------------------------------------------

    def counters(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every instance's multiprocess counters added up: (sample name, labels) -> value."""
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for instance in self.instances:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=str(instance.multiproc_dir))  # type: ignore[no-untyped-call]
            for metric in registry.collect():
                for sample in metric.samples:
                    key = (sample.name, tuple(sorted(sample.labels.items())))
                    totals[key] = totals.get(key, 0.0) + sample.value
        return totals

    def counter(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        return sum(
            value
            for (sample, sample_labels), value in self.counters().items()
            if sample == name and set(labels.items()) <= set(sample_labels)
        )

    def attempts(self) -> list[tuple[float, int, str]]:
        """With ``trace``: every HTTP request the workers sent, as (epoch seconds, status, path), in order."""
        found = []
        for path in (self.workdir / "trace").glob("*.trace"):
            for line in path.read_text().splitlines():
                at, status, url = line.split(" ", 2)
                found.append((float(at), int(status), url))
        return sorted(found)

    # -- the end -------------------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every master (a graceful stop: workers revoke their tokens), SIGKILL after ``timeout``."""
        for instance in self.instances:
            if instance.process.poll() is None:
                instance.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for instance in self.instances:
            try:
                instance.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                instance.process.kill()
                instance.process.wait(timeout=10)

    def logs(self) -> str:
        """The end of every instance's output, for an error message."""
        parts = []
        for path in sorted(self.workdir.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    def output(self) -> str:
        """Everything every instance printed."""
        return "\n".join(path.read_text(errors="replace") for path in sorted(self.workdir.glob("*.log")))

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- Vault, ready for a fleet ------------------------------------------------------------------


def prepare(
    root: hvac.Client, environment: str, *, role: str | None = None, token_ttl: str = "1h", token_max_ttl: str = "4h"
) -> tuple[str, str]:
    """The example's secrets (a database in memory), its policy and an AppRole for them (the example's
    ``store-ci`` unless ``role`` names another); returns (role_id, secret_id)."""
    from example_app.seed import APPROLE_NAME, seed

    seed(root, environment=environment, database={"url": "sqlite://"})
    policy = f"store-erp-{environment}-app"
    role = role or APPROLE_NAME
    root.auth.approle.create_or_update_approle(
        role, token_policies=[policy], token_ttl=token_ttl, token_max_ttl=token_max_ttl
    )
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    return role_id, secret_id


def rate_limit(root: hvac.Client, name: str, path: str, rate: float, interval: str = "1s") -> None:
    """A rate-limit quota on ``path``, with the Retry-After header on (sys/quotas)."""
    root.adapter.post("/v1/sys/quotas/config", json={"enable_rate_limit_response_headers": True})
    root.adapter.post(f"/v1/sys/quotas/rate-limit/{name}", json={"path": path, "rate": rate, "interval": interval})


# -- what Vault saw ----------------------------------------------------------------------------

_FRACTION = re.compile(r"(\.\d{6})\d*")


@dataclass(frozen=True)
class Seen:
    """One request Vault answered, as its audit device recorded it."""

    at: float
    path: str
    operation: str
    error: str | None


def audited(logs: Iterable[Path], since: float = 0.0) -> list[Seen]:
    """Every response the audit devices at ``logs`` recorded after ``since`` (epoch seconds), each request once."""
    seen: dict[str, Seen] = {}
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("type") != "response":
                continue
            request = entry.get("request") or {}
            at = datetime.fromisoformat(_FRACTION.sub(r"\1", entry["time"]).replace("Z", "+00:00")).timestamp()
            if at < since:
                continue
            key = str(request.get("id")) or f"{log}:{len(seen)}"
            seen.setdefault(
                key, Seen(at, str(request.get("path", "")), str(request.get("operation", "")), entry.get("error"))
            )
    return sorted(seen.values(), key=lambda item: item.at)


def peak_rate(times: Sequence[float], window: float = 1.0) -> float:
    """The most requests in any ``window`` seconds, per second."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] > window:
            start += 1
        best = max(best, end - start + 1)
    return best / window
