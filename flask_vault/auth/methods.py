"""Logging in: a token, an Agent token file, AppRole (plain or wrapped secret_id), JWT, Kubernetes.

An :class:`Authenticator` knows how to get a token for one login method;
:func:`authenticator_from_settings` picks and validates the method from
:class:`~flask_vault.settings.VaultSettings` (``VAULT_AUTH_METHOD``, or inferred from the
settings present). The :class:`~flask_vault.auth.keeper.TokenKeeper` decides *when* to log
in; the authenticators only know *how*.

Every request made here goes through ``VaultClient._call`` (timeouts, retries for
connection errors, failover, the audit trail) on a side adapter that sends no client
token (or the wrapping token, for an unwrap), so a stale token never travels with a
login. Credentials live only in private attributes of the authenticator: they are not
in its ``repr``, in log lines or in error messages.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from flask_vault.errors import VaultAuthError, VaultConfigError, VaultError, VaultUnavailableError
from flask_vault.paths import check_path_part
from flask_vault.settings import AUTH_METHODS, VaultSettings
from flask_vault.vault.transport import VaultAdapter

if TYPE_CHECKING:
    from flask_vault.client import VaultClient

log = logging.getLogger(__name__)

#: Where the Vault and OpenBao CLIs keep the token of ``vault login`` / ``bao login``.
CLI_TOKEN_FILE = "~/.vault-token"
#: The service-account token a Kubernetes pod gets by default.
K8S_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"


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
    """One login method. Subclasses hold their credentials privately."""

    #: The VAULT_AUTH_METHOD name.
    method: str = ""
    #: Tokens it returns are created by logging in (revoked at exit by default).
    creates_tokens: bool = True

    @property
    def refreshable(self) -> bool:
        """True when :meth:`login` may give a new token once the current one is refused."""
        return True

    @abstractmethod
    def login(self, client: VaultClient) -> LoginResult | None:
        """Get a token (None: the token method found none). Raises VaultAuthError when refused."""

    def describe(self) -> str:
        """Method and where it logs in, for log lines. Never a credential."""
        return self.method

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"


# -- token ---------------------------------------------------------------------------------


class TokenAuth(Authenticator):
    """A token given as is: ``VAULT_TOKEN``, else ``VAULT_TOKEN_FILE``, else ``~/.vault-token``.

    A token file (an Agent sink) is read again whenever it changes; the keeper checks
    it before requests (at most once a second) and after a 403.
    """

    method = "token"
    creates_tokens = False

    def __init__(self, token: str | None = None, token_file: str | None = None, *, cli_file: bool = True) -> None:
        self._token = token or None
        if self._token is None and token_file:
            self.path: Path | None = Path(token_file).expanduser()
            self.source = "VAULT_TOKEN_FILE"
        elif self._token is None and cli_file:
            self.path = Path(CLI_TOKEN_FILE).expanduser()
            self.source = CLI_TOKEN_FILE
        else:
            self.path = None
            self.source = "VAULT_TOKEN" if self._token else "none"
        self._signature: tuple[int, int, int] | None = None
        self._file_token: str | None = None

    @property
    def refreshable(self) -> bool:
        return self.path is not None

    @property
    def static_token(self) -> str | None:
        return self._token

    def describe(self) -> str:
        return f"token from {self.source}" + (f" ({self.path})" if self.source == "VAULT_TOKEN_FILE" else "")

    def changed(self) -> bool:
        """True when the token file is not what was read last (cheap: one ``stat``)."""
        return self.path is not None and self._stat() != self._signature

    def _stat(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> str | None:
        """The token now: the fixed one, or the file's content (re-read when it changed)."""
        if self.path is None:
            return self._token
        signature = self._stat()
        if signature is not None and signature == self._signature:
            return self._file_token
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            if self.source == CLI_TOKEN_FILE:
                self._signature, self._file_token = None, None
                return None
            raise VaultAuthError(
                f"VAULT_TOKEN_FILE {self.path} does not exist. Is the Vault/OpenBao Agent running and writing "
                "its token sink there?"
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise VaultAuthError(f"Cannot read the token file {self.path} ({type(exc).__name__}).") from None
        self._signature, self._file_token = signature, text or None
        return self._file_token

    def login(self, client: VaultClient) -> LoginResult | None:
        token = self.read()
        return None if token is None else LoginResult(token=token, created=False)


# -- AppRole ---------------------------------------------------------------------------------


class AppRoleAuth(Authenticator):
    """AppRole: ``role_id`` plus a secret_id given as is, in a file, or response-wrapped.

    A wrapped secret_id is looked up first (``sys/wrapping/lookup``) and refused unless it
    was created at ``auth/<mount>/role/<name>/secret-id`` on this mount (exactly that
    role's when ``role_name`` is given), then unwrapped once; the secret_id it held is
    kept in memory for later logins. A refused wrapping token stays refused: nothing
    more is sent to Vault for it.
    """

    method = "approle"

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
        self.mount = _mount("VAULT_APPROLE_MOUNT", mount)
        self.role_name = role_name.strip("/") if role_name else None
        if self.role_name is not None:
            check_path_part("VAULT_ROLE_NAME", self.role_name)
        self.secret_id_file = Path(secret_id_file).expanduser() if secret_id_file else None
        self._role_id = role_id
        self._secret_id = secret_id
        self._wrapped = wrapped_secret_id
        self._refusal: str | None = None

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

    def login(self, client: VaultClient) -> LoginResult:
        payload = {"role_id": self._role_id}
        secret_id = self._current_secret_id(client)
        if secret_id:
            payload["secret_id"] = secret_id
        hide = (self._role_id, secret_id)
        return _login(client, self.mount, payload, hide=hide, hint="Check VAULT_ROLE_ID and the secret_id.")

    def _current_secret_id(self, client: VaultClient) -> str | None:
        if self._refusal is not None:
            raise VaultAuthError(self._refusal, url=client.url, path="sys/wrapping/lookup")
        if self._wrapped:
            self._unwrap(client)
        if self.secret_id_file is not None:
            return _read_credential_file(self.secret_id_file, "VAULT_SECRET_ID_FILE")
        return self._secret_id

    def _unwrap(self, client: VaultClient) -> None:
        wrapping_token = self._wrapped
        assert wrapping_token
        hide = (wrapping_token,)
        try:
            info = client._call(
                "lookup",
                "sys/wrapping/lookup",
                lambda: side_adapter(client, None).post("/v1/sys/wrapping/lookup", json={"token": wrapping_token}),
            )
        except VaultUnavailableError:
            raise
        except VaultError as exc:
            self._refuse(
                "The wrapped secret_id (VAULT_WRAPPED_SECRET_ID) is not valid: it was already unwrapped, it "
                f"expired, or it never existed ({_scrub(exc.message, hide)}). If nobody here used it, someone else "
                "may have: treat it as intercepted and issue a new one.",
                client,
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
                client,
            )
        try:
            unwrapped = client._call(
                "unwrap",
                "sys/wrapping/unwrap",
                lambda: side_adapter(client, wrapping_token).post("/v1/sys/wrapping/unwrap"),
                idempotent=False,
            )
        except VaultUnavailableError:
            raise
        except VaultError as exc:
            self._refuse(
                "The wrapped secret_id (VAULT_WRAPPED_SECRET_ID) could not be unwrapped: it was used or expired "
                f"between lookup and unwrap ({_scrub(exc.message, hide)}). Treat it as intercepted; issue a new one.",
                client,
            )
        secret_id = ((unwrapped or {}).get("data") or {}).get("secret_id") if isinstance(unwrapped, dict) else None
        self._wrapped = None  # one unwrap per wrapping token, whatever happens next
        if not isinstance(secret_id, str) or not secret_id:
            self._refuse("The unwrapped response holds no secret_id; no login was made.", client)
        self._secret_id = secret_id
        log.info("Unwrapped the AppRole secret_id (created at %s); it is kept in memory only.", creation_path)

    def _creation_path_ok(self, creation_path: str) -> bool:
        if self.role_name is not None:
            return creation_path == f"auth/{self.mount}/role/{self.role_name}/secret-id"
        return re.fullmatch(rf"auth/{re.escape(self.mount)}/role/[^/]+/secret-id", creation_path) is not None

    def _refuse(self, message: str, client: VaultClient) -> NoReturn:
        self._refusal = message
        self._wrapped = None
        log.error("%s", message)
        raise VaultAuthError(message, url=client.url, path="sys/wrapping/lookup")


# -- JWT and Kubernetes --------------------------------------------------------------------


class JWTAuth(Authenticator):
    """The ``jwt`` auth method: a role and a JWT given as is or in a file (read at each login)."""

    method = "jwt"
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
        self.mount = _mount("VAULT_JWT_MOUNT", mount)
        self.jwt_file = Path(jwt_file).expanduser() if jwt_file else None
        self._jwt = jwt

    def describe(self) -> str:
        source = f"file {self.jwt_file}" if self.jwt_file else "VAULT_JWT"
        return f"{self.method} at auth/{self.mount}, role {self.role} ({source})"

    def _current_jwt(self) -> str:
        if self.jwt_file is not None:
            return _read_credential_file(self.jwt_file, self._file_key)
        assert self._jwt
        return self._jwt

    def login(self, client: VaultClient) -> LoginResult:
        jwt = self._current_jwt()
        return _login(
            client,
            self.mount,
            {"role": self.role, "jwt": jwt},
            hide=(jwt,),
            hint=f"Check {self._role_key}, the role's bound claims and audience, and that the JWT has not expired.",
        )


class KubernetesAuth(JWTAuth):
    """The ``kubernetes`` auth method with the pod's service-account token (read at each login)."""

    method = "kubernetes"
    _role_key = "VAULT_K8S_ROLE"
    _file_key = "VAULT_K8S_TOKEN_FILE"

    def __init__(self, role: str | None, *, token_file: str = K8S_TOKEN_FILE, mount: str = "kubernetes") -> None:
        if not role:
            raise VaultConfigError("kubernetes login needs VAULT_K8S_ROLE.", key="VAULT_K8S_ROLE")
        self.role = role
        self.mount = _mount("VAULT_K8S_MOUNT", mount)
        self.jwt_file = Path(token_file).expanduser()
        self._jwt = None


# -- choosing a method ---------------------------------------------------------------------


def infer_auth_method(settings: VaultSettings) -> str:
    """``VAULT_AUTH_METHOD``, else the one method whose settings are present, else ``token``."""
    if settings.auth_method:
        return settings.auth_method
    present = []
    if settings.role_id or settings.secret_id or settings.secret_id_file or settings.wrapped_secret_id:
        present.append("approle")
    if settings.jwt_role or settings.jwt or settings.jwt_file:
        present.append("jwt")
    if settings.k8s_role:
        present.append("kubernetes")
    if len(present) > 1:
        raise VaultConfigError(
            f"Settings for several login methods are present ({', '.join(present)}); set VAULT_AUTH_METHOD to one "
            f"of {', '.join(AUTH_METHODS)}.",
            key="VAULT_AUTH_METHOD",
        )
    return present[0] if present else "token"


def authenticator_from_settings(settings: VaultSettings) -> Authenticator:
    """The validated authenticator for ``settings``; a bad combination raises VaultConfigError."""
    method = infer_auth_method(settings)
    if method == "approle":
        if not settings.role_id:
            raise VaultConfigError("VAULT_AUTH_METHOD is approle but VAULT_ROLE_ID is not set.", key="VAULT_ROLE_ID")
        return AppRoleAuth(
            settings.role_id,
            secret_id=settings.secret_id,
            secret_id_file=settings.secret_id_file,
            wrapped_secret_id=settings.wrapped_secret_id,
            role_name=settings.role_name,
            mount=settings.approle_mount,
        )
    if method == "jwt":
        return JWTAuth(settings.jwt_role, jwt=settings.jwt, jwt_file=settings.jwt_file, mount=settings.jwt_mount)
    if method == "kubernetes":
        return KubernetesAuth(settings.k8s_role, token_file=settings.k8s_token_file, mount=settings.k8s_mount)
    return TokenAuth(settings.token, settings.token_file)


def without_credentials(settings: VaultSettings) -> VaultSettings:
    """``settings`` with every login credential removed (the authenticator holds them)."""
    return settings.replace(token=None, secret_id=None, wrapped_secret_id=None, jwt=None)


# -- helpers -------------------------------------------------------------------------------


def side_adapter(client: VaultClient, token: str | None) -> VaultAdapter:
    """An adapter on the client's session and current address that sends ``token`` (or none).

    Built per request, so it follows the client's failover.
    """
    main = client.hvac.adapter
    assert isinstance(main, VaultAdapter)
    adapter = VaultAdapter.from_adapter(main)
    adapter.token = token
    adapter.allowed_origins = main.allowed_origins
    return adapter


def _login(
    client: VaultClient, mount: str, payload: dict[str, Any], *, hide: tuple[str | None, ...], hint: str
) -> LoginResult:
    path = f"auth/{mount}/login"
    try:
        response = client._call(
            "login", path, lambda: side_adapter(client, None).post(f"/v1/{path}", json=payload), idempotent=False
        )
    except VaultUnavailableError:
        raise
    except VaultError as exc:
        raise VaultAuthError(
            f"Vault at {client.url} refused the login at {path} ({_vault_says(exc, hide)}). {hint}",
            url=client.url,
            path=path,
            status=exc.status,
        ) from None  # the chained hvac error would only repeat Vault's answer
    return LoginResult.from_auth(response, where=path)


def _vault_says(exc: VaultError, hide: tuple[str | None, ...]) -> str:
    """``HTTP <status>: <Vault's error text>``, without any credential it may echo."""
    errors = getattr(exc.__cause__, "errors", None)
    detail = "; ".join(str(e).strip() for e in errors)[:300] if isinstance(errors, list) and errors else exc.message
    return _scrub(f"HTTP {exc.status}: {detail}" if exc.status else detail, hide)


def _read_credential_file(path: Path, key: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise VaultAuthError(f"{key} {path} cannot be read ({type(exc).__name__}).") from None
    if not value:
        raise VaultAuthError(f"{key} {path} is empty.")
    return value


def _mount(key: str, mount: str) -> str:
    return check_path_part(key, mount.strip("/"))


def _scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    """``text`` with any of ``secrets`` replaced, in case Vault echoed one back."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<hidden>")
    return text
