"""KV secrets by name on one mount: paths, KV v1/v2 detection, reads, lists, metadata, writes.

A secret *name* (``flask``) lives at ``<mount>/<prefix>/<environment>/<name>``. The mount's
KV version is detected once, lazily: KV v2 is tried first and the mount is asked its
version only when that fails, so a v2 read costs one request. Nothing here caches
values; :class:`~flask_vault.client.VaultClient` puts a cache in front.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import hvac

from flask_vault.cache import CachedSecret
from flask_vault.display import did_you_mean, safe_repr, safe_text
from flask_vault.errors import (
    SecretNotFoundError,
    VaultAuthError,
    VaultConfigError,
    VaultError,
    VaultPermissionError,
)
from flask_vault.paths import base_path, is_valid_name, relative_path
from flask_vault.vault.translate import Need, answer_part
from flask_vault.vault.transport import Transport

log = logging.getLogger(__name__)

#: Bounds of a recursive listing (`flask vault list`, `rotate --all`, `backup --all`).
MAX_LISTED_NAMES = 10_000
MAX_LISTED_FOLDERS = 1_000
MAX_LIST_DEPTH = 16


class KV:
    """The KV mount of one client; every request goes through ``transport``.

    ``clock`` stamps what is read (it is the cache's clock, so ages compare).
    """

    def __init__(
        self,
        transport: Transport,
        *,
        mount_point: str,
        path_prefix: str | None,
        environment: str,
        clock: Callable[[], float],
    ) -> None:
        self.transport = transport
        self.mount_point = mount_point
        self.path_prefix = path_prefix
        self.environment = environment
        self.clock = clock
        self._version: int | None = None
        self._lock = threading.Lock()

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()

    @property
    def _hvac(self) -> hvac.Client:
        return self.transport.hvac  # looked up per request: a forked child gets a new one

    # -- paths -------------------------------------------------------------------------

    def secret_path(self, name: str) -> str:
        """The secret's path inside the mount, e.g. ``store-erp/production/flask``."""
        return relative_path(name, prefix=self.path_prefix, environment=self.environment)

    def full_path(self, name: str) -> str:
        """The path users see in Vault's CLI, e.g. ``secret/store-erp/production/flask``."""
        return f"{self.mount_point}/{self.secret_path(name)}"

    def data_path(self, name: str) -> str:
        """The API path policies name for a secret's values (``secret/data/...`` on KV v2)."""
        rel = self.secret_path(name)
        return f"{self.mount_point}/data/{rel}" if self.version() == 2 else f"{self.mount_point}/{rel}"

    # -- the mount's version -----------------------------------------------------------

    def version(self, for_path: str | None = None) -> int:
        """1 or 2, detected once from the mount's options (2 when it can't be told).

        ``for_path`` is the secret path being accessed, named by the error when the
        detection itself fails (e.g. Vault is unreachable).
        """
        if self._version is not None:
            return self._version
        with self._lock:  # one detection at a time (not the transport's lock: it may fail over under it)
            if self._version is None:
                detected = self._detect(for_path)
                if detected is None:
                    return 2  # the mount would not tell: assume v2, ask again next time
                self._version = detected
            return self._version

    def _detect(self, for_path: str | None) -> int | None:
        try:
            response = self.transport.request(
                "mount",
                for_path or self.mount_point,
                lambda: self._hvac.adapter.get(f"/v1/sys/internal/ui/mounts/{self.mount_point}"),
            )
        except (VaultPermissionError, SecretNotFoundError, VaultAuthError):
            return None
        options = ((response or {}).get("data") or {}).get("options") or {}
        return 1 if str(options.get("version", "2")) == "1" else 2

    def require_v2(self, what: str) -> None:
        if self.version() != 2:
            raise VaultConfigError(f"{what} needs a KV v2 mount; {self.mount_point!r} is KV v1.", key="mount_point")

    # -- reading -----------------------------------------------------------------------

    def read(self, name: str, *, version: int | None = None) -> CachedSecret:
        """Read from Vault (a given KV v2 version, or the current one)."""
        rel = self.secret_path(name)
        full = f"{self.mount_point}/{rel}"
        if self._version == 1:
            return self._read_v1(rel, full, version)
        try:
            entry = self._read_v2(rel, full, version)
        except (SecretNotFoundError, VaultPermissionError):
            # On a KV v1 mount the v2 path (<mount>/data/...) is missing or outside the policy.
            if self._version is None and self.version(full) == 1:
                return self._read_v1(rel, full, version)
            raise
        if entry is None:  # an answer without KV v2's metadata: a v1 secret named data/...
            if self.version(full) == 1:
                return self._read_v1(rel, full, version)
            raise VaultError(f"Vault's answer for {full} has no KV v2 metadata.", url=self.transport.url, path=full)
        if self._version is None:
            self._version = 2
        return entry

    def _read_v1(self, rel: str, full: str, version: int | None) -> CachedSecret:
        if version is not None:
            raise VaultConfigError(f"Versions need a KV v2 mount; {self.mount_point!r} is KV v1.", key="version")
        response = self.transport.request(
            "read",
            full,
            lambda: self._hvac.secrets.kv.v1.read_secret(rel, mount_point=self.mount_point),
            need=Need(("read",), full),
        )
        return CachedSecret(full, dict(self._part(response, full, "data")), None, self.clock())

    def _read_v2(self, rel: str, full: str, version: int | None) -> CachedSecret | None:
        response = self.transport.request(
            "read",
            full,
            lambda: self._hvac.secrets.kv.v2.read_secret_version(
                path=rel, version=version, mount_point=self.mount_point, raise_on_deleted_version=True
            ),
            need=Need(("read",), f"{self.mount_point}/data/{rel}"),
        )
        data = self._part(response, full, "data")
        metadata = data.get("metadata")
        if not isinstance(metadata, dict):
            return None
        version, created = metadata.get("version"), metadata.get("created_time")
        return CachedSecret(
            full,
            dict(self._part(response, full, "data", "data") if data.get("data") is not None else {}),
            version if isinstance(version, int) and not isinstance(version, bool) else None,
            self.clock(),
            created if isinstance(created, str) else None,
        )

    def _part(self, response: object, path: str, *keys: str, kind: type | tuple[type, ...] = dict) -> Any:
        return answer_part(response, *keys, kind=kind, path=path, url=self.transport.url)

    def field(self, entry: CachedSecret, field: str) -> Any:
        """One field's value; :class:`SecretNotFoundError` listing the fields present when it is absent."""
        if field not in entry.data:
            present = safe_text(", ".join(sorted(map(str, entry.data)))) or "none"
            raise SecretNotFoundError(
                f"The secret at {entry.path} has no field {field!r}; fields present: {present}."
                f"{did_you_mean(field, entry.data)} Add it"
                f" (`flask vault put {self._name_of(entry.path)} --field {field} --merge`) or fix the field name"
                " in VAULT_SECRETS.",
                url=self.transport.url,
                mount=self.mount_point,
                path=entry.path,
            )
        return entry.data[field]

    def _name_of(self, path: str) -> str:
        """The secret name in ``path`` (``secret/app/production/flask`` -> ``flask``)."""
        folder = f"{self.mount_point}/{base_path(prefix=self.path_prefix, environment=self.environment)}/"
        return path[len(folder) :] if path.startswith(folder) else path

    def list_names(self) -> list[str]:
        """Names of every secret under ``<prefix>/<environment>/``, sorted.

        Each key Vault lists is held to the rules of secret names before it is used (one
        that breaks them is skipped, with a warning); the walk stops with a
        :class:`VaultError` past :data:`MAX_LISTED_NAMES` names, :data:`MAX_LISTED_FOLDERS`
        folders or :data:`MAX_LIST_DEPTH` levels, whatever the server answers.
        """
        root = base_path(prefix=self.path_prefix, environment=self.environment)
        names: list[str] = []
        pending = [""]
        listed = 0
        while pending:
            folder = pending.pop()
            listed += 1
            where = "/".join(p for p in (root, folder.rstrip("/")) if p)
            if listed > MAX_LISTED_FOLDERS or folder.count("/") >= MAX_LIST_DEPTH:
                raise self._too_many(root, f"{MAX_LISTED_FOLDERS} folders or {MAX_LIST_DEPTH} levels")
            for key in self._list_folder(where):
                if key.endswith("/"):
                    pending.append(folder + key)
                else:
                    names.append(folder + key)
            if len(names) > MAX_LISTED_NAMES:
                raise self._too_many(root, f"{MAX_LISTED_NAMES} secrets")
        return sorted(names)

    def _too_many(self, root: str, bound: str) -> VaultError:
        return VaultError(
            f"Listing {self.mount_point}/{root}/ stopped: it holds more than {bound}, the most flask-vault walks."
            " Name the secrets you mean instead.",
            url=self.transport.url,
            mount=self.mount_point,
            path=f"{self.mount_point}/{root}",
        )

    def _list_folder(self, rel: str) -> list[str]:
        full = f"{self.mount_point}/{rel}"
        lister: Callable[[], Any]
        if self.version(full) == 1:
            lister = lambda: self._hvac.secrets.kv.v1.list_secrets(rel, mount_point=self.mount_point)  # noqa: E731
            need = Need(("list",), f"{full}/")
        else:
            lister = lambda: self._hvac.secrets.kv.v2.list_secrets(rel, mount_point=self.mount_point)  # noqa: E731
            need = Need(("list",), f"{self.mount_point}/metadata/{rel}/")  # names live under metadata/, not data/
        try:
            response = self.transport.request("list", full, lister, need=need)
        except SecretNotFoundError:
            return []
        data = response.get("data") if isinstance(response, dict) else None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, list):
            raise VaultError(
                f"Vault's answer to listing {full} holds no list of keys.", url=self.transport.url, path=full
            )
        valid = [key for key in keys if is_valid_name(key[:-1] if isinstance(key, str) and key.endswith("/") else key)]
        valid = [key for key in valid if "/" not in key.rstrip("/")]
        if len(valid) < len(keys):
            odd = next(key for key in keys if key not in valid)
            log.warning(
                "Skipped %d name(s) listed under %s that are not valid secret names (such as %s).",
                len(keys) - len(valid),
                full,
                safe_repr(odd, 80),
            )
        return valid

    def metadata(self, name: str) -> dict[str, Any]:
        """KV v2 metadata: current version and every version's times (no values)."""
        self.require_v2("read_metadata")
        rel, full = self.secret_path(name), self.full_path(name)
        response = self.transport.request(
            "metadata",
            full,
            lambda: self._hvac.secrets.kv.v2.read_secret_metadata(rel, mount_point=self.mount_point),
            need=Need(("read",), f"{self.mount_point}/metadata/{rel}", policy="rotator"),
        )
        return dict(self._part(response, full, "data"))

    # -- writing -----------------------------------------------------------------------

    def write(
        self, name: str, data: Mapping[str, Any], *, cas: int | None = None, version: int | None = None
    ) -> int | None:
        """Write ``data`` as the secret's new contents; the new KV v2 version (None on KV v1).

        ``cas`` makes the write conditional on the current version (KV v2 only);
        ``version`` is the mount's KV version as the caller already decided it (asked when None).
        """
        payload = dict(data)
        rel, full = self.secret_path(name), self.full_path(name)
        if (version or self.version(full)) == 1:
            if cas is not None:
                raise VaultConfigError("cas needs a KV v2 mount.", key="cas")
            self.transport.request(
                "write",
                full,
                lambda: self._hvac.secrets.kv.v1.create_or_update_secret(rel, payload, mount_point=self.mount_point),
                idempotent=True,
                need=Need(("create", "update"), full, policy="rotator"),
            )
            return None
        response = self.transport.request(
            "write",
            full,
            lambda: self._hvac.secrets.kv.v2.create_or_update_secret(
                rel, payload, cas=cas, mount_point=self.mount_point
            ),
            idempotent=False,
            need=Need(("create", "update"), f"{self.mount_point}/data/{rel}", policy="rotator"),
        )
        written: int = self._part(response, full, "data", "version", kind=int)
        return written
