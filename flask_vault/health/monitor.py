"""The cached probe: one probe of Vault per ``VAULT_HEALTH_CACHE_SECONDS``, however many ask.

One probe runs at a time; while it runs, other callers get the previous report at once
rather than waiting on a slow Vault (only the very first callers wait).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from flask_vault.health import checks as registry
from flask_vault.health.checks import HealthContext
from flask_vault.health.probe import probe_login, probe_server
from flask_vault.health.report import HealthCheck, HealthReport, error_report, evaluate, now_iso

if TYPE_CHECKING:
    from flask_vault.state import VaultState

log = logging.getLogger(__name__)


class HealthMonitor:
    """One app's health probe, cached for ``VAULT_HEALTH_CACHE_SECONDS``; thread-safe.

    ``checks`` defaults to :data:`flask_vault.health.checks.CHECKS` as it is when the
    monitor is made (by ``init_app``).
    """

    def __init__(
        self,
        state: VaultState,
        *,
        clock: Callable[[], float] = time.monotonic,
        checks: Sequence[HealthCheck[HealthContext]] | None = None,
    ) -> None:
        self.state = state
        self.clock = clock
        self.window = state.settings.health_cache_seconds
        self.checks = list(registry.CHECKS if checks is None else checks)
        #: How many probes were sent to Vault (each: one sys/health, at most one lookup-self).
        self.probes = 0
        self._lock = threading.Lock()
        self._report: HealthReport | None = None
        self._expires = 0.0

    @property
    def last_status(self) -> str | None:
        report = self._report
        return report.status if report is not None else None

    def report(self, *, fresh: bool = False) -> HealthReport:
        """The current report: cached within the window, else probed (one probe at a time)."""
        report = self._report
        if not fresh and report is not None and self.clock() < self._expires:
            return report
        if not self._lock.acquire(blocking=report is None or fresh):
            assert report is not None
            return report
        try:
            report = self._report
            if not fresh and report is not None and self.clock() < self._expires:
                return report
            report = self._probe()
            self._report = report
            self._expires = self.clock() + self.window
            return report
        finally:
            self._lock.release()

    def _probe(self) -> HealthReport:
        self.probes += 1
        try:
            when = now_iso()
            server = probe_server(self.state)
            login = probe_login(self.state) if server.serving else None
            return evaluate(HealthContext(self.state, server, login, when), self.checks, when=when)
        except Exception as exc:  # never let a surprise escape into the view
            log.error("The Vault health check failed unexpectedly (%s).", type(exc).__name__)
            return error_report(exc, [check.name for check in self.checks])


def get_monitor(state: VaultState) -> HealthMonitor:
    """The app's monitor (created by ``init_app``)."""
    if state.health is None:
        state.health = HealthMonitor(state)
    return state.health
