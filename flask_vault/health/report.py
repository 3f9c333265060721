"""``/health/vault``: can this app instance do its job, as far as Vault is concerned?

The answer is ``application/health+json`` in the shape of the IETF draft "Health Check
Response Format for HTTP APIs": a ``status`` (``pass``, ``warn`` or ``fail``) and
``checks`` keyed ``vault:server``, ``vault:login``, ``vault:secrets`` and ``vault:cache``,
each a list of objects with their own ``status`` (and, with details, ``componentType``,
``observedValue``, ``observedUnit``, ``time``, ``output`` and a few fields of their own).

The overall status is about the app, not about Vault: while every filled config key is
still served (fresh from Vault, from the cache within ``VAULT_STALE_MAX_AGE``, or from a
configured fallback), a sealed or unreachable Vault only makes it ``warn`` (HTTP 200),
so an outage of Vault does not pull every instance out of the load balancer at once. It
is ``fail`` (HTTP 503) when a needed secret has no usable value, a cached one has passed
the stale limit, or the login is refused (no token, token rejected or expired, a
re-login refused while Vault cannot confirm the token).

One probe (``GET /v1/sys/health`` and, when the server can answer, one token
``lookup-self``) is made per ``VAULT_HEALTH_CACHE_SECONDS`` window, however many requests
arrive; one probe runs at a time and the others get the previous report meanwhile.

By default the body holds only the statuses; the details need ``VAULT_HEALTH_DETAILS``
or ``Authorization: Bearer <VAULT_HEALTH_TOKEN>``. No body ever holds a token, an
accessor, a secret value, a secret_id or a policy.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import requests
from flask import Blueprint, Response, request

from flask_vault.errors import VaultAuthError, VaultError, VaultPermissionError, VaultUnavailableError
from flask_vault.mapping import keys_by_name
from flask_vault.state import get_state
from flask_vault.vault.transport import VaultAdapter

if TYPE_CHECKING:
    from flask_vault.client import VaultClient
    from flask_vault.state import VaultState

log = logging.getLogger(__name__)

health_bp = Blueprint("vault_health", __name__)

PASS, WARN, FAIL = "pass", "warn", "fail"
HTTP_STATUS = {PASS: 200, WARN: 200, FAIL: 503}
MEDIA_TYPE = "application/health+json"
CHECK_NAMES = ("vault:server", "vault:login", "vault:secrets", "vault:cache")

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
#: Login operation outcomes that mean Vault refused the credentials (not a transient error).
REFUSED_OUTCOMES = frozenset({"VaultAuthError", "VaultPermissionError", "VaultError"})
_RANK = {PASS: 0, WARN: 1, FAIL: 2}


def _worst(*statuses: str) -> str:
    return max(statuses, key=_RANK.__getitem__, default=PASS)


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- probing Vault ---------------------------------------------------------------------


@dataclass(frozen=True)
class ServerProbe:
    """What ``GET /v1/sys/health`` said. ``state`` is one of SERVER_STATES' values,
    ``"unreachable"`` or ``"unexpected"``."""

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
        return self.state in SERVING_STATES


@dataclass(frozen=True)
class LoginProbe:
    """What ``lookup-self`` said. ``state``: ok, refused, no-token, unverified or error."""

    state: str
    ttl: int | None = None
    renewable: bool | None = None
    output: str | None = None
    #: Policy names (never their bodies).
    policies: tuple[str, ...] | None = None


def probe_server(state: VaultState) -> ServerProbe:
    """``GET /v1/sys/health`` on the address in use; never raises, whatever the server answers.

    With several addresses (``VAULT_URL`` with commas) and the one in use unreachable, the
    others are asked in turn and the first that answers is reported: reads fail over to it
    on their own, so the app is not cut off from Vault.
    """
    client = state.client
    current = client.url
    urls = [current, *(u for u in client.settings.urls if u != current)]
    unreachable: ServerProbe | None = None
    for url in urls:
        probe = _probe_address(client, url)
        if probe.state != "unreachable":
            if url != current and unreachable is not None:
                note = f"{unreachable.output} {url} answered instead."
                probe = replace(probe, output=f"{note} {probe.output}" if probe.output else note)
            return probe
        unreachable = unreachable or probe
    assert unreachable is not None
    if len(urls) > 1:
        return replace(unreachable, output=f"No configured Vault address answers ({', '.join(urls)}).")
    return unreachable


def _probe_address(client: VaultClient, url: str) -> ServerProbe:
    started = time.perf_counter()
    try:
        main = client.hvac.adapter
        if not isinstance(main, VaultAdapter):  # pragma: no cover - the client always builds one
            raise TypeError("unexpected hvac adapter")
        adapter = VaultAdapter.from_adapter(main)
        adapter.base_uri = url
        adapter.token = None  # sys/health needs no token: none is sent
        adapter.allowed_origins = main.allowed_origins
        # standbyok/perfstandbyok are not sent: the status code itself says active (200),
        # standby (429), DR secondary (472), performance standby (473), not initialized
        # (501) or sealed (503).
        response = adapter.raw_get("/v1/sys/health")
    except requests.RequestException as exc:
        return ServerProbe("unreachable", url, output=f"Vault at {url} is unreachable ({type(exc).__name__}).")
    except Exception as exc:
        return ServerProbe("unreachable", url, output=f"Vault at {url} could not be asked ({type(exc).__name__}).")
    elapsed = round((time.perf_counter() - started) * 1000, 2)
    code = response.status_code if isinstance(getattr(response, "status_code", None), int) else None
    try:
        body = response.json()
    except Exception:
        body = None
    fields = _health_fields(body)
    server_state = SERVER_STATES.get(code or 0, "unexpected")
    if fields.get("initialized") is False:  # an uninitialized server also says it is sealed
        server_state = "not-initialized"
    elif fields.get("sealed") is True:
        server_state = "sealed"
    output = None
    if server_state == "unexpected":
        output = f"Vault at {url} answered HTTP {code} to /v1/sys/health, which is not a Vault health status."
    elif body is None or not isinstance(body, dict):
        output = f"Vault at {url} answered HTTP {code} with a health body that is not a JSON object."
    elif server_state == "sealed":
        output = f"Vault at {url} is sealed."
    elif server_state == "not-initialized":
        output = f"Vault at {url} is not initialized."
    standby = fields.get("standby")
    if server_state in ("standby", "performance-standby") and standby is None:
        standby = True
    return ServerProbe(
        server_state,
        url,
        status_code=code,
        initialized=fields.get("initialized"),
        sealed=fields.get("sealed"),
        standby=standby,
        version=fields.get("version"),
        response_ms=elapsed,
        output=output,
    )


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
        fields["version"] = version
    return fields


def probe_login(state: VaultState) -> LoginProbe:
    """One ``lookup-self`` with the app's token; never raises."""
    client = state.client
    try:
        client.keeper.before_call()  # auth: a process that has not logged in yet (a new worker) does now
    except VaultUnavailableError as exc:
        return LoginProbe("unverified", output=exc.message)
    except VaultError as exc:
        return LoginProbe("refused", output=exc.message)
    if not client.token:
        return LoginProbe("no-token", output="No Vault token: set VAULT_TOKEN or configure a login method.")
    try:
        info = client.lookup_token()
    except VaultPermissionError as exc:
        return _prove_by_reading(state, exc)
    except VaultAuthError as exc:
        return LoginProbe("refused", output=f"Vault refused the app's token ({type(exc).__name__}).")
    except VaultUnavailableError as exc:
        return LoginProbe("unverified", output=exc.message)
    except VaultError as exc:
        return LoginProbe("error", output=exc.message)
    except Exception as exc:
        return LoginProbe("error", output=f"Token lookup failed ({type(exc).__name__}).")
    ttl = info.get("ttl")
    renewable = info.get("renewable")
    policies = info.get("policies")
    return LoginProbe(
        "ok",
        ttl=ttl if isinstance(ttl, int) and not isinstance(ttl, bool) else None,
        renewable=renewable if isinstance(renewable, bool) else None,
        policies=tuple(sorted(str(p) for p in policies)) if isinstance(policies, list) else None,
    )


def _prove_by_reading(state: VaultState, lookup_error: VaultPermissionError) -> LoginProbe:
    """lookup-self needs the ``default`` policy; a token without it may still read its secrets.

    Vault answers 403 both for a dead token and for one that may not look itself up, so
    one uncached read of a mapped secret tells them apart.
    """
    for name in keys_by_name(state.settings.secrets):
        try:
            entry = state.client.read(name, use_cache=False)
        except VaultError:
            break
        return LoginProbe(
            "ok",
            output=f"The token may not look itself up (no 'default' policy), but it read {entry.path}.",
        )
    return LoginProbe("refused", output=f"Vault refused the app's token ({type(lookup_error).__name__}).")


# -- the report ------------------------------------------------------------------------


@dataclass
class HealthReport:
    """One evaluated report; ``checks`` holds the full details."""

    status: str
    checks: dict[str, list[dict[str, Any]]]
    output: str | None = None
    time: str = field(default_factory=_now_iso)
    _bodies: dict[bool, bytes] = field(default_factory=dict, repr=False)

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.status]

    def check_status(self, name: str) -> str:
        return _worst(*(item.get("status", PASS) for item in self.checks.get(name, [])))

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


def evaluate(
    state: VaultState, server: ServerProbe, login: LoginProbe | None, *, when: str | None = None
) -> HealthReport:
    """Combine the probe with the app's own state into a report (see the module docstring)."""
    when = when or _now_iso()
    client = state.client

    # Server.
    server_item: dict[str, Any] = {
        "componentId": server.url,
        "componentType": "datastore",
        "status": PASS if server.serving else FAIL,
        "state": server.state,
        "initialized": server.initialized,
        "sealed": server.sealed,
        "standby": server.standby,
        "version": server.version,
        "observedValue": server.response_ms,
        "observedUnit": "ms" if server.response_ms is not None else None,
        "time": when,
    }
    if server.output:
        server_item["output"] = server.output

    # Login.
    login_item = _login_item(state, server, login, when)
    vault_usable = server.serving and login_item["status"] != FAIL and login is not None and login.state == "ok"

    # Secrets.
    secret_items = [_secret_item(state, key, vault_usable, when) for key in list(state.sources)]
    if not secret_items:
        secret_items = [{"componentType": "component", "status": PASS, "observedValue": 0, "time": when}]

    # Cache.
    cache = client.cache
    stats = cache.stats.as_dict()
    outage_since = cache.outage_since
    in_outage = outage_since is not None and not vault_usable
    cache_item: dict[str, Any] = {
        "componentType": "component",
        "status": WARN if in_outage else PASS,
        "hits": stats.get("hits", 0),
        "misses": stats.get("misses", 0),
        "staleServes": stats.get("stale_serves", 0),
        "refreshFailures": stats.get("refresh_failures", 0),
        "reads": stats.get("reads", 0),
        "entries": len(cache),
        "time": when,
    }
    if in_outage and outage_since is not None:
        cache_item["outageSeconds"] = round(max(0.0, cache.clock() - outage_since), 1)
        cache_item["output"] = "Vault is unavailable; cached secrets are served within VAULT_STALE_MAX_AGE."

    checks = {
        "vault:server": [_drop_none(server_item)],
        "vault:login": [_drop_none(login_item)],
        "vault:secrets": [_drop_none(item) for item in secret_items],
        "vault:cache": [_drop_none(cache_item)],
    }
    secrets_status = _worst(*(item["status"] for item in secret_items))
    login_status = login_item["status"]
    if FAIL in (secrets_status, login_status):
        status = FAIL
    else:
        status = _worst(server_item["status"], login_status, secrets_status, cache_item["status"])
        if status == FAIL:  # only the server fails: every secret is still served
            status = WARN
    output = _summary(status, server, login_item, secret_items)
    return HealthReport(status, checks, output=output, time=when)


def _login_item(state: VaultState, server: ServerProbe, login: LoginProbe | None, when: str) -> dict[str, Any]:
    client, settings = state.client, state.settings
    item: dict[str, Any] = {
        "componentType": "component",
        "method": getattr(getattr(client, "keeper", None), "method", None) or settings.auth_method or "token",
        "authenticated": False,
        "time": when,
    }
    last_login = client.trail.last_login_outcome
    relogin_refused = last_login in REFUSED_OUTCOMES
    token = client.token
    if login is not None and login.state == "ok":
        item.update(status=PASS, authenticated=True, renewable=login.renewable)
        if login.policies is not None:
            item["policies"] = list(login.policies)
        if login.ttl:
            item.update(observedValue=login.ttl, observedUnit="s")
        elif login.ttl == 0:
            item["expires"] = False
        if relogin_refused:
            item.update(status=WARN, output="The token works, but the last login attempt was refused.")
        return item
    if login is not None and login.state in ("refused", "no-token"):
        item.update(status=FAIL, output=login.output)
        return item
    # Vault could not be asked (down, sealed) or gave an unexpected answer: judge what is known.
    expired = False
    if token:
        known, expires_at = client.trail.tags.expires_at(token)
        if known and expires_at is not None:
            left = expires_at - client.trail.tags.clock()
            expired = left <= 0
            item.update(observedValue=max(0, int(left)), observedUnit="s")
    if not token:
        item.update(status=FAIL, output="No Vault token: set VAULT_TOKEN or configure a login method.")
    elif expired:
        item.update(status=FAIL, output="The token has expired and Vault cannot be asked for a new one.")
    elif relogin_refused:
        item.update(status=FAIL, output="The last login attempt was refused.")
    else:
        reason = login.output if login is not None else f"Vault is {server.state}."
        item.update(status=WARN, authenticated=None, output=f"The token could not be verified: {reason}")
    return item


def _secret_item(state: VaultState, key: str, vault_usable: bool, when: str) -> dict[str, Any]:
    source = state.sources[key]
    cache, settings = state.client.cache, state.settings
    item: dict[str, Any] = {
        "componentId": key,
        "componentType": "component",
        "origin": source.origin,
        "path": source.path,
        "field": source.field,
        "version": source.version,
        "time": when,
    }
    if source.origin in ("env", "config"):
        where = f"the environment variable {source.env_var}" if source.origin == "env" else "app.config"
        item.update(status=WARN, output=f"Served from {where}: Vault did not provide it.", envVar=source.env_var)
        return item
    if source.origin != "vault":
        item.update(status=FAIL, output="No value: Vault did not provide it and no fallback is set.")
        return item
    entry = cache.peek(source.path) if source.path else None
    if entry is None:
        if vault_usable:
            item["status"] = PASS
        else:
            # The cache drops an entry once it is older than the stale limit.
            item.update(
                origin="stale-cache",
                status=FAIL if settings.fail_closed else WARN,
                output=f"No cached copy younger than VAULT_STALE_MAX_AGE ({settings.stale_max_age:g}s), and Vault"
                " cannot be asked.",
            )
        return item
    age = max(0.0, cache.age(entry))
    item.update(version=entry.version, observedValue=round(age, 1), observedUnit="s")
    if vault_usable or age <= cache.ttl:
        item["status"] = PASS
    elif settings.stale_max_age > 0 and age <= settings.stale_max_age:
        item.update(origin="stale-cache", status=WARN, output="Served from the cache while Vault is unavailable.")
    else:
        item.update(
            origin="stale-cache",
            status=FAIL if settings.fail_closed else WARN,
            output=f"The cached copy is older than VAULT_STALE_MAX_AGE ({settings.stale_max_age:g}s).",
        )
    return item


def _summary(status: str, server: ServerProbe, login: dict[str, Any], secrets: list[dict[str, Any]]) -> str | None:
    if status == PASS:
        return None
    failing = [str(item.get("componentId")) for item in secrets if item["status"] == FAIL]
    if failing:
        return "No usable value for " + ", ".join(failing) + "."
    if login["status"] == FAIL:
        return str(login.get("output") or "The login is refused.")
    if not server.serving:
        return f"Vault is {server.state}; every filled secret is still served."
    return "Degraded: see the checks."


def _drop_none(item: dict[str, Any]) -> dict[str, Any]:
    """The item without empty fields, ``status`` first (easier to read in a terminal or log)."""
    return {"status": item["status"], **{k: v for k, v in item.items() if v is not None and k != "status"}}


def error_report(exc: BaseException) -> HealthReport:
    """The report when building one failed unexpectedly: fail, naming only the error class."""
    when = _now_iso()
    item = {"status": FAIL, "output": f"The health check failed ({type(exc).__name__}).", "time": when}
    return HealthReport(FAIL, {name: [dict(item)] for name in CHECK_NAMES}, output=item["output"], time=when)


# -- the cached probe ------------------------------------------------------------------


class HealthMonitor:
    """One app's health probe, cached for ``VAULT_HEALTH_CACHE_SECONDS``; thread-safe."""

    def __init__(self, state: VaultState, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.clock = clock
        self.window = state.settings.health_cache_seconds
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
        """The current report: cached within the window, else probed (one probe at a time).

        While a probe is running, other callers get the previous report at once rather
        than waiting on a slow Vault; only the very first callers wait.
        """
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
            server = probe_server(self.state)
            login = probe_login(self.state) if server.serving else None
            return evaluate(self.state, server, login)
        except Exception as exc:  # never let a surprise escape into the view
            log.error("The Vault health check failed unexpectedly (%s).", type(exc).__name__)
            return error_report(exc)


def get_monitor(state: VaultState) -> HealthMonitor:
    """The app's monitor (created by ``init_app``)."""
    if state.health is None:
        state.health = HealthMonitor(state)
    return state.health


# -- the view --------------------------------------------------------------------------


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
        fallback = error_report(exc)
        details, private, body, status = False, False, fallback.body(details=False), fallback.http_status
    max_age = max(0, int(state.settings.health_cache_seconds))
    headers = {"Cache-Control": f"private, max-age={max_age}" if private else f"max-age={max_age}"}
    if state.settings.health_token:
        headers["Vary"] = "Authorization"
    return Response(body, status=status, mimetype=MEDIA_TYPE, headers=headers)


@health_bp.route("", methods=["GET"])
def vault_health() -> Response:
    return render(get_state())


# -- for people ------------------------------------------------------------------------


def format_report(report: HealthReport) -> str:
    """The report as text for a terminal (``flask vault status``)."""
    lines = [f"status: {report.status}" + (f" - {report.output}" if report.output else "")]
    for name in CHECK_NAMES:
        items = report.checks.get(name, [])
        label = name[len("vault:") :]
        if name == "vault:secrets" and any("componentId" in item for item in items):
            lines.append(f"{label:<8} {report.check_status(name)}")
            lines.extend("  " + _describe(name, item) for item in items)
        else:
            lines.extend(f"{label:<8} " + _describe(name, item) for item in items)
    return "\n".join(lines)


def _describe(name: str, item: dict[str, Any]) -> str:
    status = str(item.get("status", ""))
    if name == "vault:server":
        parts = [f"{item.get('componentId', '?')}", f"state={item.get('state')}"]
        for key in ("initialized", "sealed", "standby", "version"):
            if key in item:
                parts.append(f"{key}={item[key]}")
        if "observedValue" in item:
            parts.append(f"rtt={item['observedValue']}ms")
    elif name == "vault:login":
        parts = [f"method={item.get('method')}", f"authenticated={item.get('authenticated', 'unknown')}"]
        if "observedValue" in item:
            parts.append(f"ttl_left={_duration(item['observedValue'])}")
        elif item.get("expires") is False:
            parts.append("ttl_left=never expires")
        if "renewable" in item:
            parts.append(f"renewable={item['renewable']}")
        if "policies" in item:
            parts.append(f"policies={','.join(item['policies']) or '-'}")
    elif name == "vault:secrets":
        if "componentId" not in item:
            return f"{status} (no filled config keys)"
        where = (item.get("path") or "") + (f"#{item['field']}" if item.get("field") else "")
        if item.get("envVar"):
            where = f"${item['envVar']}"
        parts = [f"{item['componentId']}:", str(item.get("origin")), where]
        if item.get("version") is not None:
            parts.append(f"v{item['version']}")
        if "observedValue" in item:
            parts.append(f"age {_duration(item['observedValue'])}")
    else:
        parts = [
            f"{label}={item.get(key, 0)}"
            for key, label in (
                ("hits", "hits"),
                ("misses", "misses"),
                ("staleServes", "stale_serves"),
                ("refreshFailures", "refresh_failures"),
            )
        ]
        if "outageSeconds" in item:
            parts.append(f"outage {_duration(item['outageSeconds'])}")
    text = f"{status:<4} " + " ".join(p for p in parts if p)
    if item.get("output"):
        text += f" - {item['output']}"
    return text


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return str(seconds)
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds % 1 else f"{int(seconds)}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{secs}s"
