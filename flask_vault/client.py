"""VaultClient: KV secrets by name, cached, with clear errors and no leaks.

The client turns a secret *name* (``flask``) into the KV path
``<mount>/<prefix>/<environment>/<name>``, detects whether the mount is KV v1 or v2,
reads through a :class:`~flask_vault.cache.SecretCache`, and translates hvac and
``requests`` failures into the :mod:`flask_vault.errors` hierarchy. Every call is
bounded by a timeout, retried with backoff when Vault is briefly unavailable, fails
over between configured addresses, and leaves one record in the audit trail.

Writes (:meth:`VaultClient.set_secret`, :meth:`VaultClient.rotate_secret`) go through
the one write path in :mod:`flask_vault.ops.write`, as ``flask vault`` does: the
current version is backed up to :attr:`VaultClient.backups` first, then the new data
is written with check-and-set, audited as one operation and cached.
"""

from __future__ import annotations

import base64
import os
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import hvac
import hvac.exceptions
import requests
from flask import has_app_context

from flask_vault.auth.keeper import TokenKeeper
from flask_vault.auth.methods import Authenticator, authenticator_from_settings
from flask_vault.cache import CachedSecret, Loader, SecretCache
from flask_vault.errors import (
    SecretNotFoundError,
    VaultAuthError,
    VaultConfigError,
    VaultConflictError,
    VaultError,
    VaultPermissionError,
    VaultUnavailableError,
)
from flask_vault.observe import audit
from flask_vault.ops.backup import BackupStore, default_backup_dir
from flask_vault.ops.rotation import plan_field_rotation
from flask_vault.ops.write import apply_write, check_data, plan_put
from flask_vault.paths import base_path, check_secret_name, relative_path
from flask_vault.settings import VaultSettings
from flask_vault.state import find_state
from flask_vault.vault.probe import probe_address
from flask_vault.vault.transport import VaultAdapter, origin_of

T = TypeVar("T")
_MISSING: Any = object()

#: Longest total time spent backing off between retries of one call (seconds).
RETRY_BUDGET = 10.0
_BACKOFF_BASE = 0.1
_BACKOFF_CAP = 2.0
#: How many checked secret names a client remembers with their paths (a bound, not a cache policy).
_KNOWN_NAMES_MAX = 1024


class VaultClient:
    """A cached client for KV secrets laid out as ``<mount>/<prefix>/<environment>/<name>``.

    Arguments left as ``None`` come from the ``VAULT_*`` environment variables (the
    same ones ``init_app`` reads), then from the defaults: ``cache_ttl`` 300 s,
    ``mount_point`` ``"secret"``, ``environment`` ``"development"``, no prefix.
    ``backup_dir``: where writes back up the version they replace; default
    ``VAULT_BACKUP_DIR``, else ``vault-backups`` in the user's state directory
    (``~/.local/state/flask-vault/`` on Linux). An app's client uses the app's
    ``<instance folder>/vault-backups`` instead.
    """

    def __init__(
        self,
        vault_url: str | None = None,
        vault_token: str | None = None,
        environment: str | None = None,
        cache_ttl: float | None = None,
        *,
        mount_point: str | None = None,
        path_prefix: str | None = None,
        namespace: str | None = None,
        verify: bool | str | None = None,
        timeout: float | None = None,
        settings: VaultSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        authenticator: Authenticator | None = None,
        backup_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if settings is None:
            overrides = {
                key: value
                for key, value in {
                    "VAULT_URL": vault_url,
                    "VAULT_TOKEN": vault_token,
                    "VAULT_ENVIRONMENT": environment,
                    "VAULT_CACHE_TTL": cache_ttl,
                    "VAULT_MOUNT_POINT": mount_point,
                    "VAULT_PATH_PREFIX": path_prefix,
                    "VAULT_NAMESPACE": namespace,
                    "VAULT_TIMEOUT": timeout,
                }.items()
                if value is not None
            }
            settings = VaultSettings.load({}, os.environ, overrides=overrides)
            if verify is not None:
                settings = settings.replace(verify=verify)
        self.settings = settings
        self.cache = SecretCache(settings.cache_ttl, stale_max_age=settings.stale_max_age, clock=clock)
        self._url_index = 0
        #: Secret name -> full path, for names already checked (see read()).
        #: Secret name -> (full path, its cache loader), for names already checked: the hit path
        #: skips the name check, the path join and building a loader.
        self._known_names: dict[str, tuple[str, Loader]] = {}
        self._kv_version: int | None = None
        self._lock = threading.Lock()
        self._kv_lock = threading.Lock()
        self._hvac = self._new_hvac_client(settings.token)
        #: Logs in, renews and replaces the token (see flask_vault.auth.keeper); one per client per process.
        self.keeper = TokenKeeper(self, authenticator or authenticator_from_settings(settings), clock=clock)
        #: Audit records, request counters and the token's accessor hash (see flask_vault.observe.audit).
        self.trail = audit.AuditTrail(
            token=lambda: self.token,
            token_id_hint=lambda: getattr(getattr(self, "keeper", None), "token_id", None),
            lookup_self=lambda: self._hvac.auth.token.lookup_self(),
        )
        self.metrics = self.trail.metrics
        #: Where writes back up the version they replace (see flask_vault.ops.backup).
        self.backups = BackupStore.for_client(
            self, Path(backup_dir).expanduser() if backup_dir is not None else default_backup_dir(settings)
        )

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: VaultSettings, **kwargs: Any) -> VaultClient:
        return cls(settings=settings, **kwargs)

    def _new_hvac_client(self, token: str | None) -> hvac.Client:
        session = requests.Session()
        session.trust_env = False  # no proxy or netrc surprises from the environment
        # hvac prefers a passed session's own `verify` (True by default) over its verify argument.
        session.verify = self.settings.verify
        client = hvac.Client(
            url=self.url,
            token=token or "",  # "" stops hvac from reading VAULT_TOKEN or ~/.vault-token itself
            verify=self.settings.verify,
            timeout=self.settings.timeout,  # type: ignore[arg-type]  # requests takes floats
            namespace=self.settings.namespace,
            session=session,
            adapter=VaultAdapter,
            allow_redirects=False,  # VaultAdapter follows one redirect, to a configured address only
        )
        self._adapter(client).allowed_origins = frozenset(origin_of(url) for url in self.settings.urls)
        return client

    def _reset_after_fork(self) -> None:
        """In a forked child (called by the keeper): fresh locks and an HTTP session of its own."""
        self._lock = threading.Lock()
        self._kv_lock = threading.Lock()
        self._hvac = self._new_hvac_client(self.token)
        self.cache.reset_after_fork()

    @staticmethod
    def _adapter(client: hvac.Client) -> VaultAdapter:
        adapter = client.adapter
        assert isinstance(adapter, VaultAdapter)
        return adapter

    @property
    def url(self) -> str:
        """The Vault address currently in use (the last one that answered)."""
        return self.settings.urls[self._url_index]

    @property
    def mount_point(self) -> str:
        return self.settings.mount_point

    @property
    def environment(self) -> str:
        return self.settings.environment

    @property
    def path_prefix(self) -> str | None:
        return self.settings.path_prefix

    @property
    def hvac(self) -> hvac.Client:
        """The underlying hvac client, for anything this API does not cover."""
        return self._hvac

    @property
    def token(self) -> str | None:
        return self._hvac.token or None

    @token.setter
    def token(self, value: str | None) -> None:
        self._hvac.token = value or ""

    def __repr__(self) -> str:
        return (
            f"<VaultClient url={self.url!r} mount={self.mount_point!r} "
            f"prefix={self.path_prefix!r} environment={self.environment!r}>"
        )

    # -- paths -----------------------------------------------------------------------

    def secret_path(self, name: str) -> str:
        """The secret's path inside the mount, e.g. ``store-erp/production/flask``."""
        return relative_path(name, prefix=self.path_prefix, environment=self.environment)

    def full_path(self, name: str) -> str:
        """The path users see in Vault's CLI, e.g. ``secret/store-erp/production/flask``."""
        return f"{self.mount_point}/{self.secret_path(name)}"

    # -- reading ---------------------------------------------------------------------

    def get_secret(
        self,
        name: str,
        field: str | None = None,
        fallback_env: str | None = None,
        use_cache: bool = True,
    ) -> Any:
        """A secret's fields as a dict, or one field's value when ``field`` is given.

        When the secret cannot be read and ``fallback_env`` names a set environment
        variable, its value is returned instead.
        """
        try:
            entry = self.read(name, use_cache=use_cache)  # checks the name first (VaultConfigError)
            if field is None:
                return dict(entry.data)
            value = entry.data.get(field, _MISSING)
            return self._field(entry, field) if value is _MISSING else value
        except (VaultConfigError, VaultConflictError):
            raise
        except VaultError:
            if fallback_env and fallback_env in os.environ:
                return os.environ[fallback_env]
            raise

    def read(self, name: str, *, use_cache: bool = True) -> CachedSecret:
        """The cached entry (data, version, read time) for a secret."""
        known = self._known_names.get(name) if isinstance(name, str) else None
        if known is None:
            known = self._know(name)
        path, loader = known
        return self.cache.get(path, loader, use_cache=use_cache)

    def _know(self, name: str) -> tuple[str, Loader]:
        path = self.full_path(name)  # checks the name: VaultConfigError before any request

        def loader() -> CachedSecret:
            return self._read_for_cache(name, path)

        if len(self._known_names) < _KNOWN_NAMES_MAX:
            self._known_names[name] = (path, loader)
        return path, loader

    def _read_for_cache(self, name: str, path: str) -> CachedSecret:
        """Read for the cache; a 404 for a secret we had, from a node that is not active, is an outage.

        During a failover OpenBao standbys answer 404 (with no error text, exactly like a
        missing secret) until a new leader is elected. Only a node that says it is active
        is believed when it says a secret we have read before is gone.
        """
        try:
            return self._read_entry(name)
        except SecretNotFoundError as exc:
            if self.cache.peek(path) is None or self._current_node_is_active():
                raise
            raise VaultUnavailableError(
                f"Vault at {self.url} answered 404 for {path}, which it had before, and is not the active node:"
                " treating it as a failover in progress.",
                url=self.url,
                mount=self.mount_point,
                path=path,
                status=404,
            ) from exc

    def _current_node_is_active(self) -> bool:
        try:
            return self._adapter(self._hvac).raw_get("/v1/sys/health").status_code == 200
        except requests.RequestException:
            return False

    def read_version(self, name: str, version: int | None = None) -> CachedSecret:
        """Read a given KV v2 version (the current one when None), bypassing the cache."""
        return self._read_entry(name, version=version)

    def _field(self, entry: CachedSecret, field: str) -> Any:
        if field not in entry.data:
            present = ", ".join(sorted(map(str, entry.data))) or "none"
            raise SecretNotFoundError(
                f"The secret at {entry.path} has no field {field!r}; fields present: {present}.",
                url=self.url,
                mount=self.mount_point,
                path=entry.path,
            )
        return entry.data[field]

    def _read_entry(self, name: str, *, version: int | None = None) -> CachedSecret:
        """Read from Vault. KV v2 is tried first; the mount is asked its version only when that fails."""
        rel = self.secret_path(name)
        full = self.full_path(name)
        if self._kv_version == 1:
            return self._read_v1(rel, full, version)
        try:
            entry = self._read_v2(rel, full, version)
        except (SecretNotFoundError, VaultPermissionError):
            # On a KV v1 mount the v2 path (<mount>/data/...) is missing or outside the policy.
            if self._kv_version is None and self.kv_version(full) == 1:
                return self._read_v1(rel, full, version)
            raise
        if entry is None:  # an answer without KV v2's metadata: a v1 secret named data/...
            if self.kv_version(full) == 1:
                return self._read_v1(rel, full, version)
            raise VaultError(f"Vault's answer for {full} has no KV v2 metadata.", url=self.url, path=full)
        if self._kv_version is None:
            self._kv_version = 2
        return entry

    def _read_v1(self, rel: str, full: str, version: int | None) -> CachedSecret:
        if version is not None:
            raise VaultConfigError(f"Versions need a KV v2 mount; {self.mount_point!r} is KV v1.", key="version")
        response = self._call(
            "read", full, lambda: self._hvac.secrets.kv.v1.read_secret(rel, mount_point=self.mount_point)
        )
        return CachedSecret(full, dict(response["data"]), None, self.cache.clock())

    def _read_v2(self, rel: str, full: str, version: int | None) -> CachedSecret | None:
        response = self._call(
            "read",
            full,
            lambda: self._hvac.secrets.kv.v2.read_secret_version(
                path=rel, version=version, mount_point=self.mount_point, raise_on_deleted_version=True
            ),
        )
        data = response["data"]
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            return None
        return CachedSecret(
            full,
            dict(data.get("data") or {}),
            metadata.get("version"),
            self.cache.clock(),
            metadata.get("created_time"),
        )

    def list_secrets(self) -> list[str]:
        """Names of every secret under ``<prefix>/<environment>/``, sorted."""
        root = base_path(prefix=self.path_prefix, environment=self.environment)
        names: list[str] = []
        pending = [""]
        while pending:
            folder = pending.pop()
            keys = self._list_folder("/".join(p for p in (root, folder.rstrip("/")) if p))
            for key in keys:
                if key.endswith("/"):
                    pending.append(folder + key)
                else:
                    names.append(folder + key)
        return sorted(names)

    def _list_folder(self, rel: str) -> list[str]:
        full = f"{self.mount_point}/{rel}"
        kv = self._hvac.secrets.kv
        lister: Callable[[], Any]
        if self.kv_version(full) == 1:
            lister = lambda: kv.v1.list_secrets(rel, mount_point=self.mount_point)  # noqa: E731
        else:
            lister = lambda: kv.v2.list_secrets(rel, mount_point=self.mount_point)  # noqa: E731
        try:
            response = self._call("list", full, lister)
        except SecretNotFoundError:
            return []
        return list(response["data"]["keys"])

    def read_metadata(self, name: str) -> dict[str, Any]:
        """KV v2 metadata: current version and every version's times (no values)."""
        self._require_kv2("read_metadata")
        rel, full = self.secret_path(name), self.full_path(name)
        response = self._call(
            "metadata", full, lambda: self._hvac.secrets.kv.v2.read_secret_metadata(rel, mount_point=self.mount_point)
        )
        return dict(response["data"])

    # -- writing ---------------------------------------------------------------------

    def set_secret(self, name: str, data: Mapping[str, Any], *, cas: int | None = None) -> int | None:
        """Write ``data`` as the secret's new contents; returns the new KV v2 version (None on KV v1).

        Like ``flask vault put``: the current version is read and backed up to
        :attr:`backups` first, then ``data`` is written with check-and-set against it,
        so a concurrent change raises :class:`VaultConflictError` and changes nothing.
        ``cas`` insists on a version (0: only if the secret is absent). One ``put``
        record goes to the audit trail. A PostgreSQL password changes in Vault only;
        :meth:`rotate_secret` changes the role's too.
        """
        return apply_write(self, plan_put(self, name, data, cas=cas), self.backups).new_version

    def rotate_secret(self, name: str, field: str, new_value: str | None = None) -> int | None:
        """Replace one field with ``new_value``, or a new value made by its ``VAULT_ROTATION`` rule.

        Like ``flask vault rotate --secret NAME --field FIELD``: other fields are kept, the
        current version is backed up to :attr:`backups` first, the write is
        check-and-set against the version just read (a concurrent change raises
        :class:`VaultConflictError`), one ``rotate`` record goes to the audit trail, and
        a PostgreSQL login's ``password`` is changed in the database too. Connection
        fields (host, port, user, database, driver, URL) are refused. Returns the new
        version (None on KV v1, where there is no check-and-set).
        """
        return apply_write(self, plan_field_rotation(self, name, field, new_value), self.backups).new_version

    def raw_write(
        self, name: str, data: Mapping[str, Any], *, cas: int | None = None, kv_version: int | None = None
    ) -> int | None:
        """Low level: one KV write, with no backup, no composite audit record and no cache update.

        The write path (:mod:`flask_vault.ops.write`) calls this after it has backed up
        the current version; use :meth:`set_secret` instead. ``kv_version`` is the
        mount's version as the caller already decided it (asked when None).
        """
        check_secret_name(name)
        payload = check_data(data)
        rel, full = self.secret_path(name), self.full_path(name)
        if (kv_version or self.kv_version(full)) == 1:
            if cas is not None:
                raise VaultConfigError("cas needs a KV v2 mount.", key="cas")
            self._call(
                "write",
                full,
                lambda: self._hvac.secrets.kv.v1.create_or_update_secret(rel, payload, mount_point=self.mount_point),
                idempotent=True,
            )
            return None
        response = self._call(
            "write",
            full,
            lambda: self._hvac.secrets.kv.v2.create_or_update_secret(
                rel, payload, cas=cas, mount_point=self.mount_point
            ),
            idempotent=False,
        )
        version: int | None = response["data"]["version"]
        return version

    def clear_cache(self) -> None:
        """Forget every cached secret; the next read asks Vault."""
        self.cache.clear()

    def data_path(self, name: str) -> str:
        """The API path policies name for a secret's values (``secret/data/...`` on KV v2)."""
        rel = self.secret_path(name)
        return f"{self.mount_point}/data/{rel}" if self.kv_version() == 2 else f"{self.mount_point}/{rel}"

    # -- other engines ---------------------------------------------------------------

    def capabilities(self, paths: list[str]) -> dict[str, list[str]]:
        """This token's capabilities on each API path (``sys/capabilities-self``)."""
        response = self._call(
            "capabilities",
            "sys/capabilities-self",
            lambda: self._hvac.adapter.post("/v1/sys/capabilities-self", json={"paths": paths}),
        )
        data = (response or {}).get("data") or response or {}
        return {path: list(data.get(path) or []) for path in paths}

    def transit_encrypt(self, key: str, plaintext: bytes, *, mount: str = "transit", associated_data: bytes) -> str:
        """Encrypt with a Transit key; ``associated_data`` is authenticated, not stored."""
        response = self._call(
            "encrypt",
            f"{mount}/encrypt/{key}",
            lambda: self._hvac.secrets.transit.encrypt_data(
                key,
                plaintext=base64.b64encode(plaintext).decode(),
                associated_data=base64.b64encode(associated_data).decode(),
                mount_point=mount,
            ),
            idempotent=True,
        )
        return str(response["data"]["ciphertext"])

    def transit_decrypt(self, key: str, ciphertext: str, *, mount: str = "transit", associated_data: bytes) -> bytes:
        """Decrypt what :meth:`transit_encrypt` returned; fails if ``associated_data`` differs."""
        response = self._call(
            "decrypt",
            f"{mount}/decrypt/{key}",
            lambda: self._hvac.secrets.transit.decrypt_data(
                key,
                ciphertext=ciphertext,
                associated_data=base64.b64encode(associated_data).decode(),
                mount_point=mount,
            ),
        )
        return base64.b64decode(response["data"]["plaintext"])

    # -- server ----------------------------------------------------------------------

    def kv_version(self, for_path: str | None = None) -> int:
        """1 or 2, detected once from the mount's options (2 when it can't be told).

        ``for_path`` is the secret path being accessed, named by the error when the
        detection itself fails (e.g. Vault is unreachable).
        """
        if self._kv_version is not None:
            return self._kv_version
        with self._kv_lock:  # one detection at a time (not self._lock: _call may fail over under it)
            if self._kv_version is None:
                detected = self._detect_kv_version(for_path)
                if detected is None:
                    return 2  # the mount would not tell: assume v2, ask again next time
                self._kv_version = detected
            return self._kv_version

    def _detect_kv_version(self, for_path: str | None = None) -> int | None:
        try:
            response = self._call(
                "mount",
                for_path or self.mount_point,
                lambda: self._hvac.adapter.get(f"/v1/sys/internal/ui/mounts/{self.mount_point}"),
            )
        except (VaultPermissionError, SecretNotFoundError, VaultAuthError):
            return None
        options = ((response or {}).get("data") or {}).get("options") or {}
        return 1 if str(options.get("version", "2")) == "1" else 2

    def _require_kv2(self, what: str) -> None:
        if self.kv_version() != 2:
            raise VaultConfigError(f"{what} needs a KV v2 mount; {self.mount_point!r} is KV v1.", key="mount_point")

    def health_check(self) -> dict[str, Any]:
        """Server and login state of the address in use, never raising and never showing a token.

        Keys: ``url``, ``reachable``, ``state`` (``active``, ``standby``, ``sealed``,
        ``not-initialized``, ``unreachable``, ...), ``initialized``, ``sealed``, ``standby``,
        ``version``, ``response_ms``, ``status_code``, ``authenticated``, ``auth_method``
        and, when the server can serve and the token works, ``token_ttl``, ``renewable``
        and ``policies``; ``error`` when something failed. The server part is the
        ``sys/health`` probe that ``/health/vault`` makes (see :mod:`flask_vault.vault.probe`).
        """
        server = probe_address(self._adapter(self._hvac), self.url)
        report: dict[str, Any] = {
            "url": server.url,
            "reachable": server.reachable,
            "state": server.state,
            "initialized": server.initialized,
            "sealed": server.sealed,
            "standby": server.standby,
            "version": server.version,
            "response_ms": server.response_ms,
            "status_code": server.status_code,
            "authenticated": False,
            "auth_method": self.keeper.method,
        }
        if server.output:
            report["error"] = server.output
        if server.serving:
            report.update(self._token_health())
        return report

    def _token_health(self) -> dict[str, Any]:
        try:
            self.keeper.before_call()  # auth: log in first when this process has not yet
        except VaultError as exc:
            return {"authenticated": False, "error": exc.message}
        if not self.token:
            return {"authenticated": False, "error": "No Vault token: set VAULT_TOKEN or configure a login method."}
        try:
            info = self.lookup_token()
        except VaultError as exc:
            return {"authenticated": False, "error": exc.message}
        return {
            "authenticated": True,
            "token_ttl": info.get("ttl"),
            "renewable": info.get("renewable"),
            "policies": sorted(info.get("policies") or []),
        }

    def lookup_token(self) -> dict[str, Any]:
        """The current token's lookup-self data, with ``id`` and ``accessor`` removed."""
        response = self._call("lookup", "auth/token/lookup-self", self._hvac.auth.token.lookup_self)
        data = dict(response.get("data") or {})
        accessor = data.pop("accessor", None)
        data.pop("id", None)
        data["token_id"] = audit.accessor_hash(accessor)
        return data

    # -- transport -------------------------------------------------------------------

    def _call(self, operation: str, path: str, func: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one Vault request with retries, failover and an audit record."""
        started = time.perf_counter()
        attempt = 0
        backoff_spent = 0.0
        relogged = False
        while True:
            generation = self.keeper.before_call()  # auth: log in first when this process has no token yet
            try:
                result = func()
            except Exception as exc:
                error = self._translate(exc, path)
                if not relogged and self.keeper.recover(error, generation):
                    relogged = True  # auth: 403 for an expired or revoked token; new token, retry once
                    continue
                delay = self._retry_delay(exc, error, attempt, idempotent)
                if delay is None or backoff_spent + delay > RETRY_BUDGET:
                    duration = time.perf_counter() - started
                    outcome = type(error).__name__
                    self.trail.finish(operation, path, outcome=outcome, duration=duration, status=error.status)
                    raise error from exc
                if _is_connection_error(exc):
                    self._fail_over()
                attempt += 1
                backoff_spent += delay
                time.sleep(delay)
                continue
            self.trail.finish(
                operation,
                path,
                outcome="ok",
                duration=time.perf_counter() - started,
                version=_version_of(result),
                result=result,
            )
            return result

    def _retry_delay(self, exc: Exception, error: VaultError, attempt: int, idempotent: bool) -> float | None:
        if attempt >= self.settings.max_retries or not isinstance(error, VaultUnavailableError):
            return None
        if not idempotent and not isinstance(exc, requests.ConnectionError):
            return None  # the request may have reached Vault: do not write twice
        if error.status == 501:  # not initialized: waiting will not help
            return None
        if isinstance(exc, requests.ReadTimeout):
            return None  # a hung server: retrying would multiply the wait the timeout promised
        if isinstance(exc, requests.exceptions.SSLError):
            return None  # a certificate problem does not go away by waiting
        return random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))

    def _fail_over(self) -> None:
        if len(self.settings.urls) < 2:
            return
        with self._lock:
            self._url_index = (self._url_index + 1) % len(self.settings.urls)
            self._hvac.adapter.base_uri = self.url

    def _translate(self, exc: Exception, path: str) -> VaultError:
        where: dict[str, Any] = {"url": self.url, "mount": self.mount_point, "path": path}
        if isinstance(exc, VaultError):
            return exc
        if isinstance(exc, requests.exceptions.SSLError):
            return VaultUnavailableError(
                f"TLS verification failed for Vault at {self.url} ({path}). Set VAULT_CACERT to the CA bundle that "
                "signed the server's certificate (VAULT_SKIP_VERIFY=true only for local experiments).",
                **where,
            )
        if isinstance(exc, requests.Timeout):
            return VaultUnavailableError(
                f"Vault at {self.url} did not answer within {self.settings.timeout:g}s ({path}). "
                "Check the server's load and VAULT_TIMEOUT.",
                **where,
            )
        if isinstance(exc, requests.ConnectionError):
            return VaultUnavailableError(
                f"Cannot connect to Vault at {self.url} ({path}). Is the server running, and is VAULT_URL "
                "(or VAULT_ADDR) right?",
                **where,
            )
        if isinstance(exc, requests.RequestException):
            return VaultUnavailableError(
                f"Request to Vault at {self.url} failed ({type(exc).__name__}) for {path}.", **where
            )
        if isinstance(exc, hvac.exceptions.VaultError):
            return _translate_status(exc, self, path)
        return VaultError(f"Unexpected error talking to Vault at {self.url} for {path}: {type(exc).__name__}.", **where)


def _translate_status(exc: hvac.exceptions.VaultError, client: VaultClient, path: str) -> VaultError:
    url, mount = client.url, client.mount_point
    where: dict[str, Any] = {"url": url, "mount": mount, "path": path}
    errors = "; ".join(str(e) for e in (exc.errors or []))[:300] or "no detail"
    status: int | None = getattr(exc, "status_code", None)  # set by VaultAdapter
    if isinstance(exc, hvac.exceptions.InvalidPath):
        return SecretNotFoundError(
            f"No secret at {path} on {url} (mount {mount!r}). Check the name, VAULT_PATH_PREFIX and "
            "VAULT_ENVIRONMENT, or create it with `flask vault put`.",
            status=404,
            **where,
        )
    if isinstance(exc, hvac.exceptions.Forbidden):
        if not client.token:
            return VaultAuthError(
                f"Vault at {url} refused {path}: no token. Set VAULT_TOKEN or configure a login method.",
                status=403,
                **where,
            )
        return VaultPermissionError(
            f"Permission denied for {path} on {url}: the token's policies do not allow this, or the token "
            "has expired or been revoked.",
            status=403,
            **where,
        )
    if isinstance(exc, hvac.exceptions.Unauthorized):
        return VaultAuthError(f"Vault at {url} rejected the login for {path}: {errors}.", status=401, **where)
    if isinstance(exc, hvac.exceptions.InvalidRequest):
        if "check-and-set" in errors:
            return VaultConflictError(
                f"{path} changed while it was being updated (check-and-set version mismatch); nothing was "
                "written. Read it again and retry.",
                status=400,
                **where,
            )
        return VaultError(f"Vault at {url} rejected the request for {path}: {errors}.", status=400, **where)
    if isinstance(exc, hvac.exceptions.VaultDown):
        return VaultUnavailableError(f"Vault at {url} is sealed or down (HTTP 503) for {path}.", status=503, **where)
    if isinstance(exc, hvac.exceptions.VaultNotInitialized):
        return VaultUnavailableError(f"Vault at {url} is not initialized (HTTP 501).", status=501, **where)
    if isinstance(exc, hvac.exceptions.RateLimitExceeded):
        return VaultUnavailableError(
            f"Vault at {url} is rate limiting or a standby (HTTP 429) for {path}.", status=429, **where
        )
    if isinstance(exc, (hvac.exceptions.InternalServerError, hvac.exceptions.BadGateway)):
        return VaultUnavailableError(
            f"Vault at {url} failed with HTTP {status} for {path}: {errors}.", status=status, **where
        )
    if status == 412 or (status is not None and status >= 500):
        return VaultUnavailableError(f"Vault at {url} answered HTTP {status} for {path}.", status=status, **where)
    return VaultError(f"Vault at {url} answered {status or 'an error'} for {path}: {errors}.", status=status, **where)


def _is_connection_error(exc: Exception) -> bool:
    return isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout)


def _version_of(result: Any) -> int | None:
    if isinstance(result, dict):
        data = result.get("data")
        if isinstance(data, dict):
            meta = data.get("metadata")
            for source in (meta, data):
                if isinstance(source, dict) and isinstance(source.get("version"), int):
                    return int(source["version"])
    return None


_default_client: VaultClient | None = None
_default_lock = threading.Lock()


def get_vault_client() -> VaultClient:
    """The client of the current Flask app, else a process-wide one built from ``VAULT_*``."""
    if has_app_context():
        state = find_state()  # one trip through the current_app proxy (about 1 µs per attribute access)
        if state is not None:
            client: VaultClient = state.client
            return client
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = VaultClient()
        return _default_client


def get_secret(name: str, field: str | None = None, fallback_env: str | None = None) -> Any:
    """Read a secret with :func:`get_vault_client`'s client (cached)."""
    return get_vault_client().get_secret(name, field, fallback_env)


def _reset_default_client() -> None:
    """Forget the process-wide client (tests, and after the environment changed)."""
    global _default_client
    with _default_lock:
        _default_client = None
