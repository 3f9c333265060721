"""The database secrets engine: credentials for a role, and the lease requests that keep them.

``<mount>/creds/<role>`` issues a new database user with a lease (renewed with
``sys/leases/renew``, revoked with ``sys/leases/revoke``, which drops the user);
``<mount>/static-creds/<role>`` gives the one user of a static role and its current
password, which Vault changes every rotation period (no lease). Every request goes
through the :class:`~flask_vault.vault.transport.Transport`.

A lease id (``database/creds/app/<random>``) lets whoever holds it renew or revoke the
lease: it is kept here and never shown. Messages name the path (``database/creds/app``)
and, where one is needed, :func:`lease_ref`, a short one-way tag of the id.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from flask_vault.errors import VaultError, VaultPermissionError
from flask_vault.vault.transport import Transport

#: Vault's answer for a role that does not exist at the path asked (HTTP 400).
_UNKNOWN_ROLE = "unknown role"


def lease_ref(lease_id: str | None) -> str | None:
    """A short, stable, one-way tag of a lease id, safe to log (like ``token_id`` for tokens)."""
    if not lease_id:
        return None
    return hashlib.sha256(lease_id.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class IssuedCredentials:
    """A database user name and password from the engine. Neither the password nor the lease id is shown."""

    username: str
    password: str = field(repr=False)
    #: ``database/creds/app`` or ``database/static-creds/app``.
    path: str
    #: Seconds the lease has (dynamic), or seconds until Vault rotates the password (static).
    ttl: float
    renewable: bool = False
    lease_id: str | None = field(default=None, repr=False)
    #: True for a static role: one user whose password Vault rotates; nothing to renew or revoke.
    static: bool = False


class DatabaseSecrets:
    """The requests of one database secrets engine mount."""

    def __init__(self, transport: Transport, mount: str = "database") -> None:
        self.transport = transport
        self.mount = mount

    def creds_path(self, role: str, *, static: bool = False) -> str:
        return f"{self.mount}/{'static-creds' if static else 'creds'}/{role}"

    def issue(self, role: str, *, static: bool | None = None) -> IssuedCredentials:
        """Credentials for ``role``: dynamic, static, or (``static=None``) whichever the role is.

        With ``static=None`` the dynamic path is asked first; a role Vault does not know
        there (or the token may not read there) is then asked for as a static role. The
        error of the dynamic path is raised when neither answers.
        """
        if static is not None:
            return self._read(role, static=static)
        try:
            return self._read(role, static=False)
        except VaultError as dynamic_error:
            if not _maybe_static(dynamic_error):
                raise
            try:
                return self._read(role, static=True)
            except VaultError as static_error:
                if not _maybe_static(static_error):
                    raise
                raise _no_role(self, role, dynamic_error) from dynamic_error

    def _read(self, role: str, *, static: bool) -> IssuedCredentials:
        path = self.creds_path(role, static=static)
        answer = self.transport.request("creds", path, lambda: self.transport.hvac.read(path))
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            raise VaultError(f"Vault gave no credentials at {path}.", url=self.transport.url, path=path)
        data: dict[str, Any] = answer["data"]
        username, password = data.get("username"), data.get("password")
        if not isinstance(username, str) or not isinstance(password, str):
            raise VaultError(
                f"The answer at {path} has no username and password; is {self.mount} a database secrets engine?",
                url=self.transport.url,
                path=path,
            )
        if static:
            return IssuedCredentials(username, password, path, ttl=float(data.get("ttl") or 0), static=True)
        return IssuedCredentials(
            username,
            password,
            path,
            ttl=float(answer.get("lease_duration") or 0),
            renewable=bool(answer.get("renewable")),
            lease_id=str(answer.get("lease_id") or "") or None,
        )

    def renew(self, lease_id: str) -> tuple[float, bool]:
        """Renew a lease; (seconds it now has, whether it can be renewed again)."""
        answer = self.transport.request(
            "renew",
            "sys/leases/renew",
            lambda: self.transport.hvac.sys.renew_lease(lease_id),  # type: ignore[no-untyped-call]
        )
        if not isinstance(answer, dict):
            raise VaultError(
                "Vault gave no answer to a lease renewal.", url=self.transport.url, path="sys/leases/renew"
            )
        return float(answer.get("lease_duration") or 0), bool(answer.get("renewable"))

    def revoke(self, lease_id: str) -> None:
        """Revoke a lease now (Vault runs the role's revocation statements before it answers)."""
        self.transport.request(
            "revoke",
            "sys/leases/revoke",
            lambda: self.transport.hvac.sys.revoke_lease(lease_id),  # type: ignore[no-untyped-call]
        )


def _maybe_static(error: VaultError) -> bool:
    """Whether the dynamic path's answer leaves room for a static role of that name."""
    if isinstance(error, VaultPermissionError) or error.status == 404:
        return True
    return error.status == 400 and _UNKNOWN_ROLE in error.message


def _no_role(engine: DatabaseSecrets, role: str, cause: VaultError) -> VaultError:
    dynamic, static = engine.creds_path(role), engine.creds_path(role, static=True)
    if isinstance(cause, VaultPermissionError):
        what = f"the token may read neither {dynamic} nor {static}"
    elif cause.status == 404:
        what = f"nothing answers at {dynamic} or {static} (is a database secrets engine mounted at {engine.mount}?)"
    else:
        what = f"Vault knows no role {role!r} at {dynamic} or {static}"
    error_class = VaultPermissionError if isinstance(cause, VaultPermissionError) else VaultError
    return error_class(
        f"No database credentials for VAULT_DATABASE_ROLE {role!r}: {what}. Create the role (see the README's"
        " 'Dynamic database credentials') or fix VAULT_DATABASE_ROLE / VAULT_DATABASE_MOUNT, and check the"
        " app's policy.",
        url=cause.url,
        path=dynamic,
        status=cause.status,
    )
