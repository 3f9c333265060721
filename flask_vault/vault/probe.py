"""The server probe: ``GET /v1/sys/health`` on one address, without a token.

``VaultClient.health_check()`` probes the address in use; ``/health/vault`` probes it and,
when it does not answer, the other configured addresses (:func:`probe_addresses`). Both
read the same :class:`ServerProbe`. A probe never raises, whatever the server answers,
and never sends the token (``sys/health`` needs none).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import requests

from flask_vault.display import safe_text
from flask_vault.vault import tls
from flask_vault.vault.tls import TLSFacts
from flask_vault.vault.transport import VaultAdapter

#: ``/v1/sys/health`` status codes as Vault defines them (with standbyok/perfstandbyok unset).
SERVER_STATES = {
    200: "active",
    429: "standby",
    472: "dr-secondary",
    473: "performance-standby",
    501: "not-initialized",
    503: "sealed",
}
#: Server states that can serve this app's reads.
SERVING_STATES = frozenset({"active", "standby", "dr-secondary", "performance-standby"})


@dataclass(frozen=True)
class ServerProbe:
    """What ``GET /v1/sys/health`` said. ``state`` is one of SERVER_STATES' values,
    ``"unreachable"`` or ``"unexpected"``; ``output`` explains any state but a plain one."""

    state: str
    url: str
    status_code: int | None = None
    initialized: bool | None = None
    sealed: bool | None = None
    standby: bool | None = None
    version: str | None = None
    response_ms: float | None = None
    output: str | None = None

    @property
    def serving(self) -> bool:
        """The server can serve this app's reads (active or a standby)."""
        return self.state in SERVING_STATES

    @property
    def reachable(self) -> bool:
        return self.state != "unreachable"


def probe_address(template: VaultAdapter, url: str, tls_facts: TLSFacts | None = None) -> ServerProbe:
    """``GET /v1/sys/health`` on ``url`` with ``template``'s TLS, timeout and session, no token.

    A TLS failure is reported as ``unreachable`` with an output that says what failed
    (``tls_facts`` names the CA in use).
    """
    started = time.perf_counter()
    try:
        adapter = VaultAdapter.from_adapter(template)
        adapter.base_uri = url
        adapter.token = None  # sys/health needs no token: none is sent
        adapter.allowed_origins = template.allowed_origins
        # standbyok/perfstandbyok are not sent: the status code itself says active (200),
        # standby (429), DR secondary (472), performance standby (473), not initialized
        # (501) or sealed (503).
        response = adapter.raw_get("/v1/sys/health")
    except requests.RequestException as exc:
        failed = tls.failure(exc, url, "sys/health", tls_facts) if tls_facts is not None else None
        output = failed.message if failed else f"Vault at {url} is unreachable ({type(exc).__name__})."
        return ServerProbe("unreachable", url, output=output)
    except Exception as exc:
        return ServerProbe("unreachable", url, output=f"Vault at {url} could not be asked ({type(exc).__name__}).")
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    code = response.status_code if isinstance(getattr(response, "status_code", None), int) else None
    try:
        body = response.json()
    except Exception:
        body = None
    fields = _health_fields(body)
    state = _state(code, fields)
    standby = fields.get("standby")
    if state in ("standby", "performance-standby") and standby is None:
        standby = True
    return ServerProbe(
        state,
        url,
        status_code=code,
        initialized=fields.get("initialized"),
        sealed=fields.get("sealed"),
        standby=standby,
        version=fields.get("version"),
        response_ms=elapsed,
        output=_explain(state, url, code, body),
    )


def probe_addresses(template: VaultAdapter, urls: Sequence[str], tls_facts: TLSFacts | None = None) -> ServerProbe:
    """The first of ``urls`` (the one in use first) that answers, with a note about those that did not.

    Reads fail over to an address that answers on their own, so one unreachable address
    does not cut the app off from Vault.
    """
    unreachable: ServerProbe | None = None
    for url in urls:
        probe = probe_address(template, url, tls_facts)
        if probe.reachable:
            if unreachable is not None:
                note = f"{unreachable.output} {url} answered instead."
                probe = replace(probe, output=f"{note} {probe.output}" if probe.output else note)
            return probe
        unreachable = unreachable or probe
    if unreachable is None:
        raise ValueError("probe_addresses needs at least one address")
    if len(urls) > 1:
        return replace(unreachable, output=f"No configured Vault address answers ({', '.join(urls)}).")
    return unreachable


def _state(code: int | None, fields: dict[str, Any]) -> str:
    if fields.get("initialized") is False:  # an uninitialized server also says it is sealed
        return "not-initialized"
    if fields.get("sealed") is True:
        return "sealed"
    return SERVER_STATES.get(code or 0, "unexpected")


def _explain(state: str, url: str, code: int | None, body: Any) -> str | None:
    if state == "unexpected":
        return f"Vault at {url} answered HTTP {code} to /v1/sys/health, which is not a Vault health status."
    if not isinstance(body, dict):
        return f"Vault at {url} answered HTTP {code} with a health body that is not a JSON object."
    if state == "sealed":
        return f"Vault at {url} is sealed."
    if state == "not-initialized":
        return f"Vault at {url} is not initialized."
    return None


def _health_fields(body: Any) -> dict[str, Any]:
    """The fields of a sys/health body that have the expected types; others are dropped."""
    if not isinstance(body, dict):
        return {}
    fields: dict[str, Any] = {}
    for name in ("initialized", "sealed", "standby", "performance_standby"):
        if isinstance(body.get(name), bool):
            fields[name] = body[name]
    if fields.pop("performance_standby", False):
        fields["standby"] = True
    version = body.get("version")
    if isinstance(version, str) and len(version) <= 64:
        fields["version"] = safe_text(version, 64)
    return fields
