"""Prometheus counters that add up across worker processes (``PROMETHEUS_MULTIPROC_DIR``).

Under gunicorn each scrape reaches one worker. With ``prometheus_client``'s multiprocess
mode every process writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` and the
worker that answers the scrape reads them all (``multiprocess.MultiProcessCollector``),
so a collector that reads this process's counters at scrape time, as
:class:`~flask_vault.observe.metrics.VaultCollector` does, would report one worker only.
Here the same families are real ``prometheus_client`` metrics instead:

* Vault requests (by operation and outcome, with their durations), retries, logins and
  renewals are counted as they happen;
* the cache's counters and the health probes are added by difference, and the gauges
  (health status, outage, secret ages) set, every :data:`FLUSH_INTERVAL` seconds by a
  daemon thread, and once more at exit;
* gauges use the ``livemax`` mode, the worst value among live workers (``livemin`` for
  the seconds left on a lease). Call
  ``prometheus_client.multiprocess.mark_process_dead(pid)`` from gunicorn's
  ``child_exit`` hook so that a dead worker's gauges drop out (its counters stay).

Nothing here holds a secret value, token or accessor.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

log = logging.getLogger(__name__)

#: Seconds between two writes of the cache counters and gauges of this process.
FLUSH_INTERVAL = 5.0

#: Gauges whose lowest value among the workers is the one to show (the rest show the highest).
LOWEST_IS_WORST: dict[str, Literal["livemin"]] = {"flask_vault_lease_ttl_seconds": "livemin"}

#: What a snapshot gives per app name: (counter name -> running total, gauge name -> {labels: value}).
Snapshot = dict[str, tuple[dict[str, float], dict[str, dict[tuple[str, ...], float]]]]


def enabled() -> bool:
    """True when ``prometheus_client`` is installed and in multiprocess mode (its environment variable was set
    before it was imported)."""
    try:
        from prometheus_client import values
    except ImportError:
        return False
    return bool(getattr(values.ValueClass, "_multiprocess", False))


@dataclass(frozen=True)
class Families:
    """The metric families to create: name -> (help, label names)."""

    counters: Mapping[str, tuple[str, tuple[str, ...]]]
    gauges: Mapping[str, tuple[str, tuple[str, ...]]]
    durations: tuple[str, str, tuple[str, ...]]  # (name, help, label names)


class AppExport:
    """One app's event counters in multiprocess mode (what ``VaultMetrics`` feeds as requests finish)."""

    def __init__(self, export: MultiprocessExport, app_name: str) -> None:
        self._export = export
        self.app_name = app_name

    def request(self, operation: str, outcome: str, duration: float | None, *, count: int = 1) -> None:
        """``count`` finished requests; ``duration``, when given, is one request's time."""
        metrics = self._export.metrics
        metrics["flask_vault_requests"].labels(self.app_name, operation, outcome).inc(count)
        if duration is not None:
            metrics[self._export.families.durations[0]].labels(self.app_name, operation).observe(duration)
        if outcome == "ok" and operation in ("login", "renew"):
            family = "flask_vault_logins" if operation == "login" else "flask_vault_renewals"
            metrics[family].labels(self.app_name).inc(count)

    def durations(self, operation: str, count: int, seconds: float) -> None:
        """``count`` requests that took ``seconds`` in all (those counted before the export began)."""
        summary = self._export.metrics[self._export.families.durations[0]].labels(self.app_name, operation)
        for _ in range(count):
            summary.observe(seconds / count)

    def retried(self, reason: str, *, count: int = 1) -> None:
        self._export.metrics["flask_vault_retries"].labels(self.app_name, reason).inc(count)


class MultiprocessExport:
    """This process's metrics in ``PROMETHEUS_MULTIPROC_DIR``. See the module docstring.

    ``snapshot()`` returns, per app name, the running totals of the counters that are
    added by difference and the current gauge values.
    """

    #: Counter families counted as events (the rest are added by difference at each flush).
    EVENT_COUNTERS = frozenset(
        {"flask_vault_requests", "flask_vault_retries", "flask_vault_logins", "flask_vault_renewals"}
    )

    def __init__(self, families: Families, snapshot: Callable[[], Snapshot]) -> None:
        from prometheus_client import Counter, Gauge, Summary

        self.families = families
        self._snapshot = snapshot
        self.metrics: dict[str, Any] = {
            name: Counter(name, doc, labels, registry=None) for name, (doc, labels) in families.counters.items()
        }
        for name, (doc, labels) in families.gauges.items():
            mode: Literal["livemin", "livemax"] = LOWEST_IS_WORST.get(name, "livemax")
            self.metrics[name] = Gauge(name, doc, labels, registry=None, multiprocess_mode=mode)
        name, doc, labels = families.durations
        self.metrics[name] = Summary(name, doc, labels, registry=None)
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def for_app(self, app_name: str) -> AppExport:
        return AppExport(self, app_name)

    def flush(self) -> None:
        """Add what the counters gained since the last flush, and set the gauges."""
        with self._lock:
            for app_name, (totals, gauges) in self._snapshot().items():
                for name, total in totals.items():
                    gained = total - self._last.get((app_name, name), 0.0)
                    if gained > 0:
                        self.metrics[name].labels(app_name).inc(gained)
                        self._last[(app_name, name)] = total
                for name, values in gauges.items():
                    for labels, value in values.items():
                        self.metrics[name].labels(*labels).set(value)

    def ensure_thread(self) -> None:
        """Start the flushing thread when none runs in this process."""
        if self._pid != os.getpid():
            self.after_fork()
        if self._thread is not None and self._thread.is_alive():
            return
        thread = threading.Thread(target=_run, args=(weakref.ref(self),), name="flask-vault-metrics", daemon=True)
        self._thread = thread
        thread.start()

    def after_fork(self) -> None:
        """In a forked child: its own lock and thread. The totals already written stay the parent's
        (the parent flushed just before the fork), so the child adds only what it counts itself."""
        self._pid, self._lock, self._wake, self._thread = os.getpid(), threading.Lock(), threading.Event(), None


def _run(ref: weakref.ref[MultiprocessExport]) -> None:
    while True:
        export = ref()
        if export is None or export._thread is not threading.current_thread():
            return
        wake = export._wake
        try:
            export.flush()
        except Exception:  # never let metrics break the app; try again at the next interval
            log.debug("Writing the multiprocess metrics failed.", exc_info=True)
        del export
        wake.wait(FLUSH_INTERVAL)


_export: MultiprocessExport | None = None
_export_lock = threading.Lock()


def export(families: Families, snapshot: Callable[[], Snapshot]) -> MultiprocessExport:
    """The process-wide export (created once), its thread running."""
    global _export
    with _export_lock:
        if _export is None:
            _export = MultiprocessExport(families, snapshot)
            atexit.register(_flush_in_this_process)
            os.register_at_fork(before=_flush_in_this_process, after_in_child=_after_fork_in_child)
        _export.ensure_thread()
        return _export


def _flush_in_this_process() -> None:
    """At exit, and in a parent just before it forks."""
    if _export is not None and _export._pid == os.getpid():
        try:
            _export.flush()
        except Exception:  # at exit or inside fork(): nothing more to do about it
            log.debug("Writing the multiprocess metrics failed.", exc_info=True)


def _after_fork_in_child() -> None:
    if _export is not None:
        _export.after_fork()
        _export.ensure_thread()
