"""VaultClient: KV secrets by name, cached, with clear errors and no leaks.

The public facade over the layers below: the client turns a secret *name* (``flask``)
into the KV path ``<mount>/<prefix>/<environment>/<name>`` and reads it through a
:class:`~flask_vault.cache.SecretCache`. The work is done by

* :class:`~flask_vault.vault.transport.Transport`: every request, bounded by a timeout,
  retried with backoff when Vault is briefly unavailable, failed over between the
  configured addresses, translated into :mod:`flask_vault.errors`, and audited;
* :class:`~flask_vault.vault.kv.KV` (paths, KV v1/v2, reads, lists, writes) and
  :class:`~flask_vault.vault.transit.Transit`;
* :class:`~flask_vault.auth.keeper.TokenKeeper`, which owns the token.

Writes (:meth:`VaultClient.set_secret`, :meth:`VaultClient.rotate_secret`) go through
the one write path in :mod:`flask_vault.ops.write`, as ``flask vault`` does: the
current version is backed up to :attr:`VaultClient.backups` first, then the new data
is written with check-and-set, audited as one operation and cached.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import hvac
from flask import has_app_context

from flask_vault.auth.keeper import TokenKeeper
from flask_vault.auth.methods import Authenticator, authenticator_from_settings
from flask_vault.cache import CachedSecret, Loader, SecretCache
from flask_vault.display import did_you_mean
from flask_vault.errors import (
    SecretNotFoundError,
    VaultConfigError,
    VaultConflictError,
    VaultError,
    VaultUnavailableError,
)
from flask_vault.observe.audit import AuditTrail
from flask_vault.observe.metrics import VaultMetrics
from flask_vault.ops.backup import BackupStore, default_backup_dir
from flask_vault.ops.rotation import plan_field_rotation
from flask_vault.ops.write import apply_write, check_data, plan_put
from flask_vault.paths import check_secret_name
from flask_vault.settings import VaultSettings
from flask_vault.state import find_state
from flask_vault.vault.kv import KV
from flask_vault.vault.probe import probe_address
from flask_vault.vault.transit import Transit
from flask_vault.vault.transport import Transport

_MISSING: Any = object()

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
        #: Secret name -> (full path, its cache loader), for names already checked: the hit path
        #: skips the name check, the path join and building a loader.
        self._known_names: dict[str, tuple[str, Loader]] = {}
        #: The one request path: retries, failover, redirects, errors, the audit trail.
        self.transport = Transport(settings)
        self.kv = KV(
            self.transport,
            mount_point=settings.mount_point,
            path_prefix=settings.path_prefix,
            environment=settings.environment,
            clock=self.cache.clock,
        )
        self.transit = Transit(self.transport)
        #: Owns the token: logs in, renews and replaces it (see flask_vault.auth.keeper).
        self.keeper = TokenKeeper(
            self.transport,
            authenticator or authenticator_from_settings(settings),
            clock=clock,
            on_fork=self._after_fork,
        )
        self._backup_dir = backup_dir

    @cached_property
    def backups(self) -> BackupStore:
        """Where writes back up the version they replace (see flask_vault.ops.backup); made on first use."""
        backup_dir = self._backup_dir
        directory = Path(backup_dir).expanduser() if backup_dir is not None else default_backup_dir(self.settings)
        return BackupStore.for_client(self, directory)

    # -- construction ----------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: VaultSettings, **kwargs: Any) -> VaultClient:
        return cls(settings=settings, **kwargs)

    def _after_fork(self) -> None:
        """In a forked child (the keeper calls it first): fresh locks for the KV and the cache."""
        self.kv.reset_after_fork()
        self.cache.reset_after_fork()

    @property
    def url(self) -> str:
        """The Vault address currently in use (the last one that answered)."""
        return self.transport.url

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
        return self.transport.hvac

    @property
    def token(self) -> str | None:
        return self.keeper.token

    @token.setter
    def token(self, value: str | None) -> None:
        self.keeper.use_token(value)

    @property
    def trail(self) -> AuditTrail:
        """The audit trail (see docs/health.md): ``client.trail.operation(...)`` records a composite operation."""
        return self.transport.trail

    @property
    def metrics(self) -> VaultMetrics:
        """Request counters by operation and outcome (``vault.stats()``)."""
        return self.transport.trail.metrics

    def __repr__(self) -> str:
        return (
            f"<VaultClient url={self.url!r} mount={self.mount_point!r} "
            f"prefix={self.path_prefix!r} environment={self.environment!r}>"
        )

    # -- paths -----------------------------------------------------------------------

    def secret_path(self, name: str) -> str:
        """The secret's path inside the mount, e.g. ``store-erp/production/flask``."""
        return self.kv.secret_path(name)

    def full_path(self, name: str) -> str:
        """The path users see in Vault's CLI, e.g. ``secret/store-erp/production/flask``."""
        return self.kv.full_path(name)

    def data_path(self, name: str) -> str:
        """The API path policies name for a secret's values (``secret/data/...`` on KV v2)."""
        return self.kv.data_path(name)

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
            return self.kv.field(entry, field) if value is _MISSING else value
        except (VaultConfigError, VaultConflictError):
            raise
        except VaultError as exc:
            if fallback_env and fallback_env in os.environ:
                return os.environ[fallback_env]
            hinted = self._with_name_hint(exc, name) if isinstance(exc, SecretNotFoundError) else None
            if hinted is None:
                raise
            raise hinted from exc

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
            return self.kv.read(name)
        except SecretNotFoundError as exc:
            if self.cache.peek(path) is None or self.transport.node_is_active():
                raise
            raise VaultUnavailableError(
                f"Vault at {self.url} answered 404 for {path}, which it had before, and is not the active node:"
                " treating it as a failover in progress.",
                url=self.url,
                mount=self.mount_point,
                path=path,
                status=404,
            ) from exc

    def read_version(self, name: str, version: int | None = None) -> CachedSecret:
        """Read a given KV v2 version (the current one when None), bypassing the cache."""
        with self._names_a_close_name(name):
            return self.kv.read(name, version=version)

    def list_secrets(self) -> list[str]:
        """Names of every secret under ``<prefix>/<environment>/``, sorted."""
        return self.kv.list_names()

    def read_metadata(self, name: str) -> dict[str, Any]:
        """KV v2 metadata: current version and every version's times (no values)."""
        with self._names_a_close_name(name):
            return self.kv.metadata(name)

    def known_names(self) -> set[str]:
        """The secret names the settings name (``VAULT_SECRETS``, ``VAULT_DATABASE_BINDS``, ``VAULT_ROTATION``).

        A name that does not exist in Vault is compared with these for a "did you mean".
        """
        settings = self.settings
        names = {reference.partition("#")[0] for reference in settings.secrets.values()}
        return names | set(settings.database_binds.values()) | set(settings.rotation.configured)

    @contextmanager
    def _names_a_close_name(self, name: str) -> Iterator[None]:
        """A :class:`SecretNotFoundError` for ``name`` raised inside ends with the closest known name, if any."""
        try:
            yield
        except SecretNotFoundError as exc:
            hinted = self._with_name_hint(exc, name)
            if hinted is None:
                raise
            raise hinted from exc

    def _with_name_hint(self, exc: SecretNotFoundError, name: str) -> SecretNotFoundError | None:
        """``exc`` (Vault has no secret ``name``) with the closest known name added; None when none is close."""
        known = self.known_names()
        hint = did_you_mean(name, known) if exc.status == 404 and name not in known else ""
        if not hint:
            return None
        return SecretNotFoundError(exc.message + hint, url=exc.url, mount=exc.mount, path=exc.path, status=exc.status)

    # -- writing ---------------------------------------------------------------------

    def set_secret(self, name: str, data: Mapping[str, Any], *, cas: int | None = None) -> int | None:
        """Write ``data`` as the secret's new contents; returns the new KV v2 version (None on KV v1).

        When the secret already holds exactly ``data``, nothing is written (no backup, no new
        version) and its current version is returned.

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
        return self.kv.write(name, check_data(data), cas=cas, version=kv_version)

    def clear_cache(self) -> None:
        """Forget every cached secret; the next read asks Vault."""
        self.cache.clear()

    # -- other engines ---------------------------------------------------------------

    def capabilities(self, paths: list[str]) -> dict[str, list[str]]:
        """This token's capabilities on each API path (``sys/capabilities-self``)."""
        response = self.transport.request(
            "capabilities",
            "sys/capabilities-self",
            lambda: self.transport.hvac.adapter.post("/v1/sys/capabilities-self", json={"paths": paths}),
        )
        data = response.get("data") or response if isinstance(response, dict) else {}
        data = data if isinstance(data, dict) else {}
        return {path: [str(c) for c in held] if isinstance(held := data.get(path), list) else [] for path in paths}

    def transit_encrypt(self, key: str, plaintext: bytes, *, mount: str = "transit", associated_data: bytes) -> str:
        """Encrypt with a Transit key; ``associated_data`` is authenticated, not stored."""
        return self.transit.encrypt(key, plaintext, mount=mount, associated_data=associated_data)

    def transit_decrypt(self, key: str, ciphertext: str, *, mount: str = "transit", associated_data: bytes) -> bytes:
        """Decrypt what :meth:`transit_encrypt` returned; fails if ``associated_data`` differs."""
        return self.transit.decrypt(key, ciphertext, mount=mount, associated_data=associated_data)

    # -- server ----------------------------------------------------------------------

    def kv_version(self, for_path: str | None = None) -> int:
        """1 or 2, detected once from the mount's options (2 when it can't be told).

        ``for_path`` is the secret path being accessed, named by the error when the
        detection itself fails (e.g. Vault is unreachable).
        """
        return self.kv.version(for_path)

    def health_check(self) -> dict[str, Any]:
        """Server and login state of the address in use, never raising and never showing a token.

        Keys: ``url``, ``reachable``, ``state`` (``active``, ``standby``, ``sealed``,
        ``not-initialized``, ``unreachable``, ...), ``initialized``, ``sealed``, ``standby``,
        ``version``, ``response_ms``, ``status_code``, ``authenticated``, ``auth_method``
        and, when the server can serve and the token works, ``token_ttl``, ``renewable``
        and ``policies``; ``error`` when something failed. The server part is the
        ``sys/health`` probe that ``/health/vault`` makes (see :mod:`flask_vault.vault.probe`).
        """
        server = probe_address(self.transport.adapter, self.url, self.transport.tls)
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
        return self.keeper.lookup()


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
