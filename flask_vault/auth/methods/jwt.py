"""The ``jwt`` method: a role and a JWT given as is or in a file (read at each login), e.g. a CI OIDC token."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from flask_vault.auth.methods.base import Authenticator, LoginResult, auth_mount, read_credential_file, request_login
from flask_vault.errors import VaultConfigError
from flask_vault.settings import VaultSettings
from flask_vault.vault.transport import Transport


class JWTAuth(Authenticator):
    """The ``jwt`` auth method: a role and a JWT given as is or in a file (read at each login)."""

    method = "jwt"
    selected_by: ClassVar[tuple[str, ...]] = ("jwt_role", "jwt", "jwt_file")
    _role_key = "VAULT_JWT_ROLE"
    _file_key = "VAULT_JWT_FILE"

    def __init__(
        self, role: str | None, *, jwt: str | None = None, jwt_file: str | None = None, mount: str = "jwt"
    ) -> None:
        if not role:
            raise VaultConfigError(f"{self.method} login needs {self._role_key}.", key=self._role_key)
        if jwt and jwt_file:
            raise VaultConfigError("Set only one of VAULT_JWT and VAULT_JWT_FILE.", key="VAULT_JWT_FILE")
        if not jwt and not jwt_file:
            raise VaultConfigError(
                "JWT login needs VAULT_JWT (the token) or VAULT_JWT_FILE (a file holding it, e.g. a CI OIDC token).",
                key="VAULT_JWT",
            )
        self.role = role
        self.mount = auth_mount("VAULT_JWT_MOUNT", mount)
        self.jwt_file = Path(jwt_file).expanduser() if jwt_file else None
        self._jwt = jwt

    @classmethod
    def from_settings(cls, settings: VaultSettings) -> JWTAuth:
        return cls(settings.jwt_role, jwt=settings.jwt, jwt_file=settings.jwt_file, mount=settings.jwt_mount)

    def describe(self) -> str:
        source = f"file {self.jwt_file}" if self.jwt_file else "VAULT_JWT"
        return f"{self.method} at auth/{self.mount}, role {self.role} ({source})"

    def _current_jwt(self) -> str:
        if self.jwt_file is not None:
            return read_credential_file(self.jwt_file, self._file_key)
        assert self._jwt
        return self._jwt

    def login(self, transport: Transport) -> LoginResult:
        jwt = self._current_jwt()
        return request_login(
            transport,
            self.mount,
            {"role": self.role, "jwt": jwt},
            hide=(jwt,),
            hint=f"Check {self._role_key}, the role's bound claims and audience, and that the JWT has not expired.",
        )
