"""Live refresh: mapped config keys follow new secret versions without a restart.

Before each request the refresher makes sure the cache entries behind the mapped keys are
fresh enough: while every one of them is before its refresh-ahead point that costs one
time comparison; past it, the entries are touched (a background refresh near expiry, a
read once expired). When the cache stores a new version of such a secret, the keys are
filled again in ``app.config``:

* ``SECRET_KEY`` and ``JWT_SECRET_KEY`` from a KV v2 secret take the new value; their older
  versions are Vault's to keep (:mod:`flask_vault.signing` reads them when a signature
  needs them, in every process). From a KV v1 secret, which has no versions, the previous
  ``SECRET_KEY`` moves to the front of ``SECRET_KEY_FALLBACKS`` (Flask >= 3.1) and previous
  ``JWT_SECRET_KEY`` values are kept for :mod:`flask_vault.jwt`, in this process only;
* ``vault.on_change`` callbacks and the ``secret_changed`` signal fire.

Past ``VAULT_STALE_MAX_AGE`` without a successful read, requests get 503 (fail closed)
unless ``VAULT_FAIL_CLOSED`` is false.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from blinker import Namespace
from flask import Flask, abort, request

from flask_vault.cache import CachedSecret
from flask_vault.errors import VaultError, VaultUnavailableError
from flask_vault.mapping import SecretSource, value_for

if TYPE_CHECKING:
    from flask_vault.state import VaultState

log = logging.getLogger(__name__)

#: How many previous SECRET_KEY / JWT_SECRET_KEY values are kept after rotations.
PREVIOUS_KEYS_KEPT = 5

_signals = Namespace()
#: Sent with the app as sender and ``change=SecretChange(...)`` when a secret gets a new version.
secret_changed = _signals.signal("vault-secret-changed")


@dataclass(frozen=True)
class SecretChange:
    """A new version of a secret was read. Names fields, never values."""

    name: str
    path: str
    previous_version: int | None
    version: int | None
    changed_fields: tuple[str, ...]
    config_keys: tuple[str, ...]


ChangeCallback = Callable[[SecretChange], None]


@dataclass(repr=False)
class ConfigRefresher:
    """Keeps one app's mapped config keys in step with the cache.

    Its ``repr`` names the app and the secrets it follows; never a value (the previous
    JWT signing keys it keeps would let anyone who reads them forge tokens).
    """

    app: Flask
    state: VaultState
    #: secret name -> [(config key, field or None for a database URL)]
    keys_by_name: dict[str, list[tuple[str, str | None]]]
    callbacks: dict[str, list[ChangeCallback]]
    previous_jwt_keys: list[tuple[int | None, str]] = field(default_factory=list)
    _warned: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: full secret path -> secret name, for the names in keys_by_name
    _name_by_path: dict[str, str] = field(init=False)
    #: Cache-clock time before which no mapped secret needs anything (see touch).
    _quiet_until: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        cache = self.state.client.cache
        self._name_by_path = {self.state.client.full_path(name): name for name in self.keys_by_name}
        self._clock = cache.clock
        cache.add_clear_listener(self._forget_quiet)

    def __repr__(self) -> str:
        return (
            f"<ConfigRefresher app={self.app.name!r} secrets={sorted(self.keys_by_name)!r}"
            f" previous_jwt_keys={len(self.previous_jwt_keys)}>"
        )

    # -- per request -----------------------------------------------------------------

    def touch(self) -> None:
        """Before each request: make sure the mapped secrets are fresh enough to use.

        While every mapped secret is before its refresh-ahead point (or, during an outage,
        before the cache's next probe of Vault) there is nothing to do, and this is one
        time comparison; otherwise :meth:`touch_all`.
        """
        if self._clock() < self._quiet_until:
            return
        self.touch_all()

    def touch_all(self) -> None:
        """Read every mapped secret through the cache: a refresh ahead of expiry, a read once expired,
        503 when one can't be had and ``VAULT_FAIL_CLOSED`` is on."""
        if request.blueprint == "vault_health":
            return  # /health/vault must answer during an outage (with fail), not be refused by it
        client = self.state.client
        quiet_until = math.inf
        for name, keys in self.keys_by_name.items():
            try:
                entry = client.read(name)
            except VaultUnavailableError as exc:
                quiet_until = 0.0
                if self._filled_from_vault(keys) and self.state.settings.fail_closed:
                    self._warn_once(name, f"{exc.message} Refusing requests until Vault answers.")
                    abort(503, description="Secrets could not be refreshed from Vault.")
            except VaultError as exc:
                quiet_until = 0.0
                self._warn_once(name, exc.message)
            else:
                self._warned.discard(name)
                quiet_until = min(quiet_until, client.cache.quiet_until(entry))
        self._quiet_until = quiet_until

    def _forget_quiet(self) -> None:
        self._quiet_until = 0.0

    def _filled_from_vault(self, keys: list[tuple[str, str | None]]) -> bool:
        return any((source := self.state.sources.get(key)) is not None and source.origin == "vault" for key, _ in keys)

    def _warn_once(self, name: str, message: str) -> None:
        if name not in self._warned:
            self._warned.add(name)
            log.warning("Refreshing the secret %r failed: %s", name, message)

    # -- on a new version --------------------------------------------------------------

    def on_cache_update(self, entry: CachedSecret, previous: CachedSecret | None) -> None:
        name = self._name_by_path.get(entry.path)
        if name is None:
            return
        with self._lock:
            keys = self._apply(name, entry)
        changed = tuple(
            sorted(
                k
                for k in set(entry.data) | set(previous.data if previous else {})
                if (previous is None or entry.data.get(k) != previous.data.get(k))
            )
        )
        change = SecretChange(
            name=name,
            path=entry.path,
            previous_version=previous.version if previous else None,
            version=entry.version,
            changed_fields=changed,
            config_keys=tuple(keys),
        )
        log.info("Secret %s changed (version %s -> %s).", entry.path, change.previous_version, change.version)
        for callback in self.callbacks.get(name, []) + self.callbacks.get("*", []):
            try:
                callback(change)
            except Exception:
                log.exception("An on_change callback for %r failed.", name)
        secret_changed.send(self.app, change=change)

    def _apply(self, name: str, entry: CachedSecret) -> list[str]:
        config = self.app.config
        updated = []
        for key, field_name in self.keys_by_name.get(name, []):
            try:
                value = value_for(entry, field_name, self.state.client)
            except VaultError:
                log.warning("%s keeps its value: the new version of %s lacks what it needs.", key, entry.path)
                continue
            old = config.get(key)
            if value == old:
                continue
            # Keys the keyring follows by KV version need no copy in memory (see flask_vault.signing).
            in_keyring = self.state.keyring is not None and self.state.keyring.handles(key)
            if key == "SECRET_KEY" and old and not in_keyring:
                config["SECRET_KEY_FALLBACKS"] = _with_previous(config.get("SECRET_KEY_FALLBACKS") or [], old, value)
            if key == "JWT_SECRET_KEY" and old and not in_keyring:
                previous_source = self.state.sources.get(key)
                self.previous_jwt_keys.insert(0, (previous_source.version if previous_source else None, old))
                del self.previous_jwt_keys[PREVIOUS_KEYS_KEPT:]
            config[key] = value
            self.state.sources[key] = SecretSource(
                key, "vault", path=entry.path, field=field_name, version=entry.version
            )
            updated.append(key)
        return updated


def _with_previous(fallbacks: list[Any], old: Any, new: Any) -> list[Any]:
    kept = [old] + [f for f in fallbacks if f not in (old, new)]
    return kept[:PREVIOUS_KEYS_KEPT]
