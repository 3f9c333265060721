"""Counters for ``vault.stats()`` and, when ``prometheus_client`` is installed, Prometheus.

Each :class:`~flask_vault.client.VaultClient` owns a :class:`VaultMetrics` that counts
its Vault requests by operation and outcome (fed by the audit trail, so every request
that leaves an audit record is counted once). :func:`collect_stats` joins them with the
cache's counters, the health probe's and the token keeper's (logins and renewals are
counted there, once) into the dict ``vault.stats()`` returns.

With the optional ``prometheus`` extra, :func:`track` registers one collector per
process in ``prometheus_client.REGISTRY`` (the first time an app is initialised) and
adds the app to it; the collector reads the same counters at scrape time, labelled by
app name. In ``prometheus_client``'s multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, for
gunicorn and other pre-fork servers) the same families are written where every worker's
values add up instead (see :mod:`flask_vault.observe.multiprocess`). Nothing here holds a
secret value, token or accessor.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flask_vault.observe import multiprocess

if TYPE_CHECKING:
    from flask_vault.observe.multiprocess import AppExport
    from flask_vault.state import VaultState

OK = "ok"


class VaultMetrics:
    """Thread-safe request counters of one client: (operation, outcome) -> count, durations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._durations: dict[str, list[float]] = {}  # operation -> [count, total seconds]
        self._retries: dict[str, int] = {}  # reason -> requests sent again
        #: In Prometheus multiprocess mode, where each event is also written (see :meth:`export_to`).
        self.exporter: AppExport | None = None

    def observe(self, operation: str, outcome: str, duration: float) -> None:
        """Count one finished Vault request (``outcome`` is ``"ok"`` or an error class name)."""
        key = (operation, outcome)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            totals = self._durations.setdefault(operation, [0.0, 0.0])
            totals[0] += 1
            totals[1] += duration
            if self.exporter is not None:
                self.exporter.request(operation, outcome, duration)

    def retried(self, operation: str, reason: str) -> None:
        """Count one request sent again: ``reason`` is ``rate-limited`` (a 429), ``connection`` or ``unavailable``."""
        with self._lock:
            self._retries[reason] = self._retries.get(reason, 0) + 1
            if self.exporter is not None:
                self.exporter.retried(reason)

    def export_to(self, exporter: AppExport) -> None:
        """Write every request from now on to ``exporter`` too, after those counted so far."""
        with self._lock:
            self.exporter = exporter
            for (operation, outcome), n in self._counts.items():
                exporter.request(operation, outcome, None, count=n)
            for operation, (count, seconds) in self._durations.items():
                exporter.durations(operation, int(count), seconds)
            for reason, n in self._retries.items():
                exporter.retried(reason, count=n)

    def retries(self) -> dict[str, int]:
        """``{reason: requests sent again}`` (see :meth:`retried`)."""
        with self._lock:
            return dict(self._retries)

    def count(self, operation: str | None = None, outcome: str | None = None) -> int:
        """Requests matching ``operation`` and ``outcome`` (None: any)."""
        with self._lock:
            return sum(
                n
                for (op, out), n in self._counts.items()
                if (operation is None or op == operation) and (outcome is None or out == outcome)
            )

    def requests(self) -> dict[str, dict[str, int]]:
        """``{operation: {outcome: count}}``."""
        with self._lock:
            items = list(self._counts.items())
        result: dict[str, dict[str, int]] = {}
        for (operation, outcome), n in sorted(items):
            result.setdefault(operation, {})[outcome] = n
        return result

    def durations(self) -> dict[str, tuple[int, float]]:
        """``{operation: (count, total seconds)}``."""
        with self._lock:
            return {op: (int(c), s) for op, (c, s) in self._durations.items()}


def collect_stats(state: VaultState) -> dict[str, Any]:
    """The counters of one app: requests, cache, health probes, and the token keeper's logins and renewals."""
    client = state.client
    metrics: VaultMetrics = client.metrics
    requests = metrics.requests()
    total = sum(sum(outcomes.values()) for outcomes in requests.values())
    ok = sum(outcomes.get(OK, 0) for outcomes in requests.values())
    keeper = client.keeper.stats
    cache = client.cache
    outage_since = cache.outage_since
    monitor = getattr(state, "health", None)
    databases = getattr(state, "databases", None)
    leases: dict[str, int] = databases.lease_stats() if databases is not None else {}
    return {
        "requests": requests,
        "requests_total": total,
        "request_errors": total - ok,
        "retries": metrics.retries(),
        "cache": cache.stats.as_dict(),
        "cache_entries": len(cache),
        "outage_seconds": None if outage_since is None else round(max(0.0, cache.clock() - outage_since), 3),
        "logins": keeper.logins,
        "login_failures": keeper.login_failures,
        "renewals": keeper.renewals,
        "renewal_failures": keeper.renewal_failures,
        "health_probes": monitor.probes if monitor is not None else 0,
        "health_status": monitor.last_status if monitor is not None else None,
        # Database secrets engine leases (see flask_vault.db.lease): renewals, switches to new
        # credentials, renewals or reads of new credentials that failed, previous leases revoked.
        "lease_renewals": leases.get("renewals", 0),
        "lease_switches": leases.get("switches", 0),
        "lease_failures": leases.get("failures", 0),
        "lease_revocations": leases.get("revocations", 0),
    }


# -- Prometheus ---------------------------------------------------------------------------

_STATUS_VALUE = {"pass": 0, "warn": 1, "fail": 2}
_CACHE_COUNTERS = {
    "hits": "Secret reads answered from the fresh cache.",
    "misses": "Secret reads that had to ask Vault.",
    "reads": "Successful Vault reads stored in the cache.",
    "stale_serves": "Secret reads answered from a stale entry while Vault was unavailable.",
    "refresh_failures": "Vault reads of a secret that failed.",
    "background_refreshes": "Background refreshes started (refresh-ahead and outage probes).",
}

#: id(state) -> (weak reference to the app's state, app name); dead apps drop out at scrape time.
_tracked: dict[int, tuple[weakref.ref[VaultState], str]] = {}
_tracked_lock = threading.Lock()
_registered = False


def track(app_name: str, state: VaultState, registry: Any = None) -> bool:
    """Export this app's counters to Prometheus; registers the collector once per process.

    Returns False (and does nothing) when ``prometheus_client`` is not installed.
    ``registry`` is for tests; by default the process-wide ``REGISTRY`` is used. In
    multiprocess mode no collector is registered: the values go to the multiprocess
    files, which ``prometheus_client.multiprocess.MultiProcessCollector`` reads.
    """
    global _registered
    try:
        import prometheus_client
    except ImportError:
        return False
    with _tracked_lock:
        _tracked[id(state)] = (weakref.ref(state), app_name)
    if registry is None and multiprocess.enabled():
        families = multiprocess.Families(_COUNTERS, _GAUGES, _DURATIONS)
        state.client.metrics.export_to(multiprocess.export(families, _multiprocess_snapshot).for_app(app_name))
        return True
    with _tracked_lock:
        if registry is not None:
            registry.register(VaultCollector())
        elif not _registered:
            prometheus_client.REGISTRY.register(VaultCollector())
            _registered = True
    return True


def _states() -> list[tuple[str, VaultState]]:
    live: list[tuple[str, VaultState]] = []
    with _tracked_lock:
        for key, (ref, name) in list(_tracked.items()):
            state = ref()
            if state is None:
                del _tracked[key]
            else:
                live.append((name, state))
    return live


#: Counter families: name -> (help, label names). prometheus_client appends ``_total``.
_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "flask_vault_requests": ("Vault operations by operation and outcome.", ("app", "operation", "outcome")),
    **{f"flask_vault_cache_{name}": (doc, ("app",)) for name, doc in _CACHE_COUNTERS.items()},
    "flask_vault_retries": (
        "Vault requests sent again, by reason: rate-limited (429), connection, unavailable.",
        ("app", "reason"),
    ),
    "flask_vault_logins": ("Successful Vault logins.", ("app",)),
    "flask_vault_renewals": ("Successful token renewals.", ("app",)),
    "flask_vault_health_probes": ("Health probes sent to Vault (one sys/health, at most one lookup-self).", ("app",)),
    "flask_vault_lease_renewals": ("Database lease renewals.", ("app",)),
    "flask_vault_lease_switches": ("Switches to new database credentials under a live engine.", ("app",)),
    "flask_vault_lease_failures": ("Database lease renewals or reads of new credentials that failed.", ("app",)),
}
_DURATIONS = ("flask_vault_request_duration_seconds", "Time spent in Vault operations.", ("app", "operation"))
_GAUGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "flask_vault_health_status": ("Last /health/vault status: 0 pass, 1 warn, 2 fail.", ("app",)),
    "flask_vault_outage_seconds": ("Seconds since Vault became unavailable (0 when it is not).", ("app",)),
    "flask_vault_secret_age_seconds": (
        "Seconds since the secret behind a filled config key was last read from Vault.",
        ("app", "key"),
    ),
    "flask_vault_lease_ttl_seconds": ("Seconds left on the database lease in use.", ("app", "key")),
    "flask_vault_lease_generation": ("Generation of the database credentials in use.", ("app", "key")),
}


class VaultCollector:
    """A ``prometheus_client`` collector over every tracked app (apps with the same name add up)."""

    def describe(self) -> list[Any]:
        return []  # an "unchecked" collector: the label values vary from scrape to scrape

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        counters, gauges, durations = _gather()
        for name, (doc, labels) in _COUNTERS.items():
            counter = CounterMetricFamily(name, doc, labels=list(labels))
            for values, total in sorted(counters[name].items()):
                counter.add_metric(list(values), total)
            yield counter
        name, doc, labels = _DURATIONS
        summary = SummaryMetricFamily(name, doc, labels=list(labels))
        for (app_name, operation), (n, seconds) in sorted(durations.items()):
            summary.add_metric([app_name, operation], count_value=n, sum_value=seconds)
        yield summary
        for name, (doc, labels) in _GAUGES.items():
            gauge = GaugeMetricFamily(name, doc, labels=list(labels))
            for values, value in sorted(gauges[name].items()):
                gauge.add_metric(list(values), value)
            yield gauge


def _leases(state: VaultState) -> dict[str, tuple[float | None, float]]:
    """Config key -> (seconds left on its database lease, generation)."""
    databases = getattr(state, "databases", None)
    found: dict[str, tuple[float | None, float]] = {}
    for lease in databases.leases if databases is not None else []:
        expires_in = lease.expires_in()
        found[lease.key] = (None if expires_in is None else max(0.0, expires_in), float(lease.generation))
    return found


_Values = dict[str, dict[tuple[str, ...], float]]


def _gather() -> tuple[_Values, _Values, dict[tuple[str, str], tuple[int, float]]]:
    """Every tracked app's counters, gauges and durations, by family and labels (same app names add up)."""
    counters: _Values = {name: {} for name in _COUNTERS}
    gauges: _Values = {name: {} for name in _GAUGES}
    durations: dict[tuple[str, str], tuple[int, float]] = {}

    def add(family: str, labels: tuple[str, ...], value: float) -> None:
        counters[family][labels] = counters[family].get(labels, 0.0) + value

    def highest(family: str, labels: tuple[str, ...], value: float) -> None:
        gauges[family][labels] = max(gauges[family].get(labels, value), value)

    for app_name, state in _states():
        stats = collect_stats(state)
        for operation, outcomes in stats["requests"].items():
            for outcome, n in outcomes.items():
                add("flask_vault_requests", (app_name, operation, outcome), n)
        for reason, n in stats["retries"].items():
            add("flask_vault_retries", (app_name, reason), n)
        for operation, (n, seconds) in state.client.metrics.durations().items():
            count, total = durations.get((app_name, operation), (0, 0.0))
            durations[(app_name, operation)] = (count + n, total + seconds)
        for name in _CACHE_COUNTERS:
            add(f"flask_vault_cache_{name}", (app_name,), stats["cache"].get(name, 0))
        add("flask_vault_logins", (app_name,), stats["logins"])
        add("flask_vault_renewals", (app_name,), stats["renewals"])
        add("flask_vault_health_probes", (app_name,), stats["health_probes"])
        add("flask_vault_lease_renewals", (app_name,), stats["lease_renewals"])
        add("flask_vault_lease_switches", (app_name,), stats["lease_switches"])
        add("flask_vault_lease_failures", (app_name,), stats["lease_failures"])
        for config_key, (ttl, generation) in _leases(state).items():
            if ttl is not None:
                highest("flask_vault_lease_ttl_seconds", (app_name, config_key), ttl)
            highest("flask_vault_lease_generation", (app_name, config_key), generation)
        if stats["health_status"] in _STATUS_VALUE:
            highest("flask_vault_health_status", (app_name,), _STATUS_VALUE[stats["health_status"]])
        highest("flask_vault_outage_seconds", (app_name,), stats["outage_seconds"] or 0.0)
        for config_key, age in _secret_ages(state).items():
            highest("flask_vault_secret_age_seconds", (app_name, config_key), age)
    return counters, gauges, durations


def _multiprocess_snapshot() -> multiprocess.Snapshot:
    """Per app name: the counters the multiprocess export adds by difference, and the gauges."""
    counters, gauges, _ = _gather()
    snapshot: multiprocess.Snapshot = {}
    for family, values in counters.items():
        if family in multiprocess.MultiprocessExport.EVENT_COUNTERS:
            continue
        for labels, total in values.items():
            snapshot.setdefault(labels[0], ({}, {}))[0][family] = total
    for family, values in gauges.items():
        for labels, value in values.items():
            snapshot.setdefault(labels[0], ({}, {}))[1].setdefault(family, {})[labels] = value
    return snapshot


def _secret_ages(state: VaultState) -> dict[str, float]:
    cache = state.client.cache
    ages: dict[str, float] = {}
    for key, source in list(state.sources.items()):
        if source.origin != "vault" or not source.path:
            continue
        entry = cache.peek(source.path)
        if entry is not None:
            ages[key] = max(0.0, cache.age(entry))
    return ages
