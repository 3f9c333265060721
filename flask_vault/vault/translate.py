"""hvac and ``requests`` failures as :mod:`flask_vault.errors`: one message that says what to do.

:func:`translate` is the only place that maps a transport failure or a Vault status to an
error class, so ``status``, ``url``, ``mount`` and ``path`` are set the same way whatever
made the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

import hvac.exceptions
import requests

from flask_vault.display import safe_text
from flask_vault.errors import (
    SecretNotFoundError,
    VaultAuthError,
    VaultConflictError,
    VaultError,
    VaultPermissionError,
    VaultUnavailableError,
)
from flask_vault.vault import tls
from flask_vault.vault.tls import TLSFacts


@dataclass(frozen=True)
class Need:
    """What a request needs from the token's policy: a capability on an API path.

    A KV request names it, so a refusal can say what the policy must grant: on KV v2 the
    API path is not the path users write (``secret/data/...`` for values,
    ``secret/metadata/...`` for names and versions).
    """

    #: Capabilities any one of which allows the request, e.g. ``("read",)`` or ``("create", "update")``.
    capabilities: tuple[str, ...]
    #: The path the policy must name, e.g. ``secret/data/store-erp/production/flask``.
    api_path: str
    #: The shipped policy that grants it: ``app`` or ``rotator``.
    policy: str = "app"

    def describe(self) -> str:
        return " or ".join(repr(c) for c in self.capabilities) + f" on {self.api_path}"


@dataclass(frozen=True)
class Where:
    """What an error message names: the address asked, the KV mount and the path."""

    url: str
    mount: str | None
    path: str
    #: The request timeout, for the message of a timed-out request.
    timeout: float
    #: False when the request carried no token (a 403 then means "log in", not "denied").
    has_token: bool
    #: ``VAULT_PATH_PREFIX`` and ``VAULT_ENVIRONMENT``: with the mount, they built ``path``.
    prefix: str | None = None
    environment: str | None = None
    #: What the policy must grant for this request (KV requests say it).
    need: Need | None = None
    #: The CA in use and the client certificate, for a TLS failure's message.
    tls: TLSFacts | None = None

    def fields(self) -> dict[str, Any]:
        return {"url": self.url, "mount": self.mount, "path": self.path}

    def settings(self) -> str:
        return path_settings(self.mount, self.prefix, self.environment)


def path_settings(mount: str | None, prefix: str | None, environment: str | None) -> str:
    """The settings a KV path is built from, as a message names them:
    ``VAULT_MOUNT_POINT='secret', VAULT_PATH_PREFIX='app' and VAULT_ENVIRONMENT='production'``."""
    shown = repr(prefix) if prefix else "unset"
    return f"VAULT_MOUNT_POINT={mount!r}, VAULT_PATH_PREFIX={shown} and VAULT_ENVIRONMENT={environment!r}"


def translate(exc: Exception, where: Where) -> VaultError:
    """``exc`` (from hvac or ``requests``) as a :class:`VaultError`; a VaultError is returned as is."""
    url, path = where.url, where.path
    if isinstance(exc, VaultError):
        return exc
    if isinstance(exc, requests.exceptions.ConnectionError):  # SSLError is one
        failed = tls.failure(exc, url, path, where.tls or TLSFacts("the default CA bundle"))
        if failed is not None:
            failed.mount = where.mount
            return failed  # not an outage: waiting does not fix a certificate
    if isinstance(exc, requests.Timeout):
        return VaultUnavailableError(
            f"Vault at {url} did not answer within {where.timeout:g}s ({path}). "
            "Check the server's load and VAULT_TIMEOUT.",
            **where.fields(),
        )
    if isinstance(exc, requests.ConnectionError):
        return VaultUnavailableError(
            f"Cannot connect to Vault at {url} ({path}). Is the server running, and is VAULT_URL "
            "(or VAULT_ADDR) right?",
            **where.fields(),
        )
    if isinstance(exc, requests.RequestException):
        return VaultUnavailableError(
            f"Request to Vault at {url} failed ({type(exc).__name__}) for {path}.", **where.fields()
        )
    if isinstance(exc, hvac.exceptions.VaultError):
        return translate_status(exc, where)
    return VaultError(f"Unexpected error talking to Vault at {url} for {path}: {type(exc).__name__}.", **where.fields())


def translate_status(exc: hvac.exceptions.VaultError, where: Where) -> VaultError:
    """An error answer of Vault's (hvac raised it) as the matching :class:`VaultError`."""
    url, mount, path = where.url, where.mount, where.path
    fields = where.fields()
    errors = vault_errors(exc) or "no detail"
    status: int | None = getattr(exc, "status_code", None)  # set by VaultAdapter
    if isinstance(exc, hvac.exceptions.InvalidPath):
        if "no handler for route" in errors:
            engine, setting = (mount, "VAULT_MOUNT_POINT") if where.need is not None else (path.split("/")[0], None)
            return VaultError(
                f"Vault at {url} has no secrets engine mounted at {engine!r} (it answered 'no handler for route' for"
                f" {path}). Check {setting or 'the setting that names that mount'}: `bao secrets list` (or"
                " `vault secrets list`) shows the mounts.",
                status=404,
                **fields,
            )
        built = f" ({where.settings()})" if where.need is not None else ""
        return SecretNotFoundError(
            f"No secret at {path} on {url}{built}. Check the name, VAULT_PATH_PREFIX and VAULT_ENVIRONMENT,"
            " or create it: `flask vault init` creates every secret the app maps, `flask vault put NAME` one.",
            status=404,
            **fields,
        )
    if isinstance(exc, hvac.exceptions.Forbidden):
        if not where.has_token:
            return VaultAuthError(
                f"Vault at {url} refused {path}: no token. Set VAULT_TOKEN or configure a login method.",
                status=403,
                **fields,
            )
        return VaultPermissionError(_denied(where), status=403, **fields)
    if isinstance(exc, hvac.exceptions.Unauthorized):
        return VaultAuthError(f"Vault at {url} rejected the login for {path}: {errors}.", status=401, **fields)
    if isinstance(exc, hvac.exceptions.InvalidRequest):
        if "check-and-set" in errors:
            return VaultConflictError(
                f"{path} changed while it was being updated (check-and-set version mismatch); nothing was "
                "written. Read it again and retry.",
                status=400,
                **fields,
            )
        return VaultError(f"Vault at {url} rejected the request for {path}: {errors}.", status=400, **fields)
    if isinstance(exc, hvac.exceptions.VaultDown):
        return VaultUnavailableError(f"Vault at {url} is sealed or down (HTTP 503) for {path}.", status=503, **fields)
    if isinstance(exc, hvac.exceptions.VaultNotInitialized):
        return VaultUnavailableError(f"Vault at {url} is not initialized (HTTP 501).", status=501, **fields)
    if isinstance(exc, hvac.exceptions.RateLimitExceeded):
        retry_after: float | None = getattr(exc, "retry_after", None)  # set by VaultAdapter
        wait = f"; it asks to wait {retry_after:g}s (Retry-After)" if retry_after is not None else ""
        limited = VaultUnavailableError(
            f"Vault at {url} is rate limiting this client (HTTP 429) for {path}{wait}.", status=429, **fields
        )
        limited.retry_after = retry_after
        return limited
    if isinstance(exc, (hvac.exceptions.InternalServerError, hvac.exceptions.BadGateway)):
        return VaultUnavailableError(
            f"Vault at {url} failed with HTTP {status} for {path}: {errors}.", status=status, **fields
        )
    if status == 412 or (status is not None and status >= 500):
        return VaultUnavailableError(f"Vault at {url} answered HTTP {status} for {path}.", status=status, **fields)
    return VaultError(f"Vault at {url} answered {status or 'an error'} for {path}: {errors}.", status=status, **fields)


def _denied(where: Where) -> str:
    """A 403 with a token: what the policy must grant, and where the path came from."""
    need = where.need
    if need is None:
        return (
            f"Permission denied for {where.path} on {where.url}: the token's policies do not allow this, or the"
            " token has expired or been revoked."
        )
    return (
        f"Permission denied for {where.path} on {where.url}: the token's policies must grant {need.describe()}"
        f" (the API path, built from {where.settings()}), or the token has expired or been revoked."
        f" `flask vault policy {need.policy}` prints a policy that grants it."
    )


def vault_errors(exc: Exception) -> str:
    """The ``errors`` of Vault's answer as one bounded, escaped line ("" when there are none).

    Vault's own words reach terminals and logs; an odd answer may hold anything there.
    """
    errors = getattr(exc, "errors", None)
    if not errors:
        return ""
    items = [errors] if isinstance(errors, (str, bytes)) or not isinstance(errors, (list, tuple)) else errors
    return safe_text("; ".join(str(e).strip() for e in items[:20]), 300)


def answer_part(response: object, *keys: str, kind: type | tuple[type, ...] = dict, path: str, url: str) -> Any:
    """``response[keys[0]][keys[1]]...`` of a kind; a VaultError naming ``path`` when Vault's answer lacks it.

    An answer of the wrong shape (a proxy's page, a server that is not Vault) then fails
    like any other Vault error, not with a KeyError.
    """
    value: Any = response
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise VaultError(
            f"Vault at {url} answered {path} without the expected {'.'.join(keys)}: is it Vault, and is the path"
            " right?",
            url=url,
            path=path,
        )
    return value


def parse_retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header as seconds to wait: delta-seconds or an HTTP date (None: absent or unreadable)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())
