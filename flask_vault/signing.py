"""Signing keys from Vault's KV versions, so that every process accepts what any other signed.

A process knows the key it read at start-up. Sessions and JWTs may have been signed by a
process that ran before a rotation (with an older version) or by one that has already
seen a newer version. KV v2 keeps versions, so Vault is the shared memory:

* **Older keys** are read from Vault when a signature needs them (``read_version``),
  once per version per process, and kept. A version is accepted while the version after
  it was written less than the *window* ago: ``VAULT_SIGNING_KEY_WINDOW`` (default:
  ``PERMANENT_SESSION_LIFETIME``) plus ``VAULT_CACHE_TTL``, the time a process that has
  not seen the rotation may still sign with the old key. A version that is deleted,
  destroyed or no longer kept (KV keeps ``max_versions``, 10 by default) is not accepted,
  and neither is any version older than it.
* **Newer keys**: a signature that fails against every key known here makes one re-read
  of the secret (single flight, at most once per :data:`REREAD_INTERVAL` per secret, so a
  forged cookie cannot make the app hammer Vault); if a newer version appeared, it is tried.
* A JWT's ``kid`` (``vault-v<N>``) names the version; see :mod:`flask_vault.jwt`.

Nothing here is read at start-up: a process that never sees an old signature never reads
an old version.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flask_vault.errors import SecretNotFoundError, VaultError
from flask_vault.flight import ThrottledFlight
from flask_vault.mapping import parse_references

if TYPE_CHECKING:
    from flask_vault.client import VaultClient
    from flask_vault.state import VaultState

log = logging.getLogger(__name__)

#: Config keys whose older and newer Vault versions sign and verify.
SIGNING_KEYS = ("SECRET_KEY", "JWT_SECRET_KEY")
#: A JWT ``kid`` is this prefix and the KV version of its signing key.
KID_PREFIX = "vault-v"
#: At most one re-read of a signing secret per this many seconds per process.
REREAD_INTERVAL = 1.0
#: Versions further back than this from the current one are never read.
MAX_VERSIONS_BACK = 100


@dataclass(frozen=True)
class KeyVersion:
    """One KV version of a signing secret. ``data`` None: deleted, destroyed or gone."""

    version: int
    data: Mapping[str, Any] | None = field(repr=False)
    #: When Vault wrote this version (Unix time), None when unknown.
    created: float | None


class VersionedSecret:
    """The versions of one KV v2 secret, read from Vault when needed and kept."""

    def __init__(
        self,
        client: VaultClient,
        name: str,
        *,
        window: float,
        wall_clock: Callable[[], float] = time.time,
        reread_interval: float = REREAD_INTERVAL,
    ) -> None:
        self.client = client
        self.name = name
        #: Seconds a replaced version stays acceptable (the setting plus the cache TTL).
        self.window = window
        self.wall_clock = wall_clock
        self.reread = ThrottledFlight(reread_interval)
        #: Reads of older or newer versions (each version is read once).
        self.version_reads = 0
        self._versions: dict[int, KeyVersion] = {}
        self._pid = os.getpid()
        self._fetch_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<VersionedSecret {self.name!r} versions={sorted(self._versions)}>"

    # -- versions ------------------------------------------------------------------------

    def current(self) -> KeyVersion | None:
        """The version this process uses now (from the cache); None without KV versions."""
        try:
            entry = self.client.read(self.name)
        except VaultError:
            return None
        if entry.version is None:
            return None
        known = self._versions.get(entry.version)
        if known is not None and known.data is not None:
            return known
        version = KeyVersion(entry.version, entry.data, parse_vault_time(entry.created_time))
        self._versions[entry.version] = version
        return version

    def get(self, version: int, *, fetch: bool = True) -> KeyVersion | None:
        """Version ``version``: known, or read from Vault once (a newer one after a re-read)."""
        known = self._versions.get(version)
        if known is not None or not fetch:
            return known
        current = self.current()
        if current is None or version < 1:
            return None
        if version > current.version:
            if not self.refresh():
                return None
            current = self.current()
            if current is None or version > current.version:
                return None
        if version == current.version:
            return current
        if version < current.version - MAX_VERSIONS_BACK:
            return None
        return self._fetch(version)

    def _fetch(self, version: int) -> KeyVersion | None:
        if self._pid != os.getpid():
            self._pid, self._fetch_lock = os.getpid(), threading.Lock()
        with self._fetch_lock:  # one read per version, however many requests need it at once
            known = self._versions.get(version)
            if known is not None:
                return known
            try:
                entry = self.client.read_version(self.name, version)
            except SecretNotFoundError:
                found = KeyVersion(version, None, None)
            except VaultError as exc:  # not known yet; a later signature may ask again
                log.warning("Cannot read version %s of %s: %s", version, self.client.full_path(self.name), exc)
                return None
            else:
                found = KeyVersion(version, entry.data, parse_vault_time(entry.created_time))
            self.version_reads += 1
            self._versions[version] = found
            return found

    def refresh(self) -> bool:
        """One throttled, single-flight read-through of the current version (False: none made)."""
        return self.reread.run(lambda: self.client.read(self.name, use_cache=False))

    # -- the window ----------------------------------------------------------------------

    def acceptable(self, version: int, current: KeyVersion, *, fetch: bool = True) -> bool:
        """Whether ``version`` is current or newer, or was replaced less than the window ago."""
        if version >= current.version:
            return True
        successor = self.get(version + 1, fetch=fetch)
        if successor is None or successor.data is None or successor.created is None:
            return False
        return self.wall_clock() - successor.created <= self.window


class SigningKeys:
    """The values of one field (e.g. ``flask#secret_key``) across the versions of its secret."""

    def __init__(self, secret: VersionedSecret, field_name: str) -> None:
        self.secret = secret
        self.field = field_name

    def __repr__(self) -> str:
        return f"<SigningKeys {self.secret.name}#{self.field}>"

    def _value(self, version: KeyVersion | None) -> str | None:
        if version is None or version.data is None:
            return None
        value = version.data.get(self.field)
        return str(value) if value not in (None, "") else None

    def for_version(self, version: int) -> str | None:
        """The key of ``version`` when it is acceptable (read from Vault once if needed), else None.

        An older version is acceptable only while every version between it and the current
        one is still in KV (a deleted or destroyed version retires those before it too).
        """
        current = self.secret.current()
        if current is None:
            return None
        if not self.secret.acceptable(version, current):
            return None
        for between in range(current.version - 1, version, -1):
            found = self.secret.get(between)
            if found is None or found.data is None:
                return None
        return self._value(self.secret.get(version))

    def known_older(self) -> list[str]:
        """Keys of older versions already read and still acceptable, newest first; no Vault request."""
        current = self.secret.current()
        if current is None:
            return []
        keys: list[str] = []
        for version in range(current.version - 1, max(0, current.version - MAX_VERSIONS_BACK - 1), -1):
            if not self.secret.acceptable(version, current, fetch=False):
                break
            value = self._value(self.secret.get(version, fetch=False))
            if value is None:
                break
            keys.append(value)
        return keys

    def candidates(self, tried: set[str]) -> Iterator[str]:
        """Keys to try after a signature failed with every key in ``tried``, in the order to try them.

        First the acceptable older versions (each read from Vault once per process), then,
        after one throttled re-read of the secret, the versions that appeared since.
        """
        current = self.secret.current()
        if current is None:
            return
        for version in range(current.version - 1, max(0, current.version - MAX_VERSIONS_BACK - 1), -1):
            if not self.secret.acceptable(version, current):
                break
            value = self._value(self.secret.get(version))
            if value is None:
                break
            if value not in tried:
                tried.add(value)
                yield value
        if not self.secret.refresh():
            return
        newest = self.secret.current()
        if newest is None:
            return
        for version in range(newest.version, current.version, -1):
            value = self._value(self.secret.get(version))
            if value is not None and value not in tried:
                tried.add(value)
                yield value


class Keyring:
    """One app's signing keys (``SECRET_KEY``, ``JWT_SECRET_KEY``) across KV versions."""

    def __init__(self, state: VaultState, window: float) -> None:
        self.state = state
        self.window = window
        self._secrets: dict[str, VersionedSecret] = {}
        self._keys: dict[str, SigningKeys] = {}
        references = parse_references(state.settings.secrets)
        for key in SIGNING_KEYS:
            name, field_name = references.get(key, ("", None))
            if field_name is None:
                continue
            secret = self._secrets.get(name)
            if secret is None:
                secret = self._secrets[name] = VersionedSecret(state.client, name, window=window)
            self._keys[key] = SigningKeys(secret, field_name)

    def __repr__(self) -> str:
        return f"<Keyring keys={sorted(self._keys)} window={self.window:g}s>"

    def keys(self, config_key: str) -> SigningKeys | None:
        """The versioned keys behind ``config_key``, while its value comes from a KV v2 version."""
        source = self.state.sources.get(config_key)
        if source is None or source.origin != "vault" or source.version is None:
            return None
        return self._keys.get(config_key)

    def handles(self, config_key: str) -> bool:
        return self.keys(config_key) is not None

    @property
    def secrets(self) -> list[VersionedSecret]:
        return list(self._secrets.values())


def window_for(settings_window: float | None, session_lifetime: float, cache_ttl: float) -> float:
    """The acceptance window: the setting (default: the session lifetime) plus the cache TTL."""
    base = session_lifetime if settings_window is None else settings_window
    return base + cache_ttl


def parse_kid(kid: object) -> int | None:
    """The version a ``vault-v<N>`` kid names, or None."""
    if not isinstance(kid, str) or not kid.startswith(KID_PREFIX):
        return None
    digits = kid[len(KID_PREFIX) :]
    if not digits.isdigit() or len(digits) > 12:
        return None
    return int(digits)


_VAULT_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)")


def parse_vault_time(text: str | None) -> float | None:
    """Unix time of Vault's RFC 3339 ``created_time`` (nanoseconds and all), or None."""
    match = _VAULT_TIME.fullmatch(text or "")
    if match is None:
        return None
    seconds, fraction, zone = match.groups()
    try:
        moment = datetime.fromisoformat(seconds + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    if moment.tzinfo is None:  # pragma: no cover - the pattern always has a zone
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)
