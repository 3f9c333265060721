"""The token keeper: keeps one client's Vault token valid for as long as the process lives.

Every :class:`~flask_vault.client.VaultClient` has one keeper, and a forked child gets
its own. The keeper

* logs in before the first request that needs a token (``init_app`` calls
  :meth:`TokenKeeper.start` so that happens before any secret is read);
* renews the token at about two thirds of its TTL, minus a little jitter so that many
  processes started together do not renew together;
* logs in again when a renewal is refused, when a renewal no longer extends the token
  (it reached its max TTL), and when a request gets a 403 because the token expired or
  was revoked; ``VaultClient._call`` then retries that request once;
* runs at most one login or renewal at a time: threads that need a token while one is
  under way wait for it and share its outcome;
* warns once, before it expires, about a token it can neither renew nor replace;
* re-reads a token file (``VAULT_TOKEN_FILE``, ``~/.vault-token``) when it changes;
* revokes, at interpreter exit, the tokens it logged in for (``VAULT_REVOKE_ON_EXIT``).

Background work runs in one daemon thread per keeper, alive only while something is
scheduled, holding the keeper through a weak reference. After ``os.fork()`` the child
gets new locks, a new HTTP session and no thread; a token the parent logged in for is
dropped (the child logs in for itself on its first request), so processes never share
a token by accident and one process's revoke-on-exit never pulls the token from under
another. Log lines name the method and a short hash of the token's accessor
(``token_id``), never a token, accessor or credential.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from flask_vault.auth.methods import Authenticator, LoginResult, TokenAuth, side_adapter
from flask_vault.errors import VaultAuthError, VaultError, VaultPermissionError, VaultUnavailableError
from flask_vault.observe import audit

if TYPE_CHECKING:
    from flask_vault.client import VaultClient

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Renew (or replace) a token once this fraction of its TTL has passed, minus jitter.
RENEW_FRACTION = 2 / 3
#: Largest share of that fraction taken off at random.
DEFAULT_JITTER = 0.1
#: How often, at most, a token file is checked for a new token before a request (seconds).
FILE_CHECK_INTERVAL = 1.0
#: After a 403, a token that lookup-self just confirmed valid is trusted this long (seconds).
VALID_FOR = 1.0
#: After a refused login, requests get the same error this long before Vault is asked again.
LOGIN_FAILURE_HOLD = 1.0
#: Bounds of the wait between background attempts after a failure (seconds).
RETRY_MIN, RETRY_MAX = 0.5, 30.0


@dataclass
class KeeperStats:
    """What the keeper did in this process (counters only)."""

    logins: int = 0
    renewals: int = 0
    renewal_failures: int = 0
    login_failures: int = 0
    #: Logins after a request got a 403 because the token had expired or been revoked.
    recoveries: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class _TokenState:
    """What is known about the token in use. Never holds the token itself."""

    token_id: str | None
    created: bool
    ttl: float | None  # seconds at the last login/renewal/lookup; 0: never expires; None: unknown
    full_ttl: float | None  # the TTL a renewal should restore; a smaller answer means "capped"
    renewable: bool
    policies: tuple[str, ...]
    expires_at: float | None  # on the keeper's clock
    next_at: float | None = None
    action: str | None = None  # "renew", "login" or "warn"
    warned: bool = False


class TokenKeeper:
    """Keeps ``client``'s token valid using ``authenticator``. See the module docstring.

    ``clock`` (monotonic seconds) and ``background=False`` let tests drive :meth:`step`
    by hand; ``jitter`` is the largest fraction taken off the renewal point.
    """

    def __init__(
        self,
        client: VaultClient,
        authenticator: Authenticator,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: float = DEFAULT_JITTER,
        background: bool = True,
        revoke_on_exit: bool | None = None,
    ) -> None:
        self.client = client
        self.authenticator = authenticator
        self.clock = clock
        self.jitter = jitter
        self.background = background
        #: None: revoke the tokens this keeper logged in for; True also a VAULT_TOKEN; False: never.
        self.revoke_on_exit = client.settings.revoke_on_exit if revoke_on_exit is None else revoke_on_exit
        self.stats = KeeperStats()
        self._state: _TokenState | None = None
        self._generation = 0
        self._stopped = False
        self._next_file_check = 0.0
        self._failure: tuple[float, VaultAuthError] | None = None
        self._last_login: str | None = None  # "ok" or the error class of the last login attempt
        self._valid_confirmed: tuple[int, float] | None = None
        self._backoff = RETRY_MIN
        self._login_soon = False  # a forked child logs in from its own keeper thread at once
        self._reset_process_state()
        if isinstance(authenticator, TokenAuth) and authenticator.static_token:
            self._install(LoginResult(token=authenticator.static_token, created=False))
        else:
            client.token = None  # a login method (or token file) provides it on first use
        _KEEPERS.add(self)

    def _reset_process_state(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._flight: Future[int] | None = None
        self._local = threading.local()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what others read ----------------------------------------------------------------

    @property
    def method(self) -> str:
        return self.authenticator.method

    @property
    def generation(self) -> int:
        """Increases each time a new token is put in place."""
        return self._generation

    @property
    def token_id(self) -> str | None:
        """Short hash of the current token's accessor, when known (safe to log)."""
        state = self._state
        return state.token_id if state else None

    def status(self) -> dict[str, Any]:
        """Method, what is known of the token and counters.

        ``token_ttl``: whole seconds left (0 also for a token that never expires);
        ``expires_in``: seconds left, negative once expired, None when unknown or never;
        ``last_login``: ``"ok"`` or the error class of the last login attempt (None: none yet).
        """
        state = self._state
        ttl_left: int | None = None
        expires_in: float | None = None
        if state is not None and state.expires_at is not None:
            expires_in = state.expires_at - self.clock()
            ttl_left = max(0, round(expires_in))
        elif state is not None and state.ttl == 0:
            ttl_left = 0
        return {
            "auth_method": self.method,
            "logged_in": state is not None,
            "token_ttl": ttl_left,
            "renewable": state.renewable if state else None,
            "policies": list(state.policies) if state else [],
            "expires_in": expires_in,
            "last_login": self._last_login,
            **self.stats.as_dict(),
        }

    def __repr__(self) -> str:
        return f"<TokenKeeper {self.authenticator.describe()} token_id={self.token_id} generation={self._generation}>"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Log in now (or look the given token up) and start the background renewal.

        Raises the login's :class:`VaultError` when logging in fails.
        """
        self._stopped = False
        if self._state is None:
            self.before_call()
        elif self._state.ttl is None and not self._state.created:
            self._look_up_given_token()
        self._ensure_thread()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread (waits up to ``timeout``). The token stays in use."""
        self._stopped = True
        with self._lock:
            thread, self._thread = self._thread, None
        self._wake.set()
        if thread is not None and thread is not threading.current_thread() and thread.is_alive():
            thread.join(timeout)

    def close(self, *, revoke: bool | None = None, timeout: float = 2.0) -> None:
        """Stop, revoke the token when configured (see ``revoke_on_exit``), forget it."""
        self.stop(timeout)
        state = self._state
        token = self.client.token
        if revoke is None:
            revoke = self._should_revoke(state)
        if revoke and state is not None and token and self._pid == os.getpid():
            self._revoke(token, state, timeout)
        with self._lock:
            self._state = None
            self._generation += 1
            self.client.token = None
        _KEEPERS.discard(self)

    def _should_revoke(self, state: _TokenState | None) -> bool:
        if state is None or self.revoke_on_exit is False:
            return False
        if state.created:
            return True
        # An explicit VAULT_REVOKE_ON_EXIT=true also revokes a VAULT_TOKEN, never a token file's.
        return bool(self.revoke_on_exit) and not self.authenticator.refreshable

    def _revoke(self, token: str, state: _TokenState, timeout: float) -> None:
        started = time.perf_counter()
        adapter = side_adapter(self.client, token)
        try:
            adapter.post("/v1/auth/token/revoke-self", timeout=min(timeout, self.client.settings.timeout))
        except Exception as exc:  # at exit: report and move on
            audit.record(
                "revoke",
                "auth/token/revoke-self",
                outcome=type(exc).__name__,
                duration=time.perf_counter() - started,
                token_id=state.token_id,
            )
            log.warning(
                "Could not revoke the Vault token (token_id=%s) at exit (%s).", state.token_id, type(exc).__name__
            )
            return
        audit.record(
            "revoke",
            "auth/token/revoke-self",
            outcome="ok",
            duration=time.perf_counter() - started,
            token_id=state.token_id,
        )
        log.info("Revoked the Vault token (token_id=%s) at exit.", state.token_id)

    # -- hooks called by VaultClient._call -----------------------------------------------

    def before_call(self) -> int:
        """Before a request: log in if there is no token yet; returns the token generation."""
        if self._busy():
            return self._generation
        if self._pid != os.getpid():  # register_at_fork did not run (e.g. os.fork from C)
            self._after_fork_in_child()
        if self._stopped:
            return self._generation
        if self._state is None:
            if self._may_log_in():
                self._run_flight(self._first_login)
        elif self._token_file_changed():
            self._run_flight(self._reload_token_file)
        self._ensure_thread()
        return self._generation

    def recover(self, error: VaultError, generation: int) -> bool:
        """After a request failed with ``error``: True when it should be retried with a new token.

        Only a 403 qualifies, and only when the token was replaced since the request was
        sent or lookup-self shows it expired or revoked (then this logs in again, once for
        all the threads that hit the same 403). A valid token's 403 is a real denial.
        """
        if self._busy() or self._stopped or error.status != 403:
            return False
        if not isinstance(error, (VaultPermissionError, VaultAuthError)) or not self.authenticator.refreshable:
            return False
        if self._generation != generation:
            return True
        for _ in range(2):  # a second round when the flight we joined was about something else
            new, led = self._run_flight_ex(lambda: self._recover_body(generation))
            if new != generation:
                return True
            if led:
                return False
        return False

    # -- background --------------------------------------------------------------------

    def step(self) -> float | None:
        """Do what is due now; seconds until the next thing is due (None: nothing is)."""
        if self._stopped:
            return None
        state = self._state
        if state is None and self._login_soon:
            self._login_soon = False
            try:
                self._run_flight(self._first_login)
            except VaultError as exc:  # the next request tries again
                log.warning("Could not log in to Vault with %s after a fork: %s", self.method, exc)
            return self._delay_until_next()
        if state is None or state.next_at is None:
            return None
        now = self.clock()
        if now < state.next_at:
            return state.next_at - now
        generation = self._generation
        try:
            if state.action == "renew":
                self._run_flight(lambda: self._renew_body(generation))
            elif state.action == "login":
                self._run_flight(lambda: self._scheduled_login(generation))
            else:
                self._warn_expiring(state, now)
        except VaultError as exc:
            delay = self._next_backoff()
            log.warning("Could not log in to Vault with %s (%s); trying again in %.1fs.", self.method, exc, delay)
            with self._lock:
                if self._state is state:
                    state.action, state.next_at = "login", self.clock() + delay
        return self._delay_until_next()

    def _delay_until_next(self) -> float | None:
        state = self._state
        if state is None or state.next_at is None:
            return None
        return max(0.0, state.next_at - self.clock())

    def _ensure_thread(self) -> None:
        if not self.background or self._stopped:
            return
        running, state = self._thread, self._state
        if running is not None and running.is_alive():
            return  # the common case, without taking the lock
        if not self._login_soon and (state is None or state.next_at is None):
            return
        with self._lock:
            state = self._state
            if not self._login_soon and (state is None or state.next_at is None):
                return
            if self._thread is not None and self._thread.is_alive():
                return
            thread = threading.Thread(
                target=_keeper_loop, args=(weakref.ref(self),), name="flask-vault-keeper", daemon=True
            )
            self._thread = thread
        thread.start()

    # -- single flight -----------------------------------------------------------------

    def _busy(self) -> bool:
        return bool(getattr(self._local, "busy", False))

    @contextmanager
    def _as_keeper(self) -> Iterator[None]:
        """Requests made inside skip the keeper's own hooks (no login inside a login)."""
        previous = self._busy()
        self._local.busy = True
        try:
            yield
        finally:
            self._local.busy = previous

    def _run_flight(self, body: Callable[[], int]) -> int:
        return self._run_flight_ex(body)[0]

    def _run_flight_ex(self, body: Callable[[], int]) -> tuple[int, bool]:
        """Run ``body`` unless one is running; then wait for that one and share its outcome."""
        with self._lock:
            future = self._flight
            leader = future is None
            if future is None:
                future = self._flight = Future()
        if not leader:
            try:
                return future.result(timeout=self._flight_timeout()), False
            except FutureTimeout:
                raise VaultUnavailableError(
                    f"Gave up waiting for the Vault login in progress ({self._flight_timeout():.0f}s).",
                    url=self.client.url,
                ) from None
        try:
            with self._as_keeper():
                result = body()
        except BaseException as exc:
            self._end_flight(future)
            future.set_exception(exc)
            raise
        self._end_flight(future)
        future.set_result(result)
        self._ensure_thread()
        return result, True

    def _end_flight(self, future: Future[int]) -> None:
        with self._lock:
            if self._flight is future:
                self._flight = None

    def _flight_timeout(self) -> float:
        settings = self.client.settings
        return (settings.timeout + 2) * (settings.max_retries + 1) * 3 + 10

    # -- flight bodies (run by one thread at a time) ----------------------------------------

    def _first_login(self) -> int:
        if self._state is None:
            self._log_in("first use")
        return self._generation

    def _scheduled_login(self, generation: int) -> int:
        if self._generation == generation:
            self._log_in("the token is near the end of its TTL")
        return self._generation

    def _recover_body(self, generation: int) -> int:
        if self._generation != generation:
            return self._generation
        if self.client.token and self._token_still_valid(generation):
            return generation  # a real permission denial
        self.stats.recoveries += 1
        if isinstance(self.authenticator, TokenAuth):
            auth = self.authenticator
            old = self.client.token
            token = auth.read()
            if not token and not old:
                return generation  # no token anywhere: the request's own "no token" error says it
            if not token or token == old:
                advice = (
                    "Is the Agent that writes it running?" if auth.source == "VAULT_TOKEN_FILE" else "Log in again."
                )
                raise VaultAuthError(
                    f"Vault refused the {auth.describe()}: it expired or was revoked, and {auth.path} holds no "
                    f"newer token. {advice}",
                    url=self.client.url,
                    status=403,
                )
            log.info("Vault refused the token; %s holds a new one, using it.", self.authenticator.describe())
            self._install(LoginResult(token=token, created=False))
            return self._generation
        log.warning(
            "Vault refused the token (token_id=%s): it expired or was revoked. Logging in again with %s.",
            self.token_id,
            self.method,
        )
        self._log_in("the token was refused")
        return self._generation

    def _reload_token_file(self) -> int:
        assert isinstance(self.authenticator, TokenAuth)
        token = self.authenticator.read()
        if token and token != self.client.token:
            log.info("The token in %s changed; using the new one.", self.authenticator.describe())
            self._install(LoginResult(token=token, created=False))
        return self._generation

    def _renew_body(self, generation: int) -> int:
        state = self._state
        if self._generation != generation or state is None:
            return self._generation
        try:
            response = self.client._call(
                "renew", "auth/token/renew-self", lambda: self.client.hvac.auth.token.renew_self()
            )
        except VaultError as exc:
            self.stats.renewal_failures += 1
            if _unreachable(exc):
                return self._renew_later(state, exc)
            # Vault answered no: expired, revoked, not renewable, or past its max TTL (OpenBao: 500).
            if state.created:
                log.info("Vault refused to renew the token (token_id=%s): %s Logging in again.", state.token_id, exc)
                self._log_in("renewal refused")
            else:
                self._warn_once(state, "Vault refused to renew the given token (token_id=%s): %s", state.token_id, exc)
                state.next_at = None
            return self._generation
        self._backoff = RETRY_MIN
        renewed = LoginResult.from_auth(response, where="auth/token/renew-self")
        ttl = renewed.ttl or 0.0
        now = self.clock()
        self.stats.renewals += 1
        capped = (state.full_ttl is not None and ttl < state.full_ttl) or (
            state.expires_at is not None and now + ttl <= state.expires_at
        )
        state.ttl, state.expires_at, state.renewable = ttl, now + ttl, renewed.renewable
        log.debug("Renewed the Vault token (token_id=%s) for %ss.", state.token_id, _secs(ttl))
        if capped and state.created:
            log.info(
                "The Vault token (token_id=%s) reached its max TTL (%ss left); logging in again.",
                state.token_id,
                _secs(ttl),
            )
            self._log_in("max TTL reached")
        elif capped:
            self._warn_once(
                state,
                "The Vault token (token_id=%s) reached its max TTL and expires in %ss; it cannot be extended. "
                "Give the app a periodic token, a token file kept fresh by an Agent, or a login method.",
                state.token_id,
                _secs(ttl),
            )
            state.next_at = None
        else:
            self._schedule(state, now)
        return self._generation

    def _renew_later(self, state: _TokenState, exc: VaultError) -> int:
        """Vault could not be asked: try again soon, or log in once the token has run out."""
        now = self.clock()
        left = None if state.expires_at is None else state.expires_at - now
        if left is not None and left <= 0 and state.created:
            state.action, state.next_at = "login", now + self._next_backoff()
        else:
            state.next_at = now + min(5.0, max(RETRY_MIN, (left or 0) / 3))
        log.warning("Could not renew the Vault token (token_id=%s): %s Trying again soon.", state.token_id, exc)
        return self._generation

    # -- tokens --------------------------------------------------------------------------

    def _log_in(self, reason: str) -> None:
        try:
            result = self.authenticator.login(self.client)
        except VaultError as exc:
            self.stats.login_failures += 1
            self._last_login = type(exc).__name__
            if isinstance(exc, VaultAuthError):
                self._failure = (self.clock(), exc)
            raise
        self._failure = None
        self._backoff = RETRY_MIN
        if result is None:
            return
        self._last_login = "ok"
        self._install(result)
        if not result.created:
            log.info("Using the Vault token from %s.", self.authenticator.describe())
        else:
            self.stats.logins += 1
            log.info(
                "Logged in to Vault with %s (%s): token_id=%s ttl=%ss renewable=%s policies=%s",
                self.authenticator.describe(),
                reason,
                self.token_id,
                _secs(result.ttl),
                result.renewable,
                ",".join(result.policies) or "-",
            )

    def _install(self, result: LoginResult) -> None:
        now = self.clock()
        ttl = result.ttl
        state = _TokenState(
            token_id=audit.accessor_hash(result.accessor),
            created=result.created,
            ttl=ttl,
            full_ttl=ttl,
            renewable=result.renewable,
            policies=result.policies,
            expires_at=now + ttl if ttl else None,
        )
        self._schedule(state, now)
        with self._lock:
            self.client.token = result.token
            self._state = state
            self._generation += 1
            self._valid_confirmed = None
            self._login_soon = False
        self._wake.set()

    def _schedule(self, state: _TokenState, now: float) -> None:
        if not state.ttl:
            state.next_at, state.action = None, None
            return
        from_agent_file = isinstance(self.authenticator, TokenAuth) and self.authenticator.source == "VAULT_TOKEN_FILE"
        if state.renewable and not from_agent_file:
            action: str | None = "renew"
        elif state.created:
            action = "login"
        elif not from_agent_file and not state.warned:
            action = "warn"
        else:
            action = None  # an Agent keeps its sink's token fresh
        fraction = RENEW_FRACTION * (1 - random.uniform(0, self.jitter))
        state.action = action
        state.next_at = None if action is None else now + state.ttl * fraction

    def _look_up_given_token(self) -> None:
        """Learn the TTL of a token given as is (one request, no retries, never raising)."""
        try:
            with self._as_keeper():
                response = self.client.hvac.auth.token.lookup_self()
            data = response["data"]
        except Exception as exc:  # the first real request will report the problem properly
            log.debug("Could not look the given Vault token up (%s).", type(exc).__name__)
            return
        state = self._state
        if state is None or not isinstance(data, dict):
            return
        now = self.clock()
        ttl = float(data.get("ttl") or 0)
        state.ttl, state.renewable = ttl, bool(data.get("renewable"))
        state.full_ttl = float(data.get("creation_ttl") or ttl)
        state.policies = tuple(sorted(str(p) for p in data.get("policies") or []))
        state.token_id = audit.accessor_hash(data.get("accessor") if isinstance(data.get("accessor"), str) else None)
        state.expires_at = now + ttl if ttl else None
        self._schedule(state, now)
        if ttl and not state.renewable:
            log.info(
                "The given Vault token (token_id=%s) cannot be renewed and expires in %ss.", state.token_id, _secs(ttl)
            )

    def _token_still_valid(self, generation: int) -> bool:
        confirmed = self._valid_confirmed
        if confirmed is not None and confirmed[0] == generation and self.clock() - confirmed[1] < VALID_FOR:
            return True
        try:
            self.client._call("lookup", "auth/token/lookup-self", lambda: self.client.hvac.auth.token.lookup_self())
        except VaultUnavailableError:
            return True  # cannot tell: keep the token and report the original error
        except VaultError as exc:
            return exc.status != 403
        self._valid_confirmed = (generation, self.clock())
        return True

    def _may_log_in(self) -> bool:
        auth = self.authenticator
        if isinstance(auth, TokenAuth):
            if auth.path is None or self.clock() < self._next_file_check:
                return False
            self._next_file_check = self.clock() + FILE_CHECK_INTERVAL
            return True
        failure = self._failure
        if failure is not None and self.clock() - failure[0] < LOGIN_FAILURE_HOLD:
            raise VaultAuthError(failure[1].message, url=failure[1].url, path=failure[1].path, status=failure[1].status)
        return True

    def _token_file_changed(self) -> bool:
        auth = self.authenticator
        if not isinstance(auth, TokenAuth) or auth.path is None or self.clock() < self._next_file_check:
            return False
        self._next_file_check = self.clock() + FILE_CHECK_INTERVAL
        return auth.changed()

    def _warn_expiring(self, state: _TokenState, now: float) -> None:
        left = None if state.expires_at is None else state.expires_at - now
        self._warn_once(
            state,
            "The Vault token (token_id=%s, from %s) cannot be renewed and expires in %ss. Give the app a renewable "
            "token, a token file kept fresh by an Agent, or a login method (docs/auth.md).",
            state.token_id,
            self.authenticator.describe(),
            _secs(left),
        )
        state.next_at, state.action = None, None

    @staticmethod
    def _warn_once(state: _TokenState, message: str, *args: Any) -> None:
        if not state.warned:
            state.warned = True
            log.warning(message, *args)

    def _next_backoff(self) -> float:
        delay = self._backoff
        self._backoff = min(RETRY_MAX, self._backoff * 2)
        return random.uniform(delay / 2, delay)

    # -- fork --------------------------------------------------------------------------

    def _after_fork_in_child(self) -> None:
        """In a forked child: own locks, own HTTP session; a logged-in token is replaced.

        The parent's token is dropped, not revoked (the parent still uses it), and the
        child's own keeper thread logs in at once; a request that comes first waits for
        that login. Nothing here logs or sends a request: it runs inside ``fork()``.
        """
        state = self._state
        self._reset_process_state()
        self.client._reset_after_fork()
        self.stats = KeeperStats()  # counters are per process
        self._failure = None
        self._valid_confirmed = None
        if state is not None and state.created:
            self.client.token = None
            self._state = None
            self._generation += 1
            self._login_soon = not self._stopped
            self._ensure_thread()


def _unreachable(exc: VaultError) -> bool:
    """Vault could not be asked (down, timed out, sealed, standby): its answer is still to come."""
    return isinstance(exc, VaultUnavailableError) and (exc.status is None or exc.status in (429, 472, 473, 503))


def _secs(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def _keeper_loop(ref: weakref.ref[TokenKeeper]) -> None:
    """The background thread: step, then sleep until the next thing is due or a wake-up."""
    while True:
        keeper = ref()
        if keeper is None or keeper._stopped or keeper._thread is not threading.current_thread():
            return
        wake = keeper._wake
        wake.clear()
        try:
            delay = keeper.step()
        except Exception:
            log.exception("The Vault token keeper failed; trying again in %ss.", RETRY_MIN * 10)
            delay = RETRY_MIN * 10
        if delay is None:
            with keeper._lock:
                state = keeper._state
                if not keeper._login_soon and (state is None or state.next_at is None):
                    if keeper._thread is threading.current_thread():
                        keeper._thread = None
                    return
            delay = 0.0
        del keeper
        wake.wait(delay)


#: Every live keeper of this process, for fork and exit handling.
_KEEPERS: weakref.WeakSet[TokenKeeper] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for keeper in list(_KEEPERS):
        keeper._after_fork_in_child()


def _close_all_at_exit() -> None:
    for keeper in list(_KEEPERS):
        if keeper._pid == os.getpid():
            try:
                keeper.close()
            except Exception:  # never let exit handling raise
                log.debug("Closing a Vault token keeper at exit failed.", exc_info=True)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_close_all_at_exit)
