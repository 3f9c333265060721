"""The ``approle`` method: ``role_id`` plus a secret_id given as is, in a file, or response-wrapped."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import NoReturn

from flask_vault.auth.methods.base import (
    Authenticator,
    LoginResult,
    auth_mount,
    read_credential_file,
    request_login,
    scrub,
)
from flask_vault.errors import VaultAuthError, VaultConfigError, VaultError, VaultUnavailableError
from flask_vault.paths import check_path_part
from flask_vault.settings import VaultSettings
from flask_vault.vault.transport import Transport

log = logging.getLogger(__name__)


class AppRoleAuth(Authenticator):
    """AppRole: ``role_id`` plus a secret_id given as is, in a file, or response-wrapped.

    A wrapped secret_id is looked up first (``sys/wrapping/lookup``) and refused unless it
    was created at ``auth/<mount>/role/<name>/secret-id`` on this mount (exactly that
    role's when ``role_name`` is given), then unwrapped once; the secret_id it held is
    kept in memory for later logins. A refused wrapping token stays refused: nothing
    more is sent to Vault for it.
    """

    method = "approle"
    selected_by = ("role_id", "secret_id", "secret_id_file", "wrapped_secret_id")

    def __init__(
        self,
        role_id: str,
        *,
        secret_id: str | None = None,
        secret_id_file: str | None = None,
        wrapped_secret_id: str | None = None,
        role_name: str | None = None,
        mount: str = "approle",
    ) -> None:
        given = [k for k, v in (("VAULT_SECRET_ID", secret_id), ("VAULT_SECRET_ID_FILE", secret_id_file),
                                ("VAULT_WRAPPED_SECRET_ID", wrapped_secret_id)) if v]  # fmt: skip
        if len(given) > 1:
            raise VaultConfigError(
                f"Set only one of {', '.join(given)}: they are alternative ways to give the AppRole secret_id.",
                key=given[1],
            )
        if not role_id:
            raise VaultConfigError("AppRole login needs VAULT_ROLE_ID.", key="VAULT_ROLE_ID")
        self.mount = auth_mount("VAULT_APPROLE_MOUNT", mount)
        self.role_name = role_name.strip("/") if role_name else None
        if self.role_name is not None:
            check_path_part("VAULT_ROLE_NAME", self.role_name)
        self.secret_id_file = Path(secret_id_file).expanduser() if secret_id_file else None
        self._role_id = role_id
        self._secret_id = secret_id
        self._wrapped = wrapped_secret_id
        self._refusal: str | None = None

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> AppRoleAuth:
        if not settings.role_id:
            raise VaultConfigError("VAULT_AUTH_METHOD is approle but VAULT_ROLE_ID is not set.", key="VAULT_ROLE_ID")
        return cls(
            settings.role_id,
            secret_id=settings.secret_id,
            secret_id_file=settings.secret_id_file,
            wrapped_secret_id=settings.wrapped_secret_id,
            role_name=settings.role_name,
            mount=settings.approle_mount,
        )

    def describe(self) -> str:
        role = f", role {self.role_name}" if self.role_name else ""
        how = (
            "wrapped secret_id"
            if self._wrapped
            else f"secret_id file {self.secret_id_file}"
            if self.secret_id_file
            else "secret_id"
            if self._secret_id
            else "role_id only"
        )
        return f"approle at auth/{self.mount}{role} ({how})"

    def login(self, transport: Transport) -> LoginResult:
        payload = {"role_id": self._role_id}
        secret_id = self._current_secret_id(transport)
        if secret_id:
            payload["secret_id"] = secret_id
        hide = (self._role_id, secret_id)
        return request_login(transport, self.mount, payload, hide=hide, hint="Check VAULT_ROLE_ID and the secret_id.")

    def _current_secret_id(self, transport: Transport) -> str | None:
        if self._refusal is not None:
            raise VaultAuthError(self._refusal, url=transport.url, path="sys/wrapping/lookup")
        if self._wrapped:
            self._unwrap(transport)
        if self.secret_id_file is not None:
            return read_credential_file(self.secret_id_file, "VAULT_SECRET_ID_FILE")
        return self._secret_id

    def _unwrap(self, transport: Transport) -> None:
        wrapping_token = self._wrapped
        assert wrapping_token
        hide = (wrapping_token,)
        try:
            info = transport.request(
                "lookup",
                "sys/wrapping/lookup",
                lambda: transport.side_adapter(None).post("/v1/sys/wrapping/lookup", json={"token": wrapping_token}),
                token_hooks=False,
            )
        except VaultUnavailableError:
            raise
        except VaultError as exc:
            self._refuse(
                "The wrapped secret_id (VAULT_WRAPPED_SECRET_ID) is not valid: it was already unwrapped, it "
                f"expired, or it never existed ({scrub(exc.message, hide)}). If nobody here used it, someone else "
                "may have: treat it as intercepted and issue a new one.",
                transport,
            )
        data = info.get("data") if isinstance(info, dict) else None
        creation_path = str((data or {}).get("creation_path") or "")
        if not self._creation_path_ok(creation_path):
            expected = f"auth/{self.mount}/role/{self.role_name or '<name>'}/secret-id"
            self._refuse(
                "The wrapped secret_id (VAULT_WRAPPED_SECRET_ID) was created at "
                f"{creation_path or 'an unknown path'!r}, not at {expected!r}. It was not unwrapped and no login was "
                "made: ask for a secret_id wrapped by that AppRole endpoint (and check VAULT_APPROLE_MOUNT and "
                "VAULT_ROLE_NAME).",
                transport,
            )
        try:
            unwrapped = transport.request(
                "unwrap",
                "sys/wrapping/unwrap",
                lambda: transport.side_adapter(wrapping_token).post("/v1/sys/wrapping/unwrap"),
                idempotent=False,
                token_hooks=False,
            )
        except VaultUnavailableError:
            raise
        except VaultError as exc:
            self._refuse(
                "The wrapped secret_id (VAULT_WRAPPED_SECRET_ID) could not be unwrapped: it was used or expired "
                f"between lookup and unwrap ({scrub(exc.message, hide)}). Treat it as intercepted; issue a new one.",
                transport,
            )
        secret_id = ((unwrapped or {}).get("data") or {}).get("secret_id") if isinstance(unwrapped, dict) else None
        self._wrapped = None  # one unwrap per wrapping token, whatever happens next
        if not isinstance(secret_id, str) or not secret_id:
            self._refuse("The unwrapped response holds no secret_id; no login was made.", transport)
        self._secret_id = secret_id
        log.info("Unwrapped the AppRole secret_id (created at %s); it is kept in memory only.", creation_path)

    def _creation_path_ok(self, creation_path: str) -> bool:
        if self.role_name is not None:
            return creation_path == f"auth/{self.mount}/role/{self.role_name}/secret-id"
        return re.fullmatch(rf"auth/{re.escape(self.mount)}/role/[^/]+/secret-id", creation_path) is not None

    def _refuse(self, message: str, transport: Transport) -> NoReturn:
        self._refusal = message
        self._wrapped = None
        log.error("%s", message)
        raise VaultAuthError(message, url=transport.url, path="sys/wrapping/lookup")
