"""What every figure shares: run sizes, statistics, request counting, the servers.

Everything listens on 127.0.0.1 only; every loop is bounded in count and in time.
"""

# ruff: noqa: RUF001, RUF002, RUF003  (×, – and − are meant: the output is a table for people)

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hvac
import requests
import requests.adapters

from flask_vault.devserver import OpenBaoServer, find_bao, free_port_pair, stop_process

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench"
ENVIRONMENT = "dev"
#: The seeded secrets: the default mapping's two paths (three config keys).
FLASK_SECRET = {"secret_key": "bench-secret-key-0123456789abcdef", "jwt_secret": "bench-jwt-secret-fedcba9876543210"}
DATABASE_SECRET = {
    "host": "db.internal",
    "port": 5432,
    "username": "store",
    "password": "p@ss:w/rd%?#",
    "database": "store_erp",
}
#: The three keys of the default VAULT_SECRETS mapping, as (name, field).
DEFAULT_KEYS = (("flask", "secret_key"), ("flask", "jwt_secret"), ("database", "password"))


# -- run sizes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """How big each figure's run is. ``full`` is what RESULTS.md reports."""

    name: str
    rounds: int  # rounds of the per-call figure (1) and of memory (6)
    cached_calls: int  # cached get_secret / dict lookups per round
    http_calls: int  # hvac / proxy reads per round
    init_rounds: int  # init_app vs raw hvac rounds (2): each is a few ms, and a median needs many
    load_seconds: float  # 50-thread TTL load (3)
    load_ttl: float
    load_threads: int
    outage_rounds: int  # up / down / hung rounds (4)
    outage_seconds: float  # per state per round
    outage_ttl: float
    health_rounds: int  # /health/vault vs bare route rounds (5)
    health_seconds: float  # per route per round
    health_clients: int
    memory_secrets: int  # (6)
    start_rounds: int  # process start rounds (7)
    fleet: tuple[int, int] = (8, 3)  # gunicorn instances x workers started at once (10)
    fleet_rounds: int = 2  # rounds with and without jitter (10)


PROFILES = {
    "full": Profile("full", 7, 200_000, 300, 150, 60.0, 2.0, 50, 3, 6.0, 1.0, 3, 10.0, 8, 10_000, 9, (8, 3), 2),
    "quick": Profile("quick", 5, 50_000, 100, 40, 10.0, 2.0, 50, 2, 3.0, 1.0, 2, 2.0, 8, 10_000, 3, (4, 3), 1),
    "smoke": Profile("smoke", 1, 2_000, 5, 1, 1.2, 0.5, 5, 1, 0.6, 0.3, 1, 0.5, 2, 200, 1, (1, 2), 1),
}


# -- statistics --------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """Median of several rounds, with the spread (min–max and the interquartile range)."""

    median: float
    low: float
    high: float
    q1: float
    q3: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stat:
        values = sorted(samples)
        if not values:
            raise ValueError("no samples")
        if len(values) >= 2:
            q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
        else:
            q1 = q3 = values[0]
        return cls(statistics.median(values), values[0], values[-1], q1, q3, len(values))

    def scaled(self, factor: float) -> Stat:
        return Stat(*(v * factor for v in (self.median, self.low, self.high, self.q1, self.q3)), self.n)

    def fmt(self, unit: str = "", digits: int | None = None) -> str:
        """``1.23 µs (1.10–1.40, n=7)``: the median, then min–max over the rounds."""
        med, low, high = (num(v, digits) for v in (self.median, self.low, self.high))
        if self.n == 1:
            return f"{med}{unit}"
        return f"{med}{unit} ({low}–{high}, n={self.n})"


def num(value: float, digits: int | None = None) -> str:
    """A number with about three significant digits (or ``digits`` decimals)."""
    if digits is not None:
        return f"{value:,.{digits}f}"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(value: float) -> str:
    return f"{num(value)}×"


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


# -- results -----------------------------------------------------------------------------


@dataclass
class Figure:
    """One figure: the summary line, a detail table and notes for RESULTS.md."""

    number: int
    title: str
    measured: str = ""
    compared: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None  # None: nothing to meet ("reported")
    details: list[tuple[str, ...]] = field(default_factory=list)
    detail_header: tuple[str, ...] = ("measure", "value")
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return {True: "met", False: "**not met**", None: "reported"}[self.met]


# -- counting Vault requests at the requests layer ----------------------------------------


@dataclass(frozen=True)
class SentRequest:
    method: str
    port: int | None
    path: str
    seconds: float
    thread: str
    started: float  # time.monotonic() when it was sent


class RequestLog:
    """Records every HTTP request sent through ``requests`` (so every hvac call) in this process.

    It wraps ``HTTPAdapter.send`` while the ``with`` block runs. Only requests to
    ``port`` are kept (the Vault server's). Thread-safe (list.append under the GIL).
    """

    _original: Any = None
    _active: list[RequestLog] = []
    _guard = threading.Lock()

    def __init__(self, port: int | None = None) -> None:
        self.port = port
        self.sent: list[SentRequest] = []

    def __enter__(self) -> RequestLog:
        with RequestLog._guard:
            if RequestLog._original is None:
                RequestLog._original = requests.adapters.HTTPAdapter.send
                requests.adapters.HTTPAdapter.send = _counting_send  # type: ignore[method-assign]
            RequestLog._active.append(self)
        return self

    def __exit__(self, *exc_info: Any) -> None:
        with RequestLog._guard:
            RequestLog._active.remove(self)
            if not RequestLog._active and RequestLog._original is not None:
                requests.adapters.HTTPAdapter.send = RequestLog._original  # type: ignore[method-assign]
                RequestLog._original = None

    def count(self, predicate: Callable[[SentRequest], bool] = lambda r: True) -> int:
        return sum(1 for r in list(self.sent) if predicate(r))

    def by_endpoint(self) -> Counter[str]:
        return Counter(f"{r.method} {r.path}" for r in list(self.sent))

    def seconds(self) -> float:
        return sum(r.seconds for r in list(self.sent))


def _counting_send(adapter: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
    sent_at = time.monotonic()
    started = time.perf_counter()
    try:
        return RequestLog._original(adapter, request, *args, **kwargs)
    finally:
        elapsed = time.perf_counter() - started
        parts = urlsplit(request.url)
        entry = SentRequest(request.method, parts.port, parts.path, elapsed, threading.current_thread().name, sent_at)
        for log in list(RequestLog._active):
            if log.port is None or log.port == parts.port:
                log.sent.append(entry)


def is_kv_read(request: SentRequest) -> bool:
    return request.method == "GET" and request.path.startswith("/v1/secret/data/")


# -- Vault's side: a file audit device -----------------------------------------------------


class AuditLog:
    """The server's file audit device: what Vault itself saw (sys/health is never audited)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def responses_since(self, offset: int) -> list[dict[str, Any]]:
        """Audited responses (one per request Vault answered) written after ``offset``."""
        if not self.path.exists():
            return []
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            lines = handle.read().splitlines()
        entries = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("type") == "response":
                entries.append(entry)
        return entries

    def count_since(self, offset: int, path_prefix: str, operation: str | None = None) -> int:
        return sum(
            1
            for entry in self.responses_since(offset)
            if str(entry.get("request", {}).get("path", "")).startswith(path_prefix)
            and (operation is None or entry.get("request", {}).get("operation") == operation)
        )


# -- the servers ---------------------------------------------------------------------------


def seed(server: OpenBaoServer) -> None:
    with root_client(server) as root:
        kv = root.secrets.kv.v2
        kv.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/flask", FLASK_SECRET)
        kv.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/database", DATABASE_SECRET)


@contextmanager
def root_client(server: OpenBaoServer) -> Iterator[hvac.Client]:
    """The dev server's root hvac client, its HTTP session closed afterwards."""
    client = server.root_client()
    try:
        yield client
    finally:
        client.adapter.close()


def close(client: Any) -> None:
    """Close the HTTP session of a VaultClient or an hvac.Client and stop a keeper's thread."""
    keeper = getattr(client, "keeper", None)
    if keeper is not None:
        keeper.close(revoke=False)  # the servers are throwaway
    hvac_client = getattr(client, "hvac", client)
    hvac_client.adapter.close()


class BaoProxy:
    """``bao proxy`` on a free loopback port: auto-auth from a token file, a cache stanza,
    and ``api_proxy { use_auto_auth_token = true }`` so clients send no token."""

    def __init__(self, vault_url: str, token: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="bao-proxy-"))
        self.port = free_port_pair()
        token_file = self.workdir / "token"
        token_file.write_text(token)
        token_file.chmod(0o600)
        self.config = f"""
log_level = "warn"
pid_file = "{self.workdir / "pid"}"
vault {{
  address = "{vault_url}"
}}
auto_auth {{
  method "token_file" {{
    config = {{
      token_file_path = "{token_file}"
    }}
  }}
}}
cache {{}}
api_proxy {{
  use_auto_auth_token = true
}}
listener "tcp" {{
  address = "127.0.0.1:{self.port}"
  tls_disable = true
}}
"""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, probe_path: str, timeout: float = 20.0) -> BaoProxy:
        config_path = self.workdir / "proxy.hcl"
        config_path.write_text(self.config)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        with open(self.workdir / "proxy.log", "wb") as log:
            self.process = subprocess.Popen(
                [find_bao(), "proxy", f"-config={config_path}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.url}/v1/{probe_path}", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        log_text = (self.workdir / "proxy.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"bao proxy did not serve {probe_path} within {timeout:g}s:\n{log_text}")

    def stop(self) -> None:
        stop_process(self.process)


class BenchEnv:
    """Two OpenBao dev servers on loopback, seeded alike:

    * ``plain``: no audit device, for timings (what a client sees);
    * ``audited``: a file audit device, for counting what Vault saw.
    """

    def __init__(self) -> None:
        self.plain = OpenBaoServer()
        audit_path = self.plain.workdir.parent / f"{self.plain.workdir.name}-audit.log"
        self.audit = AuditLog(audit_path)
        self.audited = OpenBaoServer(
            config=f'audit "file" "bench" {{\n  options {{\n    file_path = "{audit_path}"\n  }}\n}}\n'
        )
        self.proxy: BaoProxy | None = None

    def start(self) -> BenchEnv:
        self.plain.start()
        try:
            self.audited.start()
            for server in (self.plain, self.audited):
                seed(server)
        except BaseException:
            self.stop()
            raise
        return self

    def start_proxy(self) -> BaoProxy:
        """``bao proxy`` in front of the plain server (started on first use)."""
        if self.proxy is None:
            proxy = BaoProxy(self.plain.url, self.plain.root_token)
            proxy.start(f"secret/data/{PREFIX}/{ENVIRONMENT}/flask")
            self.proxy = proxy
        return self.proxy

    def vault_config(self, server: OpenBaoServer | None = None, **overrides: Any) -> dict[str, Any]:
        """app.config for the extension on ``server`` (the plain one by default)."""
        server = server or self.plain
        return {
            "VAULT_URL": server.url,
            "VAULT_TOKEN": server.root_token,
            "VAULT_PATH_PREFIX": PREFIX,
            "VAULT_ENVIRONMENT": ENVIRONMENT,
            **overrides,
        }

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.audited.stop()
        self.plain.stop()

    def __enter__(self) -> BenchEnv:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


# -- the machine ---------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        bao = subprocess.run([find_bao(), "version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, RuntimeError, subprocess.SubprocessError):
        bao = "?"
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} (not installed)"

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores ({cpu})",
        "load": " / ".join(f"{v:.2f}" for v in load),
        "server": bao.splitlines()[0] if bao else "?",
        "libraries": ", ".join(
            installed(name) for name in ("flask", "hvac", "requests", "cachetools", "werkzeug", "gunicorn")
        ),
    }


@contextmanager
def timed(figure: Figure) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        figure.seconds = time.monotonic() - started


def python() -> str:
    return sys.executable
