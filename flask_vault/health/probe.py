"""What one health window asks Vault: the server probe and, if it can serve, one token lookup.

The server probe is :mod:`flask_vault.vault.probe`'s (the one ``VaultClient.health_check()``
uses), over every configured address. The login probe is one ``lookup-self`` with the
app's token. Neither ever raises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask_vault.errors import VaultAuthError, VaultError, VaultPermissionError, VaultUnavailableError
from flask_vault.mapping import keys_by_name
from flask_vault.vault.probe import ServerProbe, probe_addresses
from flask_vault.vault.transport import VaultAdapter

if TYPE_CHECKING:
    from flask_vault.state import VaultState


NO_TOKEN = "No Vault token: set VAULT_TOKEN or configure a login method."


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
    """``GET /v1/sys/health`` on the address in use, then on the others until one answers."""
    client = state.client
    adapter = client.hvac.adapter
    if not isinstance(adapter, VaultAdapter):  # pragma: no cover - the client always builds one
        return ServerProbe("unreachable", client.url, output=f"Vault at {client.url} could not be asked (TypeError).")
    current = client.url
    return probe_addresses(adapter, [current, *(u for u in client.settings.urls if u != current)], client.transport.tls)


def probe_login(state: VaultState) -> LoginProbe:
    """One ``lookup-self`` with the app's token; never raises."""
    client = state.client
    try:
        client.keeper.before_call()  # a process that has not logged in yet (a new worker) does now
    except VaultUnavailableError as exc:
        return LoginProbe("unverified", output=exc.message)
    except VaultError as exc:
        return LoginProbe("refused", output=exc.message)
    if not client.keeper.status().get("logged_in"):
        return LoginProbe("no-token", output=NO_TOKEN)
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
