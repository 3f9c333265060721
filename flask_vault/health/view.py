"""The ``/health/vault`` blueprint: the cached report as ``application/health+json``.

By default the body holds only the statuses; the details need ``VAULT_HEALTH_DETAILS``
or ``Authorization: Bearer <VAULT_HEALTH_TOKEN>`` (compared in constant time).
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from flask import Blueprint, Response, request

from flask_vault.health.checks import CHECKS
from flask_vault.health.monitor import get_monitor
from flask_vault.health.report import MEDIA_TYPE, error_report
from flask_vault.state import get_state

if TYPE_CHECKING:
    from flask_vault.state import VaultState

log = logging.getLogger(__name__)

health_bp = Blueprint("vault_health", __name__)


def _details_allowed(state: VaultState) -> tuple[bool, bool]:
    """(show details, only to this caller): the setting, or the bearer token."""
    settings = state.settings
    if settings.health_details:
        return True, False
    expected = settings.health_token
    if not expected:
        return False, False
    scheme, _, supplied = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not supplied.strip():
        return False, False
    allowed = hmac.compare_digest(supplied.strip().encode(), expected.encode())
    return allowed, allowed


def render(state: VaultState) -> Response:
    """The ``application/health+json`` response for the current request."""
    try:
        report = get_monitor(state).report()
        details, private = _details_allowed(state)
        body = report.body(details=details)
        status = report.http_status
    except Exception as exc:  # pragma: no cover - report() already guards the probe
        log.error("The Vault health endpoint failed unexpectedly (%s).", type(exc).__name__)
        fallback = error_report(exc, [check.name for check in CHECKS])
        details, private, body, status = False, False, fallback.body(details=False), fallback.http_status
    max_age = max(0, int(state.settings.health_cache_seconds))
    headers = {"Cache-Control": f"private, max-age={max_age}" if private else f"max-age={max_age}"}
    if state.settings.health_token:
        headers["Vary"] = "Authorization"
    return Response(body, status=status, mimetype=MEDIA_TYPE, headers=headers)


@health_bp.route("", methods=["GET"])
def vault_health() -> Response:
    return render(get_state())
