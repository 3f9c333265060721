"""hvac and ``requests`` failures as :mod:`flask_vault.errors`: one message that says what to do.

:func:`translate` is the only place that maps a transport failure or a Vault status to an
error class, so ``status``, ``url``, ``mount`` and ``path`` are set the same way whatever
made the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import hvac.exceptions
import requests

from flask_vault.errors import (
    SecretNotFoundError,
    VaultAuthError,
    VaultConflictError,
    VaultError,
    VaultPermissionError,
    VaultUnavailableError,
)


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

    def fields(self) -> dict[str, Any]:
        return {"url": self.url, "mount": self.mount, "path": self.path}


def translate(exc: Exception, where: Where) -> VaultError:
    """``exc`` (from hvac or ``requests``) as a :class:`VaultError`; a VaultError is returned as is."""
    url, path = where.url, where.path
    if isinstance(exc, VaultError):
        return exc
    if isinstance(exc, requests.exceptions.SSLError):
        return VaultUnavailableError(
            f"TLS verification failed for Vault at {url} ({path}). Set VAULT_CACERT to the CA bundle that "
            "signed the server's certificate (VAULT_SKIP_VERIFY=true only for local experiments).",
            **where.fields(),
        )
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
    errors = "; ".join(str(e) for e in (exc.errors or []))[:300] or "no detail"
    status: int | None = getattr(exc, "status_code", None)  # set by VaultAdapter
    if isinstance(exc, hvac.exceptions.InvalidPath):
        return SecretNotFoundError(
            f"No secret at {path} on {url} (mount {mount!r}). Check the name, VAULT_PATH_PREFIX and "
            "VAULT_ENVIRONMENT, or create it with `flask vault put`.",
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
        return VaultPermissionError(
            f"Permission denied for {path} on {url}: the token's policies do not allow this, or the token "
            "has expired or been revoked.",
            status=403,
            **fields,
        )
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
        return VaultUnavailableError(
            f"Vault at {url} is rate limiting or a standby (HTTP 429) for {path}.", status=429, **fields
        )
    if isinstance(exc, (hvac.exceptions.InternalServerError, hvac.exceptions.BadGateway)):
        return VaultUnavailableError(
            f"Vault at {url} failed with HTTP {status} for {path}: {errors}.", status=status, **fields
        )
    if status == 412 or (status is not None and status >= 500):
        return VaultUnavailableError(f"Vault at {url} answered HTTP {status} for {path}.", status=status, **fields)
    return VaultError(f"Vault at {url} answered {status or 'an error'} for {path}: {errors}.", status=status, **fields)
