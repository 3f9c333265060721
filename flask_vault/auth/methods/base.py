"""What every login method shares: the :class:`Authenticator` base, :class:`LoginResult`, the login request.

A method's requests go through the transport (timeouts, retries of connection errors,
failover, the audit trail) on a side adapter that sends no client token (or the
wrapping token, for an unwrap), so a stale token never travels with a login; and with
``token_hooks=False``, since they are made for the token keeper, which decides *when*
to log in. Credentials live only in private attributes of the authenticator: they are
not in its ``repr``, in log lines or in error messages.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from flask_vault.display import safe_text
from flask_vault.errors import VaultAuthError, VaultError, VaultUnavailableError
from flask_vault.paths import check_path_part
from flask_vault.settings import VaultSettings
from flask_vault.vault.transport import Transport


@dataclass(frozen=True)
class LoginResult:
    """A token and what Vault said about it. ``ttl`` 0: never expires; None: not known."""

    token: str = field(repr=False)
    ttl: float | None = None
    renewable: bool = False
    policies: tuple[str, ...] = ()
    accessor: str | None = field(default=None, repr=False)
    #: True when this process created the token by logging in (it may revoke it at exit).
    created: bool = True

    @classmethod
    def from_auth(cls, response: Any, *, where: str) -> LoginResult:
        """Build from a login or renewal answer's ``auth`` block."""
        auth = response.get("auth") if isinstance(response, dict) else None
        if not isinstance(auth, dict) or not isinstance(auth.get("client_token"), str) or not auth["client_token"]:
            raise VaultAuthError(f"Vault answered {where} without a client token.", path=where)
        policies = auth.get("policies") or auth.get("token_policies") or []
        return cls(
            token=auth["client_token"],
            ttl=float(auth.get("lease_duration") or 0),
            renewable=bool(auth.get("renewable")),
            policies=tuple(sorted(str(p) for p in policies)),
            accessor=auth.get("accessor") if isinstance(auth.get("accessor"), str) else None,
            created=True,
        )


class Authenticator(ABC):
    """One login method. Subclasses hold their credentials privately.

    A method is registered in :mod:`flask_vault.auth.methods` with its ``method`` name;
    ``selected_by`` names the settings (``VaultSettings`` attributes) whose presence picks
    it when ``VAULT_AUTH_METHOD`` is not set, and :meth:`from_settings` builds it.
    """

    #: The VAULT_AUTH_METHOD name.
    method: ClassVar[str] = ""
    #: Settings whose presence selects this method when VAULT_AUTH_METHOD is not set.
    selected_by: ClassVar[tuple[str, ...]] = ()
    #: Tokens it returns are created by logging in (revoked at exit by default).
    creates_tokens: ClassVar[bool] = True

    @classmethod
    @abstractmethod
    def from_settings(cls, settings: VaultSettings) -> Authenticator:
        """The validated authenticator; a missing or conflicting setting raises VaultConfigError."""

    @property
    def refreshable(self) -> bool:
        """True when :meth:`login` may give a new token once the current one is refused."""
        return True

    @abstractmethod
    def login(self, transport: Transport) -> LoginResult | None:
        """Get a token (None: the token method found none). Raises VaultAuthError when refused."""

    def describe(self) -> str:
        """Method and where it logs in, for log lines. Never a credential."""
        return self.method

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


def request_login(
    transport: Transport, mount: str, payload: dict[str, Any], *, hide: tuple[str | None, ...], hint: str
) -> LoginResult:
    """``POST auth/<mount>/login`` with ``payload``; a refusal is a VaultAuthError naming the path and ``hint``."""
    path = f"auth/{mount}/login"
    try:
        response = transport.request(
            "login",
            path,
            lambda: transport.side_adapter(None).post(f"/v1/{path}", json=payload),
            idempotent=False,
            token_hooks=False,
        )
    except VaultUnavailableError:
        raise
    except VaultError as exc:
        raise VaultAuthError(
            f"Vault at {transport.url} refused the login at {path} ({vault_says(exc, hide)}). {hint}",
            url=transport.url,
            path=path,
            status=exc.status,
        ) from None  # the chained hvac error would only repeat Vault's answer
    return LoginResult.from_auth(response, where=path)


def vault_says(exc: VaultError, hide: tuple[str | None, ...]) -> str:
    """``HTTP <status>: <Vault's error text>``, without any credential it may echo."""
    errors = getattr(exc.__cause__, "errors", None)
    detail = "; ".join(str(e).strip() for e in errors[:20]) if isinstance(errors, list) and errors else exc.message
    # Scrubbed whole, then cut and escaped: a cut first could leave half a credential unmatched.
    return safe_text(scrub(f"HTTP {exc.status}: {detail}" if exc.status else detail, hide), 300)


def read_credential_file(path: Path, key: str) -> str:
    """The stripped content of a credential file named by setting ``key``; VaultAuthError when unusable."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultAuthError(f"{key} {path} cannot be read ({type(exc).__name__}).") from None
    if not value:
        raise VaultAuthError(f"{key} {path} is empty.")
    return value


def auth_mount(key: str, mount: str) -> str:
    """An auth mount from setting ``key``, without slashes, checked as one path part."""
    return check_path_part(key, mount.strip("/"))


def scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    """``text`` with any of ``secrets`` replaced, in case Vault echoed one back."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<hidden>")
    return text
