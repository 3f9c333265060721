"""The renewal spine: keeps one thing with a TTL alive for as long as the process lives.

A Vault token today, a database lease tomorrow: anything Vault issues with a TTL that can
be renewed, replaced and revoked (a :class:`Renewable`). Its :class:`Renewal`

* schedules the next renewal at about two thirds of the TTL, minus a little jitter so
  that processes started together do not renew together;
* renews what is renewable, and replaces it (the subject logs in again, reads new
  credentials) when a renewal is refused, when a renewal no longer extends it (it reached
  its max TTL), and at two thirds of the TTL of something that cannot be renewed; retries
  soon when Vault could not be asked, with backoff when replacing fails; warns once
  before the end of something it can neither renew nor replace;
* runs one renewal or replacement at a time: threads that need one while it is under way
  wait for it and share its outcome (:meth:`Renewal.flight`);
* does its background work in the process's one background thread: a daemon shared by
  every spine, started by the first one that has something scheduled, idle (asleep on an
  event) while none has, holding spines through weak references. A process with a token
  and leases, or many apps, has one such thread, and an app after the first starts none;
* survives ``os.fork()``: the child gets new locks and no thread; something this process
  obtained itself (``replaceable``) is dropped in the child, never shared, and the
  child's own thread gets a new one at once (spines in the order they were made, so a
  token is in order before the lease that needs it asks for anything);
* in the parent of a fork, releases what it obtained and has not *used* since (see
  :meth:`Renewal.mark_used`): a preloading gunicorn master, which never serves a request,
  revokes its lease and token once it starts its workers instead of renewing them for its
  whole life. The revoke is handed to the background thread, newest first (a lease
  before the token it was obtained with); the next use, if any, gets a new one;
* at interpreter exit, closes every live spine, newest first, revoking what should be
  revoked (a lease before the token it was obtained with).

Something that changes at a known time rather than expiring (a static database role's
password at its next rotation) says when it is ``due``; something another event makes
obsolete (a lease obtained with a token that was just replaced) is replaced from the
background thread after :meth:`Renewal.replace_soon`.

The subject decides *how* (which requests, what to log); the spine decides *when*.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from flask_vault import jitter
from flask_vault.errors import VaultError, VaultUnavailableError

log = logging.getLogger(__name__)

#: Renew (or replace) once this fraction of the TTL has passed, minus jitter.
RENEW_FRACTION = 2 / 3
#: Largest share of that fraction taken off at random.
DEFAULT_JITTER = 0.1
#: Bounds of the wait between background attempts after a failure (seconds).
RETRY_MIN, RETRY_MAX = 0.5, 30.0

D = TypeVar("D")

#: What the spine tells its subject, for the subject's log lines:
#: ``unreachable``  a renewal could not reach Vault; it is tried again soon
#: ``refused``      Vault refused a renewal; the subject is asked to replace it
#: ``capped``       a renewal no longer extends it (max TTL); the subject is asked to replace it
#: ``retry``        replacing failed; tried again after ``delay`` seconds
#: ``fork``         getting its own in a forked child failed; the next use tries again
#: and, once per term, for something that can be neither renewed nor replaced:
#: ``refused-final``, ``capped-final`` and ``expiring`` (it expires in ``left`` seconds).
Event = Literal["unreachable", "refused", "capped", "retry", "fork", "refused-final", "capped-final", "expiring"]


@dataclass(frozen=True)
class Term(Generic[D]):
    """What Vault said about the thing when it was issued, renewed or looked up."""

    #: Seconds it has left; 0: it never expires; None: not known.
    ttl: float | None
    renewable: bool = False
    #: This process obtained it and can get a new one: it is replaced rather than left to
    #: expire, revoked at close by default, and not shared with a forked child.
    replaceable: bool = False
    #: False when someone else keeps it fresh (an Agent's token file): only its expiry is tracked.
    managed: bool = True
    #: Revoke it when the spine is closed (normally at exit).
    revoke_at_close: bool = False
    #: The TTL a renewal should restore (a smaller answer means "capped"); default ``ttl``.
    full_ttl: float | None = None
    #: What the subject keeps with it (a token's accessor hash, a lease id, ...).
    detail: D | None = None
    #: Seconds from now when it must be replaced, whatever its TTL says (a replaceable one only).
    due: float | None = None


class Renewable(Protocol[D]):
    """A thing with a TTL that can be renewed, replaced and revoked (a token, a lease)."""

    def renew(self) -> Term[D]:
        """Extend the current one (only ``ttl`` and ``renewable`` are read); raises VaultError."""
        ...

    def replace(self, reason: str) -> Term[D] | None:
        """Put a new one in place (None: there was none to get); raises VaultError."""
        ...

    def revoke(self, timeout: float) -> None:
        """Revoke the current one; called by :meth:`Renewal.close`, never raises."""
        ...

    def release(self) -> None:
        """Revoke the current one, which this process has not used, after it forked.

        Called from the background thread (it may log and send a request), one attempt;
        reports a failure and never raises. The spine then drops it (:meth:`drop`).
        """
        ...

    def drop(self) -> None:
        """Forget the current one: it was closed, released, or is not shared with a forked child."""
        ...

    def after_fork(self) -> None:
        """In a forked child, before anything else: fresh per-process resources (sessions, counters)."""
        ...

    def report(
        self, event: Event, *, error: VaultError | None = None, left: float | None = None, delay: float | None = None
    ) -> None:
        """Log what happened (see :data:`Event`); never raises."""
        ...


@dataclass
class Held(Generic[D]):
    """The thing in use, as the spine tracks it (times on the spine's clock)."""

    ttl: float | None
    full_ttl: float | None
    renewable: bool
    replaceable: bool
    managed: bool
    revoke_at_close: bool
    detail: D | None
    expires_at: float | None
    #: When it must be replaced (from :attr:`Term.due`), else None.
    due_at: float | None = None
    next_at: float | None = None
    action: Literal["renew", "replace", "warn"] | None = None
    #: Why it is replaced, when that is not its TTL (see :meth:`Renewal.replace_soon`).
    reason: str | None = None
    warned: bool = False

    @classmethod
    def of(cls, term: Term[D], now: float) -> Held[D]:
        ttl = term.ttl
        return cls(
            ttl=ttl,
            full_ttl=term.full_ttl if term.full_ttl is not None else ttl,
            renewable=term.renewable,
            replaceable=term.replaceable,
            managed=term.managed,
            revoke_at_close=term.revoke_at_close,
            detail=term.detail,
            expires_at=now + ttl if ttl else None,
            due_at=now + term.due if term.due is not None and term.replaceable else None,
        )


class Renewal(Generic[D]):
    """Keeps ``subject``'s current thing alive. See the module docstring.

    ``clock`` (monotonic seconds) and ``background=False`` let tests drive :meth:`step` by
    hand; ``jitter`` is the largest fraction taken off the renewal point; ``name`` names
    it in log lines; a thread waiting on another's renewal gives up after ``flight_timeout``.
    ``depends_on``: the spine of what this one's thing was obtained with and dies with (a
    lease's token): using this one uses that one, and that one is not released while
    this one keeps its own.
    """

    def __init__(
        self,
        subject: Renewable[D],
        *,
        name: str,
        clock: Callable[[], float] = time.monotonic,
        jitter: float = DEFAULT_JITTER,
        background: bool = True,
        flight_timeout: float = 60.0,
        depends_on: Renewal[Any] | None = None,
    ) -> None:
        self.subject = subject
        self.depends_on = depends_on
        self.name = name
        self.clock = clock
        self.jitter = jitter
        self.background = background
        self.flight_timeout = flight_timeout
        self._current: Held[D] | None = None
        self._generation = 0
        self._stopped = False
        self._acquire_soon = False  # a forked child gets its own from its own thread at once
        self._used = False  # see mark_used
        self._release_pending = False  # handed to the background thread after a fork
        self._released = False  # released after a fork: a child forked later still gets its own at once
        self._backoff = RETRY_MIN
        #: A one-off job for the background thread (see call_soon): (when, body).
        self._soon: tuple[float, Callable[[], object]] | None = None
        self._reset_process_state()
        self._order = next(_ORDER)
        _LIVE.add(self)

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._flight: Future[int] | None = None
        #: Held by the background thread while it runs this spine's step (stop waits for it).
        self._stepping = threading.Lock()

    # -- what others read --------------------------------------------------------------

    @property
    def current(self) -> Held[D] | None:
        """The thing in use (None: there is none)."""
        return self._current

    @property
    def generation(self) -> int:
        """Increases each time a new one is put in place (or the current one is dropped)."""
        return self._generation

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def used(self) -> bool:
        """This process used what the spine keeps since it obtained it (see :meth:`mark_used`)."""
        return self._used

    def mark_used(self) -> None:
        """This process uses the current one: after a fork it keeps it (see :meth:`release_unused`).

        The subject calls this on every use, and it costs one attribute store: a lease when
        it hands credentials to a new database connection, the keeper before a request with
        the token that is not the spines' own work (:func:`in_upkeep`). A new one put in
        place of the current one (a renewal's new login, a lease's switch) is used as well;
        one obtained after :meth:`clear` or a release is not until it is marked. What this one
        depends on is marked too: a lease in use needs the token it was obtained with.
        """
        self._used = True
        depends_on = self.depends_on
        if depends_on is not None and not depends_on._used:
            depends_on.mark_used()

    def forget_use(self) -> None:
        """What the current one was used for so far does not count (the keeper: the reads of start-up)."""
        self._used = False

    @property
    def thread(self) -> threading.Thread | None:
        """The background thread, while it has work of this spine's."""
        return _WORKER.thread_for(self)

    def expires_in(self) -> float | None:
        """Seconds until the current one expires (negative: it has); None: unknown or never."""
        current = self._current
        if current is None or current.expires_at is None:
            return None
        return current.expires_at - self.clock()

    # -- putting things in place ---------------------------------------------------------

    def install(self, term: Term[D]) -> None:
        """A new one is in use: schedule its renewal (a new generation)."""
        now = self.clock()
        held = Held.of(term, now)
        self._schedule(held, now)
        with self._lock:
            self._current = held
            self._generation += 1
            self._acquire_soon = self._released = False
        _WORKER.nudge(self)

    def update(self, term: Term[D]) -> None:
        """More is known of the one in use (a lookup): schedule again from what ``term`` says."""
        current = self._current
        if current is None:
            return
        now = self.clock()
        fresh = Held.of(term, now)
        current.ttl, current.full_ttl, current.renewable = fresh.ttl, fresh.full_ttl, fresh.renewable
        current.expires_at = fresh.expires_at
        if term.detail is not None:
            current.detail = term.detail
        self._schedule(current, now)

    def note_expiry(self, ttl: float) -> None:
        """Vault said how long the one in use has left; nothing is rescheduled."""
        current = self._current
        if current is not None:
            current.expires_at = self.clock() + ttl if ttl else None

    def replace(self, reason: str) -> None:
        """Ask the subject for a new one and put it in place; call it inside :meth:`flight`."""
        term = self.subject.replace(reason)
        self._backoff = RETRY_MIN
        if term is not None:
            self.install(term)

    def replace_soon(self, reason: str) -> None:
        """Replace the current one from the background thread now (what it depends on changed).

        Nothing happens when there is none, or it is not replaceable. Returns at once.
        """
        current = self._current
        if current is None or not current.replaceable or self._stopped:
            return
        current.action, current.next_at, current.reason = "replace", self.clock(), reason
        self.ensure_thread()
        _WORKER.nudge(self)

    def call_soon(self, body: Callable[[], object], delay: float = 0.0) -> None:
        """Run ``body`` in the background thread ``delay`` seconds from now, once.

        For work that must not hold up the caller, such as learning the TTL of a token
        given as is after the app is up. One job at a time: a new call replaces a pending
        one. An exception of ``body`` is logged, not raised.
        """
        self._soon = (self.clock() + delay, body)
        self.ensure_thread()
        _WORKER.nudge(self)

    # -- single flight -----------------------------------------------------------------

    def flight(self, body: Callable[[], object]) -> tuple[int, bool]:
        """Run ``body`` unless one is running; else wait for that one and share its outcome.

        Returns (the generation after it, whether this thread ran it). An exception of the
        body is raised in every thread that waited for it.
        """
        with self._lock:
            future = self._flight
            leader = future is None
            if future is None:
                future = self._flight = Future()
        if not leader:
            try:
                return future.result(timeout=self.flight_timeout), False
            except FutureTimeout:
                raise VaultUnavailableError(
                    f"Gave up waiting for the {self.name} in progress ({self.flight_timeout:.0f}s)."
                ) from None
        try:
            body()
        except BaseException as exc:
            self._end_flight(future)
            future.set_exception(exc)
            raise
        generation = self._generation
        self._end_flight(future)
        future.set_result(generation)
        self.ensure_thread()
        return generation, True

    def _end_flight(self, future: Future[int]) -> None:
        with self._lock:
            if self._flight is future:
                self._flight = None

    # -- background --------------------------------------------------------------------

    def step(self) -> float | None:
        """Do what is due now; seconds until the next thing is due (None: nothing is)."""
        if self._stopped:
            return None
        self._run_soon()
        current = self._current
        if current is None and self._acquire_soon:
            self._acquire_soon = False
            try:
                self.flight(lambda: self._acquire("first use"))
            except VaultError as exc:  # the next use tries again
                self.subject.report("fork", error=exc)
            return self._delay_until_next()
        if current is None or current.next_at is None:
            return self._delay_until_next()
        now = self.clock()
        if now < current.next_at:
            return self._delay_until_next()
        generation = self._generation
        try:
            if current.action == "renew":
                self.flight(lambda: self._renew(generation))
            elif current.action == "replace":
                reason = current.reason or "it is near the end of its TTL"
                self.flight(lambda: self._replace_if(generation, reason))
            else:
                self._warn_expiring(current, now)
        except VaultError as exc:
            delay = self._next_backoff()
            self.subject.report("retry", error=exc, delay=delay)
            with self._lock:
                if self._current is current:
                    current.action, current.next_at = "replace", self.clock() + delay
        return self._delay_until_next()

    def _run_soon(self) -> None:
        soon = self._soon
        if soon is None or self.clock() < soon[0]:
            return
        self._soon = None
        try:
            soon[1]()
        except Exception:  # a background job reports its own problems; never stop the thread for it
            log.debug("A background job of the %s failed.", self.name, exc_info=True)

    def _delay_until_next(self) -> float | None:
        due = [t for t in (self._next_at(), self._soon[0] if self._soon is not None else None) if t is not None]
        return max(0.0, min(due) - self.clock()) if due else None

    def _next_at(self) -> float | None:
        current = self._current
        return None if current is None else current.next_at

    def _needs_thread(self) -> bool:
        return self._acquire_soon or self._soon is not None or self._next_at() is not None

    def ensure_thread(self) -> None:
        """Hand this spine to the background thread when something is scheduled (starting it if none runs)."""
        if not self.background or self._stopped or not self._needs_thread():
            return
        _WORKER.serve(self)

    def resume(self) -> None:
        """Undo :meth:`stop`: scheduled work runs again."""
        self._stopped = False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop background work (waits up to ``timeout`` for a step under way). The current one stays in use."""
        self._stopped = True
        _WORKER.forget(self)
        if not _WORKER.is_current_thread() and self._stepping.acquire(timeout=max(0.0, timeout)):
            self._stepping.release()

    def background_step(self) -> float | None:
        """:meth:`step` as the background thread runs it: never raises; None: nothing more to do."""
        with self._stepping:
            if self._stopped:
                return None
            try:
                return self.step()
            except Exception:
                log.exception("The %s's background work failed; trying again in %ss.", self.name, RETRY_MIN * 10)
                return RETRY_MIN * 10

    def needs_background(self) -> bool:
        """Something is scheduled (the background thread keeps serving this spine)."""
        return not self._stopped and self._needs_thread()

    def close(self, *, revoke: bool | None = None, timeout: float = 2.0) -> None:
        """Stop, revoke the current one (None: when its term says so), and forget it."""
        self.stop(timeout)
        current = self._current
        if revoke is None:
            revoke = current is not None and current.revoke_at_close
        if revoke and current is not None and self._pid == os.getpid():
            self.subject.revoke(timeout)
        self.clear()
        _LIVE.discard(self)

    def clear(self) -> None:
        """Forget the current one (a new generation); the subject drops it too."""
        with self._lock:
            self._current = None
            self._generation += 1
            self._used = False
        self.subject.drop()

    # -- released after a fork -------------------------------------------------------------

    def releasable(self) -> bool:
        """Whether the current one goes when this process forks (see :meth:`release_unused`)."""
        current = self._current
        return (
            current is not None
            and current.replaceable
            and current.revoke_at_close
            and not self._used
            and not self._stopped
            and self.background
        )

    def release_unused(self) -> bool:
        """Revoke and forget the current one unless this process used it; True when it did.

        Runs in the background thread after this process forked: what a process obtained
        itself (``replaceable``), would revoke at exit (``revoke_at_close``) and has not used
        since (:meth:`mark_used`) is not needed there, and the next use, if any, gets a new
        one the way a forked child does. Kept when something that depends on it still holds
        its own, or when a flight is under way (a use: another thread is getting one).
        """
        self._release_pending = False
        released: list[bool] = []

        def body() -> None:
            if not self.releasable() or any(s.depends_on is self and s._current is not None for s in live()):
                return
            self.subject.release()
            with self._lock:
                self._current = None
                self._generation += 1
                self._released = True
            self.subject.drop()
            released.append(True)

        self.flight(body)
        return bool(released)

    # -- flight bodies (one thread at a time) ---------------------------------------------

    def _acquire(self, reason: str) -> None:
        if self._current is None:
            self.replace(reason)

    def _replace_if(self, generation: int, reason: str) -> None:
        if self._generation == generation:
            self.replace(reason)

    def _renew(self, generation: int) -> None:
        current = self._current
        if self._generation != generation or current is None:
            return
        try:
            renewed = self.subject.renew()
        except VaultError as exc:
            if _unreachable(exc):
                self._renew_later(current, exc)
            elif current.replaceable:  # Vault answered no: expired, revoked, not renewable, past its max TTL
                self.subject.report("refused", error=exc)
                self.replace("renewal refused")
            else:
                self._warn_once(current, "refused-final", error=exc)
                current.next_at = None
            return
        self._backoff = RETRY_MIN
        ttl = renewed.ttl or 0.0
        now = self.clock()
        capped = (current.full_ttl is not None and ttl < current.full_ttl) or (
            current.expires_at is not None and now + ttl <= current.expires_at
        )
        current.ttl, current.expires_at, current.renewable = ttl, now + ttl, renewed.renewable
        if capped and current.replaceable:
            self.subject.report("capped", left=ttl)
            self.replace("max TTL reached")
        elif capped:
            self._warn_once(current, "capped-final", left=ttl)
            current.next_at = None
        else:
            self._schedule(current, now)

    def _renew_later(self, current: Held[D], exc: VaultError) -> None:
        """Vault could not be asked: try again soon, or replace it once it has run out."""
        now = self.clock()
        left = None if current.expires_at is None else current.expires_at - now
        if left is not None and left <= 0 and current.replaceable:
            current.action, current.next_at = "replace", now + self._next_backoff()
        else:
            current.next_at = now + jitter.less(min(5.0, max(RETRY_MIN, (left or 0) / 3)), 0.5)
        if isinstance(exc, VaultUnavailableError) and exc.retry_after is not None:  # a 429: not before it said
            current.next_at = max(current.next_at, now + exc.retry_after + jitter.up_to(1.0))
        self.subject.report("unreachable", error=exc)

    # -- scheduling --------------------------------------------------------------------

    def _schedule(self, held: Held[D], now: float) -> None:
        if held.due_at is not None:
            held.action, held.next_at = "replace", held.due_at
            return
        if not held.ttl:
            held.next_at, held.action = None, None
            return
        action: Literal["renew", "replace", "warn"] | None
        if not held.managed:
            action = None  # someone else keeps it fresh
        elif held.renewable:
            action = "renew"
        elif held.replaceable:
            action = "replace"
        elif not held.warned:
            action = "warn"
        else:
            action = None
        fraction = jitter.less(RENEW_FRACTION, self.jitter)
        held.action = action
        held.next_at = None if action is None else now + held.ttl * fraction

    def _warn_expiring(self, held: Held[D], now: float) -> None:
        left = None if held.expires_at is None else held.expires_at - now
        self._warn_once(held, "expiring", left=left)
        held.next_at, held.action = None, None

    def _warn_once(
        self, held: Held[D], event: Event, *, error: VaultError | None = None, left: float | None = None
    ) -> None:
        if not held.warned:
            held.warned = True
            self.subject.report(event, error=error, left=left)

    def _next_backoff(self) -> float:
        delay = self._backoff
        self._backoff = min(RETRY_MAX, self._backoff * 2)
        return jitter.less(delay, 0.5)

    # -- fork --------------------------------------------------------------------------

    def check_fork(self) -> None:
        """In a forked child the at-fork hook did not reach (``fork()`` from C): do its work now.

        For every live spine at once, when the hook did not run in this process at all;
        for this one alone when it was not live then (closed).
        """
        if self._pid == os.getpid():
            return
        if _WORKER.pid != os.getpid():
            _after_fork_in_child()
        if self._pid != os.getpid():
            self._after_fork_in_child()
            self.ensure_thread()

    def _after_fork_in_child(self) -> None:
        """Own locks, no thread; a replaceable one is dropped and the child's thread gets its own.

        The parent's is dropped, not revoked (the parent still uses it); a use that comes
        first waits for the child's own. A parent that released its own after an earlier
        fork (a preloading master starting a new worker) has none to drop, and the child
        gets its own all the same. Nothing here logs or sends a request: it runs inside
        ``fork()``. The thread is started (:meth:`ensure_thread`) once every spine is
        done: a token the thread gets first must not find a lease of the parent's still
        in place (it would be replaced as obtained with an older token).
        """
        current, released = self._current, self._released
        self._reset_process_state()
        self._used = self._release_pending = self._released = False  # the child has used nothing yet
        self.subject.after_fork()
        if (current is not None and current.replaceable) or (current is None and released):
            self._current = None
            self._generation += 1
            self.subject.drop()
            self._acquire_soon = not self._stopped


def _unreachable(exc: VaultError) -> bool:
    """Vault could not be asked (down, timed out, sealed, standby): its answer is still to come."""
    return isinstance(exc, VaultUnavailableError) and (exc.status is None or exc.status in (429, 472, 473, 503))


#: Marks the threads that do the spines' own work (renewals, replacements, revokes).
_upkeep = threading.local()


def in_upkeep() -> bool:
    """Whether the calling thread does the spines' own work: its requests are no use of the token."""
    return bool(getattr(_upkeep, "active", False))


def mark_upkeep_thread() -> None:
    """The calling thread does the spines' own work from now on (the background thread, a lease's retire thread)."""
    _upkeep.active = True


class _Worker:
    """The process's one background thread: runs the due work of every spine it serves.

    Spines are served in the order they were made (a token before the leases obtained
    with it) and one at a time: a slow step (Vault hung) delays the others, which would
    wait on the same Vault. Once started, the thread stays for the life of the process
    (asleep while no spine has anything scheduled), so later apps and clients start none.
    """

    NAME = "flask-vault-renewal"

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """No thread, nothing served (a forked child: the parent's thread does not exist here)."""
        self.pid = os.getpid()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.spines: weakref.WeakSet[Renewal[Any]] = weakref.WeakSet()
        #: One-off jobs of the process (not of one spine), run before the spines' steps.
        self.jobs: list[Callable[[], object]] = []

    def submit(self, job: Callable[[], object]) -> None:
        """Run ``job`` in the thread (starting it if none runs), before the next steps; returns at once."""
        self._hand_over(lambda: self.jobs.append(job))

    def serve(self, spine: Renewal[Any]) -> None:
        """Serve ``spine`` from now on (nothing to do when it is served: the common case, lock-free)."""
        if self.thread is not None and spine in self.spines:
            return
        self._hand_over(lambda: self.spines.add(spine))

    def _hand_over(self, change: Callable[[], object]) -> None:
        """Make ``change`` under the lock, then wake the thread, starting it if none runs."""
        with self.lock:
            change()
            thread = self.thread
            start = thread is None
            if thread is None:
                thread = self.thread = threading.Thread(target=self._run, name=self.NAME, daemon=True)
        self.wake.set()
        if start:
            thread.start()

    def nudge(self, spine: Renewal[Any]) -> None:
        """What ``spine`` has scheduled changed: look again, when it is served."""
        if spine in self.spines:
            self.wake.set()

    def forget(self, spine: Renewal[Any]) -> None:
        with self.lock:
            self.spines.discard(spine)
        self.wake.set()

    def thread_for(self, spine: Renewal[Any]) -> threading.Thread | None:
        thread = self.thread
        return thread if thread is not None and spine in self.spines else None

    def is_current_thread(self) -> bool:
        return self.thread is threading.current_thread()

    def _run(self) -> None:
        """Step every spine served, then sleep until the next thing is due or a wake-up."""
        me = threading.current_thread()
        mark_upkeep_thread()  # what this thread sends is the spines' own work, not a use
        while True:
            self.wake.clear()
            with self.lock:
                if self.thread is not me:
                    return
                jobs, self.jobs = self.jobs, []
                spines = sorted(self.spines, key=lambda spine: spine._order)
            for job in jobs:
                try:
                    job()
                except Exception:  # a job reports its own problems; never stop the thread for it
                    log.debug("A background job failed.", exc_info=True)
            delays = [delay for delay in map(self._step, spines) if delay is not None]
            del spines  # hold no spine while asleep: an app that is gone takes its spines with it
            self.wake.wait(min(delays) if delays else None)

    def _step(self, spine: Renewal[Any]) -> float | None:
        delay = spine.background_step()
        if delay is not None:
            return delay
        with self.lock:
            if spine.needs_background():
                return 0.0  # scheduled while it stepped
            self.spines.discard(spine)
        return None


_WORKER = _Worker()


#: Every live spine of this process, for fork and exit handling.
_LIVE: weakref.WeakSet[Renewal[Any]] = weakref.WeakSet()
#: The order spines are made in (a lease's after the token's it is obtained with).
_ORDER = itertools.count()


def live() -> list[Renewal[Any]]:
    """Every spine of this process that is not closed, oldest first."""
    return sorted(_LIVE, key=lambda renewal: renewal._order)


def _after_fork_in_child() -> None:
    _WORKER.reset()
    spines = live()
    for renewal in spines:
        renewal._after_fork_in_child()
    for renewal in spines:  # only now: the thread finds every spine in the child's state
        renewal.ensure_thread()


def _after_fork_in_parent() -> None:
    """In the parent, inside ``fork()``: hand what this process never used to the background thread.

    Only picks (newest first, skipping what something kept depends on) and hands over:
    nothing here logs or sends a request, so ``fork()`` returns at once.
    """
    try:
        spines = live()
    except RuntimeError:  # another thread made a spine meanwhile (the set changed): keep everything this time
        return
    releasing: list[Renewal[Any]] = []
    kept: set[Renewal[Any]] = set()  # spines that keep theirs because something that depends on them does
    for renewal in reversed(spines):  # a lease before the token it was obtained with
        if renewal._current is None or renewal._release_pending:
            continue
        if renewal in kept or not renewal.releasable():
            if renewal.depends_on is not None:
                kept.add(renewal.depends_on)
            continue
        renewal._release_pending = True
        releasing.append(renewal)
    if releasing:
        _WORKER.submit(lambda: _release_unused(releasing))


def _release_unused(spines: list[Renewal[Any]]) -> None:
    """In the background thread, after a fork: release each of ``spines`` (newest first) not used meanwhile."""
    for renewal in spines:
        try:
            renewal.release_unused()
        except Exception:  # the subject reports its own failures; go on with the others
            log.debug("Releasing the %s after a fork failed.", renewal.name, exc_info=True)


def _close_all_at_exit() -> None:
    for renewal in reversed(live()):
        if renewal._pid == os.getpid():
            try:
                renewal.close()
            except Exception:  # never let exit handling raise
                log.debug("Closing the %s at exit failed.", renewal.name, exc_info=True)


os.register_at_fork(after_in_child=_after_fork_in_child, after_in_parent=_after_fork_in_parent)
atexit.register(_close_all_at_exit)
