"""Typed, validated settings read once from ``app.config`` and ``VAULT_*`` variables.

Every setting is looked up in the same order: the Flask config, then the environment
variable of the same name (plus the Vault CLI's own names where they exist, such as
``VAULT_ADDR``), then the default. A bad value raises :class:`VaultConfigError` naming
the key, the value (never for a credential) and what was expected.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask_vault.errors import VaultConfigError
from flask_vault.rotation_rules import RotationRules

log = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:8200"

#: Config key -> ``name#field`` (or a bare ``name`` for a database URL built from a secret).
DEFAULT_SECRETS: dict[str, str] = {
    "SECRET_KEY": "flask#secret_key",
    "JWT_SECRET_KEY": "flask#jwt_secret",
    "SQLALCHEMY_DATABASE_URI": "database",
}

#: Environment variables tried as the fallback for a mapped key (when VAULT_FALLBACK_ENV).
FALLBACK_ENV_NAMES: dict[str, str] = {"SQLALCHEMY_DATABASE_URI": "DATABASE_URL"}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _describe(key: str, value: object) -> str:
    return "<hidden>" if key in CREDENTIAL_KEYS else repr(value)


def _bad(key: str, value: object, expected: str) -> VaultConfigError:
    return VaultConfigError(f"{key} must be {expected}, got {_describe(key, value)}.", key=key)


def parse_bool(key: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise _bad(key, value, "a boolean (true/false, 1/0, yes/no, on/off)")


def parse_number(key: str, value: object, *, minimum: float = 0) -> float:
    if isinstance(value, bool):
        raise _bad(key, value, f"a number of seconds >= {minimum:g}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _bad(key, value, f"a number of seconds >= {minimum:g}") from None
    if number != number or number < minimum:  # NaN or too small
        raise _bad(key, value, f"a number of seconds >= {minimum:g}")
    return number


def parse_optional_str(key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(key, value, "a string")
    value = value.strip()
    return value or None


def parse_urls(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
    elif isinstance(value, (list, tuple)):
        parts = [str(part).strip() for part in value]
    else:
        raise _bad(key, value, "a URL such as 'https://vault.example.com:8200'")
    urls = tuple(part.rstrip("/") for part in parts if part)
    if not urls:
        raise _bad(key, value, "at least one URL such as 'https://vault.example.com:8200'")
    for url in urls:
        scheme, sep, rest = url.partition("://")
        if not sep or scheme not in ("http", "https") or not rest:
            raise _bad(
                key,
                _without_userinfo(url),
                "an http:// or https:// URL such as 'https://vault.example.com:8200'"
                " (several may be separated by commas)",
            )
        if "@" in rest.split("/", 1)[0]:
            raise VaultConfigError(
                f"{key} must not hold a user name or password ({_without_userinfo(url)!r}): Vault does not read"
                " them, and every message, health report and repr that names the address would show them. Put"
                " the address alone in VAULT_URL and log in with VAULT_TOKEN or a login method (VAULT_AUTH_METHOD).",
                key=key,
            )
    return urls


def _without_userinfo(url: str) -> str:
    """``url`` with anything before an ``@`` in its authority replaced, so a message never shows it."""
    scheme, sep, rest = url.partition("://")
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "<credentials>@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{tail}"


def parse_secrets_mapping(key: str, value: object) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad(key, value, 'a JSON object such as {"SECRET_KEY": "flask#secret_key"}') from None
    if not isinstance(value, Mapping):
        raise _bad(key, value, 'a mapping of config keys to "name#field", e.g. {"SECRET_KEY": "flask#secret_key"}')
    mapping: dict[str, str] = {}
    for config_key, reference in value.items():
        if not isinstance(config_key, str) or not config_key:
            raise _bad(key, config_key, "config key names that are non-empty strings")
        if not isinstance(reference, str) or not reference.split("#", 1)[0]:
            raise VaultConfigError(
                f"{key}[{config_key!r}] must be 'name#field' or a bare 'name', got {reference!r}.",
                key=key,
            )
        _check_reference_name(key, config_key, reference)
        mapping[config_key] = reference
    return mapping


def _check_reference_name(key: str, config_key: str, reference: str) -> None:
    """Secret names are checked here, at load, so a bad one is refused before any request (login included)."""
    from flask_vault.paths import check_secret_name

    try:
        check_secret_name(reference.split("#", 1)[0])
    except VaultConfigError as exc:
        raise VaultConfigError(f"{key}[{config_key!r}]: {exc.message}", key=key) from None


def parse_auth_method(key: str, value: object) -> str | None:
    """A method name, lower-cased; the registry of login methods checks that it is one."""
    method = parse_optional_str(key, value)
    return None if method is None else method.lower()


def parse_path(key: str, value: object) -> str | None:
    """A file system path, or None; one with a NUL byte (which no file system takes) is refused."""
    path = parse_optional_str(key, value)
    if path is not None and "\x00" in path:
        raise _bad(key, value, "a file system path (without NUL bytes)")
    return path


def parse_file(key: str, value: object) -> str | None:
    """A path to a readable file (``~`` expanded), or None."""
    path = parse_path(key, value)
    if path is None:
        return None
    path = os.path.expanduser(path)
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise _bad(key, value, "the path of a readable PEM file")
    return path


def parse_directory(key: str, value: object) -> str | None:
    """A path to a readable directory (``~`` expanded), or None."""
    path = parse_path(key, value)
    if path is None:
        return None
    path = os.path.expanduser(path)
    if not os.path.isdir(path) or not os.access(path, os.R_OK | os.X_OK):
        raise _bad(key, value, "the path of a readable directory of PEM files")
    return path


_HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?|[0-9a-fA-F:.]+")


def parse_server_name(key: str, value: object) -> str | None:
    name = parse_optional_str(key, value)
    if name is not None and not _HOST_NAME.fullmatch(name):
        raise _bad(key, value, "a host name such as 'vault.example.com'")
    return name


def parse_mapping(key: str, value: object) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _bad(key, value, "a JSON object") from None
    if not isinstance(value, Mapping):
        raise _bad(key, value, "a mapping")
    return dict(value)


def parse_rotation(key: str, value: object) -> RotationRules:
    """``VAULT_ROTATION``: every secret's rules checked now, so a bad entry stops start-up."""
    return RotationRules.from_config(parse_mapping(key, value))


def parse_health_url(key: str, value: object) -> str | None:
    if value is None or value is False:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("", "none", "false", "off"):
            return None
        if value.startswith("/"):
            return value
    raise _bad(key, value, "a URL path starting with '/', or None to disable the endpoint")


@dataclass(frozen=True, repr=False)
class VaultSettings:
    """Every flask-vault setting, validated. Built by :meth:`load`. Its ``repr`` shows no credential."""

    urls: tuple[str, ...] = (DEFAULT_URL,)
    token: str | None = None
    namespace: str | None = None
    #: What ``requests`` verifies with: False (VAULT_SKIP_VERIFY), a CA file or directory, or True.
    verify: bool | str = True
    # TLS, with the Vault CLI's names (see flask_vault.vault.tls).
    cacert: str | None = None
    capath: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    tls_server_name: str | None = None
    skip_verify: bool = False
    allow_insecure: bool = False
    mount_point: str = "secret"
    path_prefix: str | None = None
    environment: str = "development"
    cache_ttl: float = 300.0
    timeout: float = 5.0
    secrets: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SECRETS))
    fallback_env: bool = True
    fail_fast: bool = True
    health_url: str | None = "/health/vault"
    health_cache_seconds: float = 5.0
    health_details: bool = False
    health_token: str | None = None
    stale_max_age: float = 86400.0
    fail_closed: bool = True
    live_refresh: bool = True
    startup_timeout: float = 10.0
    max_retries: int = 3
    # Authentication (see flask_vault.auth.methods).
    auth_method: str | None = None
    token_file: str | None = None
    role_id: str | None = None
    secret_id: str | None = None
    secret_id_file: str | None = None
    wrapped_secret_id: str | None = None
    role_name: str | None = None
    approle_mount: str = "approle"
    jwt_role: str | None = None
    jwt: str | None = None
    jwt_file: str | None = None
    jwt_mount: str = "jwt"
    k8s_role: str | None = None
    k8s_mount: str = "kubernetes"
    k8s_token_file: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    revoke_on_exit: bool | None = None
    # Rotation and backups.
    backup_dir: str | None = None
    backup_transit_key: str | None = None
    transit_mount: str = "transit"
    #: ``VAULT_ROTATION`` parsed over the built-in defaults (see flask_vault.rotation_rules).
    rotation: RotationRules = field(default_factory=lambda: RotationRules.from_config(None))
    # Rotation that every process survives.
    #: Seconds a replaced signing key is still accepted; None: PERMANENT_SESSION_LIFETIME.
    signing_key_window: float | None = None
    #: Flask-SQLAlchemy bind key -> database secret name (the default bind follows SQLALCHEMY_DATABASE_URI).
    database_binds: dict[str, str] = field(default_factory=dict)
    # Dynamic database credentials (see flask_vault.db.lease).
    #: The database secrets engine role whose credentials SQLALCHEMY_DATABASE_URI uses (None: KV's).
    database_role: str | None = None
    database_mount: str = "database"
    #: Flask-SQLAlchemy bind key -> database secrets engine role of its own.
    database_bind_roles: dict[str, str] = field(default_factory=dict)
    #: Seconds the previous credentials live on after a switch (connections checked out finish).
    database_grace: float = 30.0
    #: Health warns when a lease has less than this left (None: a quarter of its TTL).
    database_warn_ttl: float | None = None

    @property
    def url(self) -> str:
        """The first configured Vault address."""
        return self.urls[0]

    @classmethod
    def load(
        cls,
        config: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        default_prefix: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> VaultSettings:
        """Read settings from ``config``, then ``environ``, then the defaults.

        ``overrides`` (keyed like ``config``) win over both; ``VaultClient`` passes its
        constructor arguments this way.
        """
        lookup = _Lookup(config or {}, os.environ if environ is None else environ, overrides or {})
        values: dict[str, Any] = {}
        for spec in _SPECS:
            raw = lookup.get(spec.key, spec.aliases)
            if raw is not _MISSING:
                values[spec.attr] = spec.parse(spec.key, raw)
        if "path_prefix" not in values and default_prefix:
            values["path_prefix"] = default_prefix
        _check_tls(values)
        values["verify"] = (
            False if values.get("skip_verify") else (values.get("cacert") or values.get("capath") or True)
        )
        settings = cls(**values)
        settings._check_segments()
        _check_transport_security(settings)
        return settings

    def _check_segments(self) -> None:
        from flask_vault.paths import check_path_part

        check_path_part("VAULT_MOUNT_POINT", self.mount_point)
        check_path_part("VAULT_ENVIRONMENT", self.environment)
        check_path_part("VAULT_DATABASE_MOUNT", self.database_mount)
        if self.database_role is not None:
            check_path_part("VAULT_DATABASE_ROLE", self.database_role)
        if self.path_prefix is not None:
            check_path_part("VAULT_PATH_PREFIX", self.path_prefix)

    def __repr__(self) -> str:
        hidden = {spec.attr for spec in _SPECS if spec.credential}
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.name not in hidden)
        return f"VaultSettings({shown})"

    def without_login_credentials(self) -> VaultSettings:
        """These settings with every login credential removed (the authenticator holds them)."""
        clean = copy.copy(self)  # the values were checked already: no need to build them again
        for spec in _SPECS:
            if spec.credential == LOGIN:
                object.__setattr__(clean, spec.attr, None)
        return clean

    def replace(self, **changes: Any) -> VaultSettings:
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(changes)
        return VaultSettings(**current)


def _check_tls(values: Mapping[str, Any]) -> None:
    """Settings that contradict each other are refused, never one silently winning over the other."""
    if values.get("skip_verify"):
        for key, attr in (("VAULT_CACERT", "cacert"), ("VAULT_CAPATH", "capath")):
            if values.get(attr):
                raise VaultConfigError(
                    f"VAULT_SKIP_VERIFY=true turns off the verification that {key} sets up: set one of them, not"
                    " both (keep the CA setting; skipping verification is for local experiments only).",
                    key="VAULT_SKIP_VERIFY",
                )
    if values.get("cacert") and values.get("capath"):
        raise VaultConfigError(
            "Set one of VAULT_CACERT (a PEM file) and VAULT_CAPATH (a directory of PEM files), not both.",
            key="VAULT_CAPATH",
        )
    if bool(values.get("client_cert")) != bool(values.get("client_key")):
        names = ("VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY")
        given, missing = names if values.get("client_cert") else names[::-1]
        raise VaultConfigError(
            f"{given} is set but {missing} is not: mutual TLS needs both the client certificate and its key.",
            key=missing,
        )


def _is_loopback(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_transport_security(settings: VaultSettings) -> None:
    """Skipping verification, or plain http:// beyond this machine: one warning, refused in production."""
    risks = []
    if settings.skip_verify:
        risks.append("VAULT_SKIP_VERIFY=true turns off TLS verification, so anyone on the path can pose as Vault")
    plain = [url for url in settings.urls if url.startswith("http://") and not _is_loopback(url)]
    if plain:
        risks.append(
            f"VAULT_URL {', '.join(plain)} is plain http:// to another machine, so tokens and secrets cross the"
            " network unencrypted"
        )
    if not risks:
        return
    risk = "; ".join(risks)
    if settings.environment == "production" and not settings.allow_insecure:
        raise VaultConfigError(
            f"Refused because VAULT_ENVIRONMENT is 'production': {risk}. Use https:// with a verified certificate"
            " (VAULT_CACERT or VAULT_CAPATH), or set VAULT_ALLOW_INSECURE=true to accept the risk.",
            key="VAULT_SKIP_VERIFY" if settings.skip_verify else "VAULT_URL",
        )
    log.warning("Insecure connection to Vault: %s.", risk)


_MISSING: Any = object()


class _Lookup:
    def __init__(self, config: Mapping[str, Any], environ: Mapping[str, str], overrides: Mapping[str, Any]) -> None:
        self.config = config
        self.environ = environ
        #: The names once: a miss in os.environ costs a KeyError, and most settings are missing.
        self.environ_names = set(environ)
        self.overrides = overrides

    def get(self, key: str, aliases: tuple[str, ...]) -> Any:
        if key in self.overrides:
            return self.overrides[key]
        if key in self.config:
            return self.config[key]
        names = self.environ_names
        if key in names:
            return self.environ[key]
        for alias in aliases:
            if alias in names:
                return self.environ[alias]
        return _MISSING


#: A credential the authenticator holds: removed from app.config and from the settings after start-up.
#: ``VAULT_ROLE_ID`` counts: it is half of an AppRole login, and often the easier half to steal.
LOGIN = "login"
#: A credential the app itself keeps using (the health endpoint's bearer token): removed from
#: app.config, kept in the settings, never in their repr.
KEPT = "kept"


@dataclass(frozen=True)
class _Spec:
    key: str
    attr: str
    parse: Callable[[str, Any], Any]
    aliases: tuple[str, ...] = ()
    #: LOGIN or KEPT when the setting holds a credential: its value is never shown.
    credential: str | None = None
    #: One sentence for the settings table (docs).
    description: str = ""


def _str_required(key: str, value: object) -> str:
    parsed = parse_optional_str(key, value)
    if parsed is None:
        raise _bad(key, value, "a non-empty string")
    return parsed


def _path_required(key: str, value: object) -> str:
    path = parse_path(key, value)
    if path is None:
        raise _bad(key, value, "a file system path")
    return path


def _seconds(key: str, value: object) -> float:
    return parse_number(key, value)


def _positive_seconds(key: str, value: object) -> float:
    seconds = parse_number(key, value)
    if seconds <= 0:
        raise _bad(key, value, "a number of seconds > 0")
    return seconds


def _count(key: str, value: object) -> int:
    number = parse_number(key, value)
    if number != int(number):
        raise _bad(key, value, "a whole number >= 0")
    return int(number)


def _optional_bool(key: str, value: object) -> bool | None:
    return None if value is None else parse_bool(key, value)


def _optional_seconds(key: str, value: object) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, timedelta):
        value = value.total_seconds()
    return parse_number(key, value)


def parse_binds(key: str, value: object) -> dict[str, str]:
    """``{"reports": "reports-db"}``: bind keys to secret names (checked like every name)."""
    from flask_vault.paths import check_secret_name

    mapping = parse_mapping(key, value)
    binds: dict[str, str] = {}
    for bind, name in mapping.items():
        if not isinstance(bind, str) or not bind:
            raise _bad(key, bind, "bind keys that are non-empty strings")
        try:
            binds[bind] = check_secret_name(name)
        except VaultConfigError as exc:
            raise VaultConfigError(f"{key}[{bind!r}]: {exc.message}", key=key) from None
    return binds


def parse_bind_roles(key: str, value: object) -> dict[str, str]:
    """``{"reports": "reports-readonly"}``: bind keys to database secrets engine roles."""
    from flask_vault.paths import check_path_part

    roles: dict[str, str] = {}
    for bind, role in parse_mapping(key, value).items():
        if not isinstance(bind, str) or not bind:
            raise _bad(key, bind, "bind keys that are non-empty strings")
        if not isinstance(role, str):
            raise VaultConfigError(f"{key}[{bind!r}] must be a role name, got {role!r}.", key=key)
        try:
            roles[bind] = check_path_part(f"{key}[{bind!r}]", role)
        except VaultConfigError as exc:
            raise VaultConfigError(exc.message, key=key) from None
    return roles


_SPECS: tuple[_Spec, ...] = (
    _Spec("VAULT_URL", "urls", parse_urls, ("VAULT_ADDR",)),
    _Spec("VAULT_TOKEN", "token", parse_optional_str, credential=LOGIN),
    _Spec("VAULT_NAMESPACE", "namespace", parse_optional_str),
    _Spec(
        "VAULT_CACERT",
        "cacert",
        parse_file,
        description="CA bundle (PEM file) that signed the server's certificate; only it is trusted.",
    ),
    _Spec(
        "VAULT_CAPATH",
        "capath",
        parse_directory,
        description="A directory of CA certificates (PEM files), as the Vault CLI reads it; not with VAULT_CACERT.",
    ),
    _Spec(
        "VAULT_CLIENT_CERT",
        "client_cert",
        parse_file,
        description="Client certificate (PEM) for a listener that requires mutual TLS; with VAULT_CLIENT_KEY.",
    ),
    _Spec(
        "VAULT_CLIENT_KEY",
        "client_key",
        parse_file,
        description="The private key (PEM, unencrypted) of VAULT_CLIENT_CERT.",
    ),
    _Spec(
        "VAULT_TLS_SERVER_NAME",
        "tls_server_name",
        parse_server_name,
        description="Host name sent as SNI and checked against the certificate, when VAULT_URL names another.",
    ),
    _Spec(
        "VAULT_SKIP_VERIFY",
        "skip_verify",
        parse_bool,
        description="Skip TLS verification: local experiments only; refused in production without"
        " VAULT_ALLOW_INSECURE, and never with VAULT_CACERT or VAULT_CAPATH.",
    ),
    _Spec(
        "VAULT_ALLOW_INSECURE",
        "allow_insecure",
        parse_bool,
        description="Accept VAULT_SKIP_VERIFY or plain http:// to another machine when VAULT_ENVIRONMENT is"
        " production (otherwise refused).",
    ),
    _Spec("VAULT_MOUNT_POINT", "mount_point", _str_required),
    _Spec("VAULT_PATH_PREFIX", "path_prefix", parse_optional_str),
    _Spec("VAULT_ENVIRONMENT", "environment", _str_required),
    _Spec("VAULT_CACHE_TTL", "cache_ttl", _seconds),
    _Spec("VAULT_TIMEOUT", "timeout", _positive_seconds),
    _Spec("VAULT_SECRETS", "secrets", parse_secrets_mapping),
    _Spec("VAULT_FALLBACK_ENV", "fallback_env", parse_bool),
    _Spec("VAULT_FAIL_FAST", "fail_fast", parse_bool),
    _Spec("VAULT_HEALTH_URL", "health_url", parse_health_url),
    _Spec("VAULT_HEALTH_CACHE_SECONDS", "health_cache_seconds", _seconds),
    _Spec("VAULT_HEALTH_DETAILS", "health_details", parse_bool),
    _Spec("VAULT_HEALTH_TOKEN", "health_token", parse_optional_str, credential=KEPT),
    _Spec("VAULT_STALE_MAX_AGE", "stale_max_age", _seconds),
    _Spec("VAULT_FAIL_CLOSED", "fail_closed", parse_bool),
    _Spec("VAULT_LIVE_REFRESH", "live_refresh", parse_bool),
    _Spec("VAULT_STARTUP_TIMEOUT", "startup_timeout", _seconds),
    _Spec("VAULT_MAX_RETRIES", "max_retries", _count),
    _Spec("VAULT_AUTH_METHOD", "auth_method", parse_auth_method),
    _Spec("VAULT_TOKEN_FILE", "token_file", parse_path),
    _Spec("VAULT_ROLE_ID", "role_id", parse_optional_str, credential=LOGIN),
    _Spec("VAULT_SECRET_ID", "secret_id", parse_optional_str, credential=LOGIN),
    _Spec("VAULT_SECRET_ID_FILE", "secret_id_file", parse_path),
    _Spec("VAULT_WRAPPED_SECRET_ID", "wrapped_secret_id", parse_optional_str, credential=LOGIN),
    _Spec("VAULT_ROLE_NAME", "role_name", parse_optional_str),
    _Spec("VAULT_APPROLE_MOUNT", "approle_mount", _str_required),
    _Spec("VAULT_JWT_ROLE", "jwt_role", parse_optional_str),
    _Spec("VAULT_JWT", "jwt", parse_optional_str, credential=LOGIN),
    _Spec("VAULT_JWT_FILE", "jwt_file", parse_path),
    _Spec("VAULT_JWT_MOUNT", "jwt_mount", _str_required),
    _Spec("VAULT_K8S_ROLE", "k8s_role", parse_optional_str),
    _Spec("VAULT_K8S_MOUNT", "k8s_mount", _str_required),
    _Spec("VAULT_K8S_TOKEN_FILE", "k8s_token_file", _path_required),
    _Spec("VAULT_REVOKE_ON_EXIT", "revoke_on_exit", _optional_bool),
    _Spec("VAULT_BACKUP_DIR", "backup_dir", parse_path),
    _Spec("VAULT_BACKUP_TRANSIT_KEY", "backup_transit_key", parse_optional_str),
    _Spec("VAULT_TRANSIT_MOUNT", "transit_mount", _str_required),
    _Spec("VAULT_ROTATION", "rotation", parse_rotation),
    _Spec("VAULT_SIGNING_KEY_WINDOW", "signing_key_window", _optional_seconds),
    _Spec("VAULT_DATABASE_BINDS", "database_binds", parse_binds),
    _Spec("VAULT_DATABASE_ROLE", "database_role", parse_optional_str),
    _Spec("VAULT_DATABASE_MOUNT", "database_mount", _str_required),
    _Spec("VAULT_DATABASE_BIND_ROLES", "database_bind_roles", parse_bind_roles),
    _Spec("VAULT_DATABASE_GRACE", "database_grace", _seconds),
    _Spec("VAULT_DATABASE_WARN_TTL", "database_warn_ttl", _optional_seconds),
)

#: Settings that hold a credential: their values are never shown (messages, reprs) and leave ``app.config``.
CREDENTIAL_KEYS = frozenset(spec.key for spec in _SPECS if spec.credential)
#: Login credentials: removed from ``app.config`` once the authenticator holds them.
LOGIN_CREDENTIAL_KEYS = tuple(spec.key for spec in _SPECS if spec.credential == LOGIN)


#: The Vault and OpenBao CLIs' (and servers') own environment variables: never taken for a misspelt setting.
#: One string, split: flask-vault does not read these names (the docs' settings table lists each quoted
#: ``VAULT_*`` name in this module as one it reads), though some are settings of its own too.
VAULT_CLI_VARIABLES = frozenset(
    """
    VAULT_ADDR VAULT_AGENT_ADDR VAULT_API_ADDR VAULT_CACERT VAULT_CACERT_BYTES
    VAULT_CAPATH VAULT_CLI_NO_COLOR VAULT_CLIENT_CERT VAULT_CLIENT_KEY VAULT_CLIENT_TIMEOUT
    VAULT_CLUSTER_ADDR VAULT_DEV_LISTEN_ADDRESS VAULT_DEV_ROOT_TOKEN_ID VAULT_DISABLE_REDIRECTS VAULT_FORMAT
    VAULT_HTTP_PROXY VAULT_LICENSE VAULT_LICENSE_PATH VAULT_LOG_FORMAT VAULT_LOG_LEVEL
    VAULT_MAX_RETRIES VAULT_MFA VAULT_NAMESPACE VAULT_PROXY_ADDR VAULT_RATE_LIMIT
    VAULT_REDIRECT_ADDR VAULT_SKIP_VERIFY VAULT_SRV_LOOKUP VAULT_TLS_SERVER_NAME VAULT_TOKEN
    VAULT_WRAP_TTL
    """.split()
)
_SETTING_KEYS = frozenset(spec.key for spec in _SPECS)
#: Names read from the environment only (``VAULT_ADDR``) -> the setting they stand for.
_ENV_ALIASES = {alias: spec.key for spec in _SPECS for alias in spec.aliases}
_PREFIX = "VAULT_"


def warn_unknown_settings(config: Mapping[str, Any], environ: Mapping[str, str]) -> None:
    """One WARNING line for each ``VAULT_*`` name flask-vault ignores but that was probably meant for it.

    In ``config``: every ``VAULT_*`` key that is not a setting (a misspelling such as
    ``VAULT_ENVIROMENT``, or ``VAULT_ADDR``, which only the environment gives), with the
    closest setting. In ``environ``: only a name close to a setting, never one of the Vault
    CLI's own variables (:data:`VAULT_CLI_VARIABLES`), which belong to other tools too.
    Costs a set lookup per ``VAULT_*`` name when every name is known.
    """
    for key in config:
        if isinstance(key, str) and key.startswith(_PREFIX) and key not in _SETTING_KEYS:
            if key in _ENV_ALIASES:
                log.warning(
                    "app.config[%r] is ignored: flask-vault reads %s from the environment only; in app.config the"
                    " setting is %s.",
                    key,
                    key,
                    _ENV_ALIASES[key],
                )
                continue
            guess = _closest_setting(key, cutoff=0.6)
            hint = f"; did you mean {guess}?" if guess else " (the settings are listed in docs/configuration.md)."
            log.warning("app.config[%r] is not a flask-vault setting and is ignored%s", key, hint)
    for name in environ:
        if name.startswith(_PREFIX) and name not in _SETTING_KEYS and name not in _ENV_ALIASES:
            if name in VAULT_CLI_VARIABLES:
                continue
            guess = _closest_setting(name, cutoff=0.8, word="_")  # whole words only: VAULT_ENV is not flagged
            if guess:
                log.warning(
                    "The environment variable %r is not a flask-vault setting and is ignored; did you mean %s?",
                    name,
                    guess,
                )


def _closest_setting(name: str, *, cutoff: float, word: str = "") -> str | None:
    """The one setting that ``name + word`` begins (``VAULT_MOUNT``: ``VAULT_MOUNT_POINT``), else the setting
    whose name after ``VAULT_`` is most like ``name``'s, if at least ``cutoff`` alike."""
    from flask_vault.display import closest

    longer = [key for key in _SETTING_KEYS if key.startswith(name + word)]
    if len(longer) == 1:
        return longer[0]
    found = closest(name[len(_PREFIX) :], [key[len(_PREFIX) :] for key in _SETTING_KEYS], cutoff=cutoff)
    return _PREFIX + found if found is not None else None
