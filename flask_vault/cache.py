"""Secret cache: TTL freshness, single-flight loads, refresh-ahead and stale-if-error.

One entry per secret path, so one Vault read serves every field of a secret.

* Entries live in a cachetools ``TTLCache`` bounded in size, whose TTL is the stale
  limit (an entry past it is of no use even during an outage). A fresh entry (read
  less than ``ttl`` ago) is served from a plain-dict view of it without taking the
  lock: a cached read costs about a microsecond.
* N threads missing the same path at once share one Vault read (single-flight).
* An entry used once it has lived 90 to 95% of its TTL (a point drawn at random for each
  read, so processes started together do not refresh together) is refreshed in the
  background, once: a request with a warm cache does not wait on Vault; if that refresh
  has not answered by the time the entry expires, requests get the last good value
  meanwhile.
* When a read fails because Vault is unavailable (or rate limiting: 429), the last good
  value is served for up to ``stale_max_age`` seconds after it was read, with one
  warning per outage. While the outage lasts, requests get the stale value at once and
  one background read at a time probes Vault, about once a second and never before a
  429's ``Retry-After``, so a hung or throttling server does not slow requests down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from cachetools import TTLCache

from flask_vault import jitter
from flask_vault.errors import VaultUnavailableError

log = logging.getLogger(__name__)

#: Refresh in the background once an entry has lived this fraction of its TTL (plus a
#: random part up to REFRESH_AHEAD_SPREAD). Closer to 1 means fewer Vault reads (at most
#: one per 0.9 TTL) and less time for a slow Vault to answer before the entry expires
#: (requests are served the last value meanwhile).
REFRESH_AHEAD_FRACTION = 0.9
#: The refresh point of each read is drawn from [0.9, 0.9 + this] of the TTL.
REFRESH_AHEAD_SPREAD = 0.05
#: During an outage, probe Vault from the background at most this often (seconds; half to all of it, at random).
OUTAGE_PROBE_INTERVAL = 1.0


@dataclass(frozen=True)
class CachedSecret:
    """One secret as read from Vault. ``read_at`` is on the cache's clock."""

    path: str
    data: dict[str, Any] = field(repr=False)
    version: int | None
    read_at: float
    created_time: str | None = None


Loader = Callable[[], CachedSecret]
ChangeListener = Callable[[CachedSecret, "CachedSecret | None"], None]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    reads: int = 0
    stale_serves: int = 0
    refresh_failures: int = 0
    background_refreshes: int = 0
    served_while_refreshing: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


class SecretCache:
    """Thread-safe cache of :class:`CachedSecret` keyed by full secret path."""

    def __init__(
        self,
        ttl: float,
        *,
        stale_max_age: float = 86400.0,
        maxsize: int = 65536,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.stale_max_age = stale_max_age
        self.clock = clock
        self.maxsize = maxsize
        self._refresh_after = ttl * REFRESH_AHEAD_FRACTION
        # The bounded store of last good entries; entries older than both limits expire.
        self._entries: TTLCache[str, CachedSecret] = TTLCache(
            maxsize=maxsize, ttl=max(ttl, stale_max_age, 1.0), timer=clock
        )
        # Lock-free view of _entries for the hit path: written under the lock together
        # with _entries, read without it (a dict lookup is atomic). It may still hold an
        # entry _entries has dropped; the hit path checks the entry's age itself.
        self._view: dict[str, CachedSecret] = {}
        # Path -> the age at which its entry in _view is refreshed ahead (its jittered point).
        self._refresh_ages: dict[str, float] = {}
        self._inflight: dict[str, Future[CachedSecret]] = {}
        self._refreshing: set[str] = set()  # paths with a background refresh under way
        self._lock = threading.RLock()
        self._outage_since: float | None = None
        self._next_probe = 0.0
        self._listeners: list[ChangeListener] = []
        self._clear_listeners: list[Callable[[], None]] = []
        self.stats = CacheStats()

    # -- reading ---------------------------------------------------------------------

    def get(self, path: str, loader: Loader, *, use_cache: bool = True) -> CachedSecret:
        """Return the entry for ``path``, loading it with ``loader`` when needed."""
        if use_cache:
            entry = self._view.get(path)
            if entry is not None:
                now = self.clock()
                age = now - entry.read_at
                if age < self.ttl:
                    # Not under the lock: exact single-threaded, may undercount under contention.
                    self.stats.hits += 1
                    if age >= self._refresh_after and age >= self._refresh_ages.get(path, 0.0):
                        self._refresh_in_background(path, loader, seen=entry)
                    return entry
                if self._outage_since is not None and now < self._next_probe and age <= self.stale_max_age:
                    self.stats.stale_serves += 1  # during an outage, between probes: the last value at once
                    return entry
            return self._get_slow(path, loader)
        return self._read_through(path, loader, serve_stale=False)

    def _get_slow(self, path: str, loader: Loader) -> CachedSecret:
        during_outage = self._serve_during_outage(path, loader)
        if during_outage is not None:
            return during_outage
        refreshing = self._stale_while_refreshing(path)
        if refreshing is not None:
            return refreshing
        return self._read_through(path, loader, serve_stale=True)

    def _read_through(self, path: str, loader: Loader, *, serve_stale: bool) -> CachedSecret:
        with self._lock:
            self.stats.misses += 1
        try:
            return self._load(path, loader, reuse_fresh=serve_stale)
        except VaultUnavailableError:
            stale = self._usable_stale(path) if serve_stale else None
            if stale is None:
                raise
            with self._lock:
                self.stats.stale_serves += 1
            return stale

    def quiet_until(self, entry: CachedSecret) -> float:
        """Cache-clock time until which reading ``entry``'s path again would change nothing.

        For a fresh entry: its refresh-ahead point. For a stale one served during an outage:
        the next background probe of Vault, or the end of its stale limit if sooner (a read
        in between would serve the same entry).
        """
        fresh_until = entry.read_at + max(self._refresh_after, self._refresh_ages.get(entry.path, 0.0))
        if self._outage_since is not None and self.clock() >= entry.read_at + self.ttl:
            return min(self._next_probe, entry.read_at + self.stale_max_age)
        return fresh_until

    def peek(self, path: str) -> CachedSecret | None:
        """The last good entry for ``path`` (fresh or not), without loading."""
        with self._lock:
            return self._entries.get(path)

    def _serve_during_outage(self, path: str, loader: Loader) -> CachedSecret | None:
        """While Vault is known to be down, answer at once and probe in the background.

        Returns the stale entry when it is within ``stale_max_age``; raises
        VaultUnavailableError when it is not (or there is none) and no probe is due,
        so requests never queue behind a hung server. None: not in an outage, or a
        probe is due and the caller should read itself.
        """
        with self._lock:
            if self._outage_since is None:
                return None
            stale = self._usable_stale_locked(path)
            probe_due = self.clock() >= self._next_probe
            if probe_due:
                self._next_probe = self.clock() + jitter.less(OUTAGE_PROBE_INTERVAL, 0.5)
            if stale is not None:
                self.stats.stale_serves += 1
            elif not probe_due:
                raise VaultUnavailableError(
                    f"Vault has been unavailable for {self.clock() - self._outage_since:.0f}s and {path} has no "
                    f"cached value younger than VAULT_STALE_MAX_AGE ({self.stale_max_age:g}s).",
                    path=path,
                )
        if stale is None:
            return None
        if probe_due:
            self._refresh_in_background(path, loader)
        return stale

    def _stale_while_refreshing(self, path: str) -> CachedSecret | None:
        """An expired entry whose (background) refresh is already under way: don't queue behind it.

        The refresh was started ahead of expiry and has not answered yet, so Vault is slow;
        the last good value, within its stale limit, is the better answer for this request.
        """
        with self._lock:
            if path not in self._refreshing:
                return None
            stale = self._usable_stale_locked(path)
            if stale is not None:
                self.stats.served_while_refreshing += 1
            return stale

    def _usable_stale(self, path: str) -> CachedSecret | None:
        with self._lock:
            return self._usable_stale_locked(path)

    def _usable_stale_locked(self, path: str) -> CachedSecret | None:
        entry = self._entries.get(path)
        if entry is None or self.stale_max_age <= 0:
            return None
        if self.clock() - entry.read_at > self.stale_max_age:
            return None
        return entry

    # -- loading ---------------------------------------------------------------------

    def _load(self, path: str, loader: Loader, *, reuse_fresh: bool = False) -> CachedSecret:
        """Single-flight: the first caller reads, the others wait for its outcome.

        ``reuse_fresh``: a caller that found no fresh entry may have looked just before
        another thread's read stored one; that entry is checked again under the lock, so a
        read that has just finished is shared instead of repeated.
        """
        with self._lock:
            if reuse_fresh:
                current = self._view.get(path)
                if current is not None and self.clock() - current.read_at < self.ttl:
                    return current
            future = self._inflight.get(path)
            leader = future is None
            if future is None:
                future = Future()
                self._inflight[path] = future
        if not leader:
            return future.result()
        try:
            entry = loader()
        except BaseException as exc:
            self._finish_failed(path, future, exc)
            raise
        self._store(entry)
        with self._lock:
            self._inflight.pop(path, None)
        future.set_result(entry)
        return entry

    def _finish_failed(self, path: str, future: Future[CachedSecret], exc: BaseException) -> None:
        with self._lock:
            self._inflight.pop(path, None)
            self.stats.refresh_failures += 1
            if isinstance(exc, VaultUnavailableError):
                self._note_outage(exc)
        future.set_exception(exc)

    def _note_outage(self, exc: VaultUnavailableError) -> None:
        now = self.clock()
        if self._outage_since is None:
            self._outage_since = now
            self._next_probe = now + jitter.less(OUTAGE_PROBE_INTERVAL, 0.5)
            log.warning(
                "Vault is %s; serving cached secrets for up to %gs after their last read.",
                "rate limiting this client (429)" if exc.status == 429 else "unavailable",
                self.stale_max_age,
            )
        if exc.retry_after is not None:  # Vault said when to ask again: not before
            self._next_probe = max(self._next_probe, now + exc.retry_after + jitter.up_to(OUTAGE_PROBE_INTERVAL))

    def _refresh_in_background(self, path: str, loader: Loader, *, seen: CachedSecret | None = None) -> None:
        """Start one background read of ``path`` (none if one is under way or already done).

        ``seen``: the entry the caller found; when it is no longer the latest, another
        thread has refreshed it already and nothing needs reading.
        """
        with self._lock:
            if path in self._inflight or path in self._refreshing:
                return
            if seen is not None and self._view.get(path) is not seen:
                return
            self._refreshing.add(path)
            self.stats.background_refreshes += 1

        def run() -> None:
            try:
                self._load(path, loader)
            except Exception:  # already counted; the next request tries again
                log.debug("Background refresh of %s failed.", path, exc_info=True)
            finally:
                with self._lock:
                    self._refreshing.discard(path)

        threading.Thread(target=run, name="flask-vault-refresh", daemon=True).start()

    def _store(self, entry: CachedSecret, *, from_read: bool = True) -> None:
        with self._lock:
            previous = self._entries.get(entry.path)
            if _is_older(entry, previous):
                return  # a read that started before a newer write: never bring an old value back
            if from_read:
                self.stats.reads += 1
            self._entries[entry.path] = entry
            self._view[entry.path] = entry
            self._refresh_ages[entry.path] = self.ttl * (REFRESH_AHEAD_FRACTION + jitter.up_to(REFRESH_AHEAD_SPREAD))
            if len(self._view) > self.maxsize:
                self._view = dict(self._entries.items())  # drop what _entries evicted or expired
                self._refresh_ages = {path: self._refresh_ages[path] for path in self._view}
            if self._outage_since is not None:
                log.warning(
                    "Vault is reachable again after %.1fs; cached secrets are fresh again.",
                    self.clock() - self._outage_since,
                )
                self._outage_since = None
            listeners = list(self._listeners)
        if previous is not None and (previous.version, previous.data) != (entry.version, entry.data):
            for listener in listeners:
                try:
                    listener(entry, previous)
                except Exception:
                    log.exception("A secret change listener failed for %s.", entry.path)

    # -- maintenance -----------------------------------------------------------------

    def put(self, entry: CachedSecret) -> None:
        """Store an entry the client just wrote, so readers see it without a read."""
        self._store(entry, from_read=False)

    def clear(self) -> None:
        """Forget every entry, fresh and stale."""
        with self._lock:
            self._view = {}
            self._refresh_ages = {}
            self._entries.clear()
            listeners = list(self._clear_listeners)
        for listener in listeners:
            listener()

    def reset_after_fork(self) -> None:
        """In a forked child: new locks, and forget reads that were in flight in the parent.

        Entries are kept (they are valid data); the threads that were loading or refreshing
        exist only in the parent, so their futures would never complete here.
        """
        self._lock = threading.RLock()
        self._inflight = {}
        self._refreshing = set()

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(entry, previous)`` when a stored entry differs from the one it replaces."""
        with self._lock:
            self._listeners.append(listener)

    def add_clear_listener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` after :meth:`clear`."""
        with self._lock:
            self._clear_listeners.append(listener)

    @property
    def outage_since(self) -> float | None:
        """Cache-clock time at which Vault became unavailable, or None."""
        return self._outage_since

    def age(self, entry: CachedSecret) -> float:
        return self.clock() - entry.read_at

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"<SecretCache ttl={self.ttl:g}s entries={len(self)}>"


def _is_older(entry: CachedSecret, previous: CachedSecret | None) -> bool:
    if previous is None or entry.version is None or previous.version is None:
        return False
    return entry.version < previous.version
