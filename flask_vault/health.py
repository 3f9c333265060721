"""The ``/health/vault`` endpoint and the report behind it and ``flask vault status``."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, json

health_bp = Blueprint("vault_health", __name__)

HTTP_STATUS = {"pass": 200, "warn": 200, "fail": 503}


def build_report(state: Any) -> dict[str, Any]:
    """The health report of one app's Vault state. Holds no secret value or token."""
    server = state.client.health_check()
    server_ok = bool(server.get("reachable") and server.get("initialized") and not server.get("sealed"))
    login_ok = bool(server.get("authenticated"))
    status = "pass" if server_ok and login_ok else "fail"
    checks = {
        "vault:server": {
            "status": "pass" if server_ok else "fail",
            "url": server.get("url"),
            "initialized": server.get("initialized"),
            "sealed": server.get("sealed"),
            "standby": server.get("standby"),
            "version": server.get("version"),
            "response_ms": server.get("response_ms"),
        },
        "vault:login": {
            "status": "pass" if login_ok else "fail",
            "authenticated": login_ok,
            "token_ttl": server.get("token_ttl"),
            "renewable": server.get("renewable"),
        },
        "vault:secrets": {
            "status": "pass" if all(s.origin != "missing" for s in state.sources.values()) else "fail",
            "keys": {key: source.as_dict() for key, source in state.sources.items()},
        },
    }
    report: dict[str, Any] = {"status": status, "checks": checks}
    if server.get("error"):
        report["output"] = server["error"]
    return report


@health_bp.route("", methods=["GET"])
def vault_health() -> Response:
    report = build_report(current_app.extensions["vault"])
    return Response(
        json.dumps(report),
        status=HTTP_STATUS[report["status"]],
        mimetype="application/health+json",
        headers={"Cache-Control": "no-store"},
    )
