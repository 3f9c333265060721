"""One exception hierarchy for everything flask-vault raises.

Messages name the Vault URL, mount and path involved and say what to do next.
They never contain a token or a secret value: callers pass only locations.
"""

from __future__ import annotations


class VaultError(Exception):
    """Base class for every error flask-vault raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        mount: str | None = None,
        path: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.mount = mount
        self.path = path
        self.status = status

    def __str__(self) -> str:
        return self.message


class VaultConfigError(VaultError, ValueError):
    """A setting or argument is missing or malformed; nothing was sent to Vault."""

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class VaultUnavailableError(VaultError):
    """Vault could not be reached, timed out, is sealed, is rate limiting (429) or answered with a server error."""

    #: Seconds Vault asked the client to wait before asking again (a 429's ``Retry-After``), when it said.
    retry_after: float | None = None


class VaultTLSError(VaultError):
    """The TLS connection to Vault failed: the certificate did not verify (unknown CA, host-name
    mismatch, expired), the server refused the client certificate, or it does not speak TLS.

    Raised at once: waiting does not fix a certificate, so it is neither retried nor waited
    for at start-up like :class:`VaultUnavailableError`. ``reason`` is one of
    ``"unknown-ca"``, ``"hostname-mismatch"``, ``"expired"``, ``"not-yet-valid"``,
    ``"not-tls"``, ``"client-certificate"`` or ``"other"``; ``ca`` names the CA in use.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str = "other",
        ca: str | None = None,
        url: str | None = None,
        mount: str | None = None,
        path: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message, url=url, mount=mount, path=path, status=status)
        self.reason = reason
        self.ca = ca


class VaultAuthError(VaultError):
    """Logging in failed, or the token is missing, expired or revoked."""


class VaultPermissionError(VaultError):
    """The token is valid but its policies do not allow the operation (HTTP 403)."""


class SecretNotFoundError(VaultError, KeyError):
    """The secret, its version or the requested field does not exist."""

    def __str__(self) -> str:
        # KeyError would otherwise render the message with quotes around it.
        return self.message


class VaultConflictError(VaultError):
    """A check-and-set write lost against a concurrent writer; nothing was changed."""


class BackupError(VaultError):
    """A backup file cannot be written, or is truncated, edited or from another environment."""

    def __init__(self, message: str, *, file: str | None = None, path: str | None = None) -> None:
        super().__init__(message, path=path)
        self.file = file


class DatabaseRotationError(VaultError):
    """The database half of a paired password change failed; the message says what state is left."""
