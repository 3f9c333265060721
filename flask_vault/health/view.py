"""The ``/health/vault`` blueprint: the cached report as ``application/health+json``.

By default the body holds only the statuses; the details need ``VAULT_HEALTH_DETAILS``
or ``Authorization: Bearer <VAULT_HEALTH_TOKEN>`` (compared in constant time).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Response, request
from werkzeug.routing import Rule

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


def register(app: Flask, url: str) -> None:
    """Add the health route to ``app`` at ``url``.

    With Flask's own rule class, the route's URL builders are compiled on its first
    ``url_for``, not at ``init_app``: Werkzeug compiles two small functions per rule when it
    is added, most of what registering a route costs, and a load balancer's route is
    matched, rarely built.
    """
    if app.url_rule_class is not Rule or not _BUILDERS_CAN_WAIT:
        app.register_blueprint(health_bp, url_prefix=url)
        return
    own = vars(app).get("url_rule_class")  # None: the class's, as almost always
    app.url_rule_class = BuildOnFirstUseRule
    try:
        app.register_blueprint(health_bp, url_prefix=url)
    finally:
        if own is None:
            del app.url_rule_class
        else:
            app.url_rule_class = own


#: The hook BuildOnFirstUseRule relies on exists in this Werkzeug (it is internal to it).
_BUILDERS_CAN_WAIT = callable(getattr(Rule, "_compile_builder", None))


class BuildOnFirstUseRule(Rule):
    """A :class:`~werkzeug.routing.Rule` whose URL builders are compiled when first used."""

    def _compile_builder(self, append_unknown: bool = True) -> Callable[..., tuple[str, str]]:
        compiled: Callable[..., tuple[str, str]] | None = None
        compile_now = super()._compile_builder

        def build(rule: Rule, *args: Any, **kwargs: Any) -> tuple[str, str]:
            nonlocal compiled
            if compiled is None:  # two threads may both compile: the same function either way
                compiled = compile_now(append_unknown)
            return compiled(rule, *args, **kwargs)

        return build
