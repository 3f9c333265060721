"""The client-side audit trail: one structured record per Vault operation.

Records go to the ``flask_vault.audit`` logger, at INFO when the operation succeeded and
at WARNING when it failed. Each record carries a ``vault`` attribute (a dict, so a JSON
formatter can ship it as fields)::

    operation    "read", "write", "list", "metadata", "lookup", "login", "renew",
                 "rotate", "backup", "restore", "rollback", ...
    path         the Vault path, e.g. "secret/store-erp/production/flask"
    version      the KV v2 version read or written, else None
    outcome      "ok", or the error class name ("VaultUnavailableError", ...)
    status       the HTTP status of a failed request, when there was one
    duration_ms  wall time of the operation, retries included
    token_id     the first 12 hex digits of SHA-256(token accessor), or None

Never a secret value, a token or an accessor. ``token_id`` matches
``accessor_hash(accessor)`` for the accessor Vault shows in its own audit log and in
``bao token lookup``, so an operator who knows an accessor can find its records, while
the trail itself cannot be used to look up, renew or revoke the token.

A login's or renewal's record carries the tag of the token it produced (from Vault's
answer); every other record the tag of the token in use, which the token keeper
(:mod:`flask_vault.auth.keeper`) knows and hands to the trail.

:class:`AuditTrail` is what a client's transport uses: it emits the record and counts the
operation in :class:`~flask_vault.observe.metrics.VaultMetrics`. Code that groups several
requests into one operation (rotation, backups) wraps it in :meth:`AuditTrail.operation`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask_vault.observe.metrics import VaultMetrics

audit_log = logging.getLogger("flask_vault.audit")

OK = "ok"
#: Operations whose own answer names the accessor (or that must not trigger a lookup).
_NO_LOOKUP_AFTER = frozenset({"lookup", "login", "renew", "revoke", "health"})

#: ``token_id(resolve)``: the tag of the token in use; ``resolve`` allows one lookup to learn it.
TokenIdSource = Callable[[bool], "str | None"]


def _no_token_id(resolve: bool) -> str | None:
    return None


def accessor_hash(accessor: str | None) -> str | None:
    """A short, stable, one-way tag for a token accessor, safe to log."""
    if not accessor:
        return None
    return hashlib.sha256(accessor.encode()).hexdigest()[:12]


def record(
    operation: str,
    path: str | None,
    *,
    outcome: str,
    duration: float,
    version: int | None = None,
    token_id: str | None = None,
    status: int | None = None,
) -> None:
    """Emit one audit record (see the module docstring for the fields)."""
    level = logging.INFO if outcome == OK else logging.WARNING
    if not audit_log.isEnabledFor(level):
        return
    fields = {
        "operation": operation,
        "path": path,
        "version": version,
        "outcome": outcome,
        "status": status,
        "duration_ms": round(duration * 1000, 2),
        "token_id": token_id,
    }
    audit_log.log(
        level,
        "vault %s %s outcome=%s version=%s duration_ms=%s token_id=%s",
        operation,
        path or "-",
        outcome if status is None else f"{outcome}({status})",
        version if version is not None else "-",
        fields["duration_ms"],
        token_id or "-",
        extra={"vault": fields},
    )


def answer_token_id(operation: str, result: Any) -> str | None:
    """The tag of the token Vault's answer names: a login's or renewal's, or a lookup-self's own."""
    if not isinstance(result, dict):
        return None
    auth = result.get("auth")
    if isinstance(auth, dict) and isinstance(auth.get("accessor"), str):
        return accessor_hash(auth["accessor"])
    data = result.get("data")
    if operation == "lookup" and isinstance(data, dict) and isinstance(data.get("accessor"), str):
        return accessor_hash(data["accessor"])
    return None


@dataclass
class AuditedOperation:
    """What the body of :meth:`AuditTrail.operation` may fill in before it ends."""

    operation: str
    path: str | None
    version: int | None = None


class AuditTrail:
    """One client's audit trail: emits the records and counts them in ``metrics``.

    ``token_id(resolve)`` gives the tag of the token in use (the token keeper owns it);
    with ``resolve`` it may look the accessor up once when it is not known yet. The
    trail asks for it only when the record is going to be emitted.
    """

    def __init__(self, *, token_id: TokenIdSource | None = None, metrics: VaultMetrics | None = None) -> None:
        self.metrics = metrics if metrics is not None else VaultMetrics()
        self._token_id = token_id or _no_token_id

    def finish(
        self,
        operation: str,
        path: str | None,
        *,
        outcome: str,
        duration: float,
        version: int | None = None,
        status: int | None = None,
        result: Any = None,
    ) -> None:
        """Count and record one finished operation; ``result`` is Vault's answer when it succeeded."""
        self.metrics.observe(operation, outcome, duration)
        level = logging.INFO if outcome == OK else logging.WARNING
        if not audit_log.isEnabledFor(level):
            return
        # A login or renewal is recorded with the token it produced; anything else with the token in use.
        token_id = answer_token_id(operation, result) or self._token_id(
            outcome == OK and operation not in _NO_LOOKUP_AFTER
        )
        record(
            operation,
            path,
            outcome=outcome,
            duration=duration,
            version=version,
            token_id=token_id,
            status=status,
        )

    @contextmanager
    def operation(self, operation: str, path: str | None = None) -> Iterator[AuditedOperation]:
        """Record a composite operation (rotate, backup, restore, rollback) as one record.

        ``with trail.operation("rotate", path) as op: ...; op.version = new_version``.
        An exception is recorded as the outcome (its class name) and re-raised.
        """
        op = AuditedOperation(operation, path)
        started = time.perf_counter()
        try:
            yield op
        except BaseException as exc:
            status = getattr(exc, "status", None)
            self.finish(
                op.operation,
                op.path,
                outcome=type(exc).__name__,
                duration=time.perf_counter() - started,
                version=op.version,
                status=status if isinstance(status, int) else None,
            )
            raise
        self.finish(op.operation, op.path, outcome=OK, duration=time.perf_counter() - started, version=op.version)
