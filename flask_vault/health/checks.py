"""The health checks: each a small function from a :class:`HealthContext` to an :class:`Outcome`.

:data:`CHECKS` lists them in the order they appear in the report, from Vault towards the
app: ``vault:server``, ``vault:login``, ``vault:secrets``, ``vault:cache`` and, for an app
with database engines attached, ``vault:database`` and (with a database secrets engine
role) ``vault:lease``. Their statuses are combined by the one rule in
:mod:`flask_vault.health.report`.

Adding a check is one function here and one entry in :data:`CHECKS`::

    def transit_check(context: HealthContext) -> Outcome:
        ok = ...  # read what the check is about from context.state
        item = {"status": PASS if ok else FAIL, "componentType": "component", "time": context.time}
        return Outcome([item], summary=None if ok else "The backup key is gone.")

    CHECKS = [..., HealthCheck("vault:transit", transit_check)]

A check reads the probe made for this report (``context.server``, ``context.login``) and
the app's own state; it sends no request of its own (the probe is cached for
``VAULT_HEALTH_CACHE_SECONDS``; ``vault:lease`` reads what the renewal spine knows; the
one exception, ``vault:database``, makes at most one read and one database login per
window, and only when an app has database engines attached),
returns items with a ``status`` and the draft's fields
where they fit (``componentId``, ``componentType``, ``observedValue``, ``observedUnit``,
``time``, ``output``), fields set to None are left out, and it gives a ``summary`` only
when it fails (or, capped at ``warn``, degrades) the report. No item may hold a token,
an accessor, a secret value or a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flask_vault.health.probe import NO_TOKEN, LoginProbe
from flask_vault.health.report import FAIL, PASS, WARN, HealthCheck, Item, Outcome

if TYPE_CHECKING:
    from flask_vault.state import VaultState
    from flask_vault.vault.probe import ServerProbe

#: Outcomes of the last login (the keeper's ``last_login``) that mean Vault refused the
#: credentials, not a transient error.
REFUSED_OUTCOMES = frozenset({"VaultAuthError", "VaultPermissionError", "VaultError"})


@dataclass(frozen=True)
class HealthContext:
    """What the checks of one report read: the app's state and this window's probe."""

    state: VaultState
    server: ServerProbe
    #: The token lookup; None when the server could not serve, so it was not asked.
    login: LoginProbe | None
    #: When the probe was made (ISO 8601, UTC), the ``time`` of every item.
    time: str

    @property
    def vault_usable(self) -> bool:
        """Vault serves reads and confirmed the token: any secret can be read again now."""
        return self.server.serving and self.login is not None and self.login.state == "ok"


def server_check(context: HealthContext) -> Outcome:
    """``vault:server``: the sys/health probe; pass while the server can serve reads."""
    server = context.server
    item: Item = {
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
        "time": context.time,
        "output": server.output,
    }
    summary = None if server.serving else f"Vault is {server.state}; every filled secret is still served."
    return Outcome([item], summary)


def login_check(context: HealthContext) -> Outcome:
    """``vault:login``: the method, and whether the token works (from the lookup, else the keeper)."""
    keeper = context.state.client.keeper
    token = keeper.status()
    login = context.login
    item: Item = {
        "componentType": "component",
        "method": keeper.method,
        "authenticated": False,
        "time": context.time,
    }
    relogin_refused = token.get("last_login") in REFUSED_OUTCOMES
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
        return Outcome([item])
    if login is not None and login.state in ("refused", "no-token"):
        item.update(status=FAIL, output=login.output)
        return Outcome([item], login.output or "The login is refused.")
    return _login_unverified(context, item, token, relogin_refused)


def _login_unverified(context: HealthContext, item: Item, token: dict[str, Any], relogin_refused: bool) -> Outcome:
    """Vault could not be asked (down, sealed) or gave an odd answer: judge what the keeper knows."""
    expires_in = token.get("expires_in")
    expired = False
    if token.get("logged_in") and isinstance(expires_in, (int, float)):
        expired = expires_in <= 0
        item.update(observedValue=max(0, int(expires_in)), observedUnit="s")
    if not token.get("logged_in"):
        # A login method that has not reached Vault yet is configured all the same: say what stops it.
        unreached = token.get("last_login") == "VaultUnavailableError"
        output = f"Not logged in: Vault is {context.server.state}." if unreached else NO_TOKEN
        item.update(status=FAIL, output=output)
    elif expired:
        item.update(status=FAIL, output="The token has expired and Vault cannot be asked for a new one.")
    elif relogin_refused:
        item.update(status=FAIL, output="The last login attempt was refused.")
    else:
        login = context.login
        reason = login.output if login is not None else f"Vault is {context.server.state}."
        item.update(status=WARN, authenticated=None, output=f"The token could not be verified: {reason}")
        return Outcome([item])
    return Outcome([item], item["output"])


def secrets_check(context: HealthContext) -> Outcome:
    """``vault:secrets``: one item per filled config key; fail when one has no usable value."""
    items = [_secret_item(context, key) for key in list(context.state.sources)]
    if not items:
        return Outcome([{"componentType": "component", "status": PASS, "observedValue": 0, "time": context.time}])
    failing = [str(item["componentId"]) for item in items if item["status"] == FAIL]
    return Outcome(items, "No usable value for " + ", ".join(failing) + "." if failing else None)


def _secret_item(context: HealthContext, key: str) -> Item:
    state = context.state
    source = state.sources[key]
    cache, settings = state.client.cache, state.settings
    item: Item = {
        "componentId": key,
        "componentType": "component",
        "origin": source.origin,
        "path": source.path,
        "field": source.field,
        "version": source.version,
        "time": context.time,
    }
    if source.origin in ("env", "config"):
        where = f"the environment variable {source.env_var}" if source.origin == "env" else "app.config"
        item.update(status=WARN, output=f"Served from {where}: Vault did not provide it.", envVar=source.env_var)
        return item
    if source.origin != "vault":
        reason = source.vault_error or "Vault did not provide it and no fallback is set."
        item.update(status=FAIL, output=f"No value: {reason}")
        return item
    if source.lease is not None:
        item.update(lease=source.lease, status=PASS)  # its login is the lease's: vault:lease judges it
        return item
    not_served = FAIL if settings.fail_closed else WARN
    entry = cache.peek(source.path) if source.path else None
    if entry is None:
        if context.vault_usable:
            item["status"] = PASS
        else:
            # The cache drops an entry once it is older than the stale limit.
            item.update(
                origin="stale-cache",
                status=not_served,
                output=f"No cached copy younger than VAULT_STALE_MAX_AGE ({settings.stale_max_age:g}s), and Vault"
                " cannot be asked.",
            )
        return item
    age = max(0.0, cache.age(entry))
    item.update(version=entry.version, observedValue=round(age, 1), observedUnit="s")
    if context.vault_usable or age <= cache.ttl:
        item["status"] = PASS
    elif settings.stale_max_age > 0 and age <= settings.stale_max_age:
        item.update(origin="stale-cache", status=WARN, output="Served from the cache while Vault is unavailable.")
    else:
        item.update(
            origin="stale-cache",
            status=not_served,
            output=f"The cached copy is older than VAULT_STALE_MAX_AGE ({settings.stale_max_age:g}s).",
        )
    return item


def cache_check(context: HealthContext) -> Outcome:
    """``vault:cache``: the cache's counters; warn while it serves through an outage."""
    cache = context.state.client.cache
    stats = cache.stats.as_dict()
    outage_since = cache.outage_since
    in_outage = outage_since is not None and not context.vault_usable
    item: Item = {
        "componentType": "component",
        "status": WARN if in_outage else PASS,
        "hits": stats.get("hits", 0),
        "misses": stats.get("misses", 0),
        "staleServes": stats.get("stale_serves", 0),
        "refreshFailures": stats.get("refresh_failures", 0),
        "reads": stats.get("reads", 0),
        "entries": len(cache),
        "time": context.time,
    }
    if in_outage and outage_since is not None:
        item["outageSeconds"] = round(max(0.0, cache.clock() - outage_since), 1)
        item["output"] = (
            "Vault is unavailable; cached secrets are served within VAULT_STALE_MAX_AGE."
            if len(cache)
            else "Vault is unavailable and this process has no cached secret to serve."
        )
    return Outcome([item])


def database_check(context: HealthContext) -> Outcome:
    """``vault:database``: one item per database login taken at connect time (none: no check).

    Fail when the database refuses the credentials Vault holds even after they were read
    again. While Vault answers, this window's check reads the secret through (at most once
    a second) and, when its credentials are not the ones known to work, opens one database
    connection to try them: a wrong password written to Vault shows here within one window.
    """
    databases = context.state.databases
    items: list[Item] = []
    for login in databases.logins if databases is not None else []:
        if not login.engines:
            continue  # a database role's login with no engine yet: vault:lease shows it
        status = login.verify() if context.vault_usable else login.status
        provider = login.provider
        item: Item = {
            "componentId": provider.key,
            "componentType": "datastore",
            "status": FAIL if status.state == "refused" else PASS,
            "state": status.state,
            "path": provider.path,
            "version": status.version,
            "refusals": status.refusals,
            "time": context.time,
        }
        if status.state == "refused":
            item["output"] = (
                f"The database refuses the credentials in Vault for {provider.key} at {provider.path} (version"
                f" {status.version}), even after reading them again."
                + (" New connections use the previous credentials." if status.using_previous else "")
            )
        items.append(item)
    failing = [item["output"] for item in items if item["status"] == FAIL]
    return Outcome(items, failing[0] if failing else None)


def lease_check(context: HealthContext) -> Outcome:
    """``vault:lease``: one item per database secrets engine role in use (none: no check).

    Shows the role, the user, the TTL left, the generation and the last switch. Warn when
    the lease has less than its warning threshold left (``VAULT_DATABASE_WARN_TTL``, by
    default a quarter of its TTL: renewing it has failed for a while, Vault is likely
    down); fail once it has expired, or when there are no credentials at all (pass when
    this process released them after a fork, unused: the next connection gets new ones).
    """
    databases = context.state.databases
    items = [_lease_item(context, provider.status()) for provider in (databases.leases if databases else [])]
    failing = [str(item["output"]) for item in items if item["status"] == FAIL]
    warning = [str(item["output"]) for item in items if item["status"] == WARN]
    summaries = failing or warning
    return Outcome(items, summaries[0] if summaries else None)


def _lease_item(context: HealthContext, lease: dict[str, Any]) -> Item:
    expires_in, warn_below, path = lease["expires_in"], lease["warn_below"], lease["path"]
    item: Item = {
        "componentId": lease["key"],
        "componentType": "datastore",
        "role": lease["role"],
        "path": path,
        "static": lease["static"],
        "username": lease["username"],
        "generation": lease["generation"],
        "lastSwitch": lease["last_switch"],
        "renewals": lease["renewals"],
        "switches": lease["switches"],
        "failures": lease["failures"],
        "time": context.time,
    }
    if expires_in is not None:
        item.update(observedValue=round(max(0.0, expires_in), 1), observedUnit="s")
    elif lease["next_rotation_in"] is not None:
        item["nextRotationSeconds"] = round(lease["next_rotation_in"], 1)
    why = f" ({lease['last_error']})" if lease["last_error"] else ""
    if not lease["generation"] and lease["released"]:
        item.update(
            status=PASS,
            released=True,
            output=f"Released the lease {path} after this process forked without using it; the next"
            " database connection gets new credentials.",
        )
    elif not lease["generation"]:
        source = context.state.sources.get(lease["key"])
        fallback = source is not None and source.origin in ("env", "config")
        item.update(
            status=WARN if fallback else FAIL,
            output=f"No database credentials from {path}{why}."
            + (" The configured fallback is used." if fallback else " New database logins fail."),
        )
    elif expires_in is not None and expires_in <= 0:
        item.update(
            status=FAIL,
            output=f"The database lease {path} (user {lease['username']}) expired {-expires_in:.0f}s ago and no"
            f" new credentials could be had{why}. Open connections keep working; new logins may be refused."
            " Bring Vault back: new credentials follow at once.",
        )
    elif expires_in is not None and warn_below is not None and expires_in < warn_below:
        item.update(
            status=WARN,
            output=f"The database lease {path} (user {lease['username']}) expires in {expires_in:.0f}s and could"
            f" not be renewed{why}. New connections use it until then.",
        )
    else:
        item["status"] = PASS
    return item


#: The checks of every report, in the order they appear in it.
CHECKS: list[HealthCheck[HealthContext]] = [
    # A sealed or unreachable server only degrades the app while the secrets are served.
    HealthCheck("vault:server", server_check, at_worst=WARN),
    HealthCheck("vault:login", login_check),
    HealthCheck("vault:secrets", secrets_check),
    HealthCheck("vault:cache", cache_check),
    HealthCheck("vault:database", database_check),
    HealthCheck("vault:lease", lease_check),
]
