"""The health report and the one rule that combines the checks into it.

A check (see :mod:`flask_vault.health.checks`) returns an :class:`Outcome`: its items,
the ``application/health+json`` objects listed under its name, and a one-line summary.
:func:`evaluate` runs the checks in order and combines them:

* a check's status is the worst of its items' (``pass`` < ``warn`` < ``fail``);
* the overall status is the worst of the checks' statuses, each capped at its
  :attr:`HealthCheck.at_worst` (the server check is capped at ``warn``: while the secrets
  are served, an outage of Vault degrades the app but does not stop it);
* the report's ``output``, when the status is not ``pass``, is the summary of the last
  check (the nearest to the app: checks are listed from Vault towards the app) whose
  capped status is the overall one and that has a summary.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Generic, TypeVar

PASS, WARN, FAIL = "pass", "warn", "fail"
HTTP_STATUS = {PASS: 200, WARN: 200, FAIL: 503}
MEDIA_TYPE = "application/health+json"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}

#: One object of the health+json ``checks`` lists.
Item = dict[str, Any]
C = TypeVar("C")


def worst(statuses: Iterable[str]) -> str:
    """The worst of ``statuses`` (``pass`` when there are none)."""
    return max(statuses, key=_RANK.__getitem__, default=PASS)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Outcome:
    """What one check found: its items (each with a ``status``) and, when it decides the
    overall status, the report's one-line ``summary``."""

    items: list[Item]
    summary: str | None = None

    @property
    def status(self) -> str:
        return worst(item["status"] for item in self.items)


@dataclass(frozen=True)
class HealthCheck(Generic[C]):
    """A named check: ``run(context)`` gives its :class:`Outcome`.

    ``at_worst`` is the most this check can do to the overall status: ``warn`` for a
    check whose failure only degrades the app.
    """

    name: str
    run: Callable[[C], Outcome]
    at_worst: str = FAIL


@dataclass
class HealthReport:
    """One evaluated report; ``checks`` holds the full details."""

    status: str
    checks: dict[str, list[Item]]
    output: str | None = None
    time: str = field(default_factory=now_iso)
    _bodies: dict[bool, bytes] = field(default_factory=dict, repr=False)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.status]

    def check_status(self, name: str) -> str:
        return worst(item.get("status", PASS) for item in self.checks.get(name, []))

    def as_dict(self, *, details: bool) -> dict[str, Any]:
        """The health+json document: statuses only, or everything with ``details``."""
        if not details:
            return {
                "status": self.status,
                "checks": {name: [{"status": self.check_status(name)}] for name in self.checks},
            }
        document: dict[str, Any] = {"status": self.status}
        if self.output:
            document["output"] = self.output
        document["description"] = "Vault secrets of this app instance (flask-vault)"
        document["checks"] = self.checks
        return document

    def body(self, *, details: bool) -> bytes:
        body = self._bodies.get(details)
        if body is None:
            body = json.dumps(self.as_dict(details=details), separators=(",", ":")).encode()
            self._bodies[details] = body
        return body


def evaluate(context: C, checks: Sequence[HealthCheck[C]], *, when: str) -> HealthReport:
    """Run ``checks`` on ``context`` and combine them (see the module docstring)."""
    return combine([(check, check.run(context)) for check in checks], when=when)


def combine(results: Sequence[tuple[HealthCheck[Any], Outcome]], *, when: str) -> HealthReport:
    """The one combining rule (see the module docstring)."""
    capped = [(check, _cap(outcome.status, check.at_worst), outcome) for check, outcome in results]
    status = worst(status for _, status, _ in capped)
    output = None
    if status != PASS:
        summaries = [outcome.summary for _, capped_status, outcome in capped if capped_status == status]
        output = next((s for s in reversed(summaries) if s), None) or _DEFAULT_SUMMARY[status]
    # A check with nothing to report (no item) is left out, e.g. vault:database without a database.
    checks = {check.name: [_tidy(item) for item in outcome.items] for check, outcome in results if outcome.items}
    return HealthReport(status, checks, output=output, time=when)


_DEFAULT_SUMMARY = {WARN: "Degraded: see the checks.", FAIL: "Failing: see the checks."}


def _cap(status: str, at_worst: str) -> str:
    return status if _RANK[status] <= _RANK[at_worst] else at_worst


def _tidy(item: Item) -> Item:
    """The item without empty fields, ``status`` first (easier to read in a terminal or log)."""
    return {"status": item["status"], **{k: v for k, v in item.items() if v is not None and k != "status"}}


def error_report(exc: BaseException, names: Iterable[str]) -> HealthReport:
    """The report when building one failed unexpectedly: fail, naming only the error class."""
    when = now_iso()
    item = {"status": FAIL, "output": f"The health check failed ({type(exc).__name__}).", "time": when}
    return HealthReport(FAIL, {name: [dict(item)] for name in names}, output=item["output"], time=when)
