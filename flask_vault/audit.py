"""The client-side audit trail: one structured record per Vault operation.

Records go to the ``flask_vault.audit`` logger at INFO (failures at WARNING). Each
carries ``operation``, ``path``, ``version``, ``outcome``, ``duration_ms`` and
``token_id`` (a short hash of the token accessor, never the token or accessor) as
attributes of the log record, so a JSON formatter can ship them as fields.
"""

from __future__ import annotations

import hashlib
import logging

audit_log = logging.getLogger("flask_vault.audit")


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
) -> None:
    if not audit_log.isEnabledFor(logging.INFO):
        return
    fields = {
        "operation": operation,
        "path": path,
        "version": version,
        "outcome": outcome,
        "duration_ms": round(duration * 1000, 2),
        "token_id": token_id,
    }
    level = logging.INFO if outcome == "ok" else logging.WARNING
    audit_log.log(
        level,
        "vault %s %s outcome=%s version=%s duration_ms=%s",
        operation,
        path or "-",
        outcome,
        version if version is not None else "-",
        fields["duration_ms"],
        extra={"vault": fields},
    )
