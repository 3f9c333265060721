"""The token keeper: owns one client's Vault token, and keeps it valid while the process lives.

Every :class:`~flask_vault.client.VaultClient` has one keeper, and a forked child gets
its own. The keeper is the one place that holds the token and what is known of it: the
short hash of its accessor (``token_id``), its TTL and expiry, whether it can be renewed,
the outcome of the last login, and the counters of logins, renewals, failures and
recoveries. It plugs into the transport (:class:`~flask_vault.vault.transport.TokenHooks`)
and, through the renewal spine (:mod:`flask_vault.auth.renewal`), it

* logs in before the first request that needs a token (``init_app`` calls
  :meth:`TokenKeeper.start` so that happens before any secret is read); a token given
  as is costs no request at start-up: its TTL is looked up in the background once the
  app is up, and a token Vault refuses fails the first read with an error that says so;
* renews the token at about two thirds of its TTL, minus a little jitter;
* logs in again when a renewal is refused, when a renewal no longer extends the token
  (it reached its max TTL), and when a request gets a 403 because the token expired or
  was revoked; the transport then sends that request once more;
* runs at most one login or renewal at a time: threads that need a token while one is
  under way wait for it and share its outcome;
* warns once, before it expires, about a token it can neither renew nor replace;
* re-reads a token file (``VAULT_TOKEN_FILE``, ``~/.vault-token``) when it changes;
* revokes, at interpreter exit, the tokens it logged in for (``VAULT_REVOKE_ON_EXIT``);
* revokes such a token in a process that forks without having sent a request with it
  since start-up (a preloading gunicorn master): requests the spines send for leases
  from their own threads do not count, a lease in use does. The next request, if any,
  logs in again.

After ``os.fork()`` the child gets new locks, a new HTTP session and no thread; a token
the parent logged in for is dropped (the child logs in for itself at once), so processes
never share a token by accident and one process's revoke-on-exit never pulls the token
from under another. Log lines name the method and ``token_id``, never a token, accessor
or credential.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_vault import jitter
from flask_vault.auth.methods import Authenticator, LoginResult, TokenAuth
from flask_vault.auth.renewal import DEFAULT_JITTER, Event, Renewal, Term, in_upkeep
from flask_vault.errors import VaultAuthError, VaultError, VaultPermissionError, VaultUnavailableError
from flask_vault.observe.audit import OK, accessor_hash, record
from flask_vault.vault.transport import Transport

log = logging.getLogger(__name__)

#: How often, at most, a token file is checked for a new token before a request (seconds).
FILE_CHECK_INTERVAL = 1.0
#: A token from VAULT_TOKEN_FILE that Vault refuses counts as being replaced by its Agent for
#: the token's TTL plus this long (the Agent notices at its next renewal, within the TTL, then
#: may back off), or for TOKEN_FILE_GRACE while the TTL is not known.
TOKEN_FILE_SLACK = 30.0
TOKEN_FILE_GRACE = 300.0
#: After a 403, a token that lookup-self just confirmed valid is trusted this long (seconds).
VALID_FOR = 1.0
#: After a refused login, requests get the same error this long before Vault is asked again.
LOGIN_FAILURE_HOLD = 1.0
#: The path of the lookup that tells an expired token from a denial, or learns an accessor.
LOOKUP_SELF = "auth/token/lookup-self"
#: A token given as is is looked up (to learn its TTL) in the background, at a random
#: moment within this many seconds of start-up, so a fleet started together does not ask at once.
LOOKUP_SPREAD = 1.0
#: When Vault could not answer that lookup, it is tried again after about this long, doubling
#: up to LOOKUP_RETRY_MAX (seconds).
LOOKUP_RETRY, LOOKUP_RETRY_MAX = 5.0, 300.0

#: What the keeper logs when the renewal spine reports an event (level, message).
_REPORTS: dict[Event, tuple[int, str]] = {
    "unreachable": (
        logging.WARNING,
        "Could not renew the Vault token (token_id={token_id}): {error} Trying again soon.",
    ),
    "refused": (logging.INFO, "Vault refused to renew the token (token_id={token_id}): {error} Logging in again."),
    "capped": (
        logging.INFO,
        "The Vault token (token_id={token_id}) reached its max TTL ({left}s left); logging in again.",
    ),
    "retry": (logging.WARNING, "Could not log in to Vault with {method} ({error}); trying again in {delay:.1f}s."),
    "fork": (logging.WARNING, "Could not log in to Vault with {method} after a fork: {error}"),
    "refused-final": (logging.WARNING, "Vault refused to renew the given token (token_id={token_id}): {error}"),
    "capped-final": (
        logging.WARNING,
        "The Vault token (token_id={token_id}) reached its max TTL and expires in {left}s; it cannot be extended. "
        "Give the app a periodic token, a token file kept fresh by an Agent, or a login method.",
    ),
    "expiring": (
        logging.WARNING,
        "The Vault token (token_id={token_id}, from {source}) cannot be renewed and expires in {left}s. Give the "
        "app a renewable token, a token file kept fresh by an Agent, or a login method (docs/auth.md).",
    ),
}


@dataclass
class KeeperStats:
    """What the keeper did in this process (the only counters of logins and renewals)."""

    logins: int = 0
    renewals: int = 0
    renewal_failures: int = 0
    login_failures: int = 0
    #: Logins after a request got a 403 because the token had expired or been revoked.
    recoveries: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class TokenFacts:
    """What is known about the token in use, besides its TTL. Never holds the token itself."""

    token_id: str | None
    #: True when this process logged in for it (then it is replaced, and revoked at exit).
    created: bool
    policies: tuple[str, ...] = ()


class TokenKeeper:
    """Owns ``transport``'s token, obtained with ``authenticator``. See the module docstring.

    ``clock`` (monotonic seconds) and ``background=False`` let tests drive :meth:`step`
    by hand; ``jitter`` is the largest fraction taken off the renewal point;
    ``on_fork`` runs first in a forked child (the client renews its per-process parts).
    """

    def __init__(
        self,
        transport: Transport,
        authenticator: Authenticator,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: float = DEFAULT_JITTER,
        background: bool = True,
        revoke_on_exit: bool | None = None,
        on_fork: Callable[[], None] | None = None,
    ) -> None:
        self.transport = transport
        self.authenticator = authenticator
        self.clock = clock
        settings = transport.settings
        #: None: revoke the tokens this keeper logged in for; True also a VAULT_TOKEN; False: never.
        self.revoke_on_exit = settings.revoke_on_exit if revoke_on_exit is None else revoke_on_exit
        self.stats = KeeperStats()
        #: Outcome of the last login attempt ("ok", an error class name, or None before the first).
        self.last_login: str | None = None
        self._on_fork = on_fork
        self._next_file_check = 0.0
        self._failure: tuple[float, VaultAuthError] | None = None
        self._valid_confirmed: tuple[int, float] | None = None
        self._file_refused_at: float | None = None  # Vault refused the token file's token, unchanged since
        self._creation_ttl: float | None = None  # the TTL tokens are created with (from lookup-self)
        self._refused_generation: int | None = None  # a given token that lookup-self showed refused
        self._looked_up_for: int | None = None  # the generation whose accessor was looked up
        self._lookup_lock = threading.Lock()
        self._token_listeners: list[Callable[[], None]] = []
        #: Renews before expiry, shares one login among threads, survives fork, revokes at exit.
        self.renewal: Renewal[TokenFacts] = Renewal(
            self,
            name="flask-vault-keeper",
            clock=clock,
            jitter=jitter,
            background=background,
            flight_timeout=(settings.timeout + 2) * (settings.max_retries + 1) * 3 + 10,
        )
        transport.attach(self, token_id=self.audit_token_id)
        if isinstance(authenticator, TokenAuth) and authenticator.static_token:
            self._install(LoginResult(token=authenticator.static_token, created=False))
        else:
            transport.token = None  # a login method (or token file) provides it on first use

    # -- what others read ----------------------------------------------------------------

    @property
    def method(self) -> str:
        return self.authenticator.method

    @property
    def generation(self) -> int:
        """Increases each time a new token is put in place."""
        return self.renewal.generation

    @property
    def token(self) -> str | None:
        """The token in use (never logged or shown)."""
        return self.transport.token

    @property
    def _facts(self) -> TokenFacts | None:
        current = self.renewal.current
        return current.detail if current is not None else None

    @property
    def token_id(self) -> str | None:
        """Short hash of the current token's accessor, when known (safe to log)."""
        facts = self._facts
        return facts.token_id if facts else None

    def expires_in(self) -> float | None:
        """Seconds until the token expires (negative: it has); None: unknown, or it never expires."""
        return self.renewal.expires_in()

    def status(self) -> dict[str, Any]:
        """Method, what is known of the token and counters.

        ``token_ttl``: whole seconds left (0 also for a token that never expires);
        ``expires_in``: seconds left, negative once expired, None when unknown or never;
        ``last_login``: ``"ok"`` or the error class of the last login attempt (None: none yet);
        ``token_file_refused_for``: seconds since Vault refused the token in ``VAULT_TOKEN_FILE``
        while the file still holds it (None: not refused); ``replacing_token_file``: True while
        that is short enough for its Agent to be expected to write a new one.
        """
        current = self.renewal.current
        facts = self._facts
        ttl_left: int | None = None
        expires_in = self.renewal.expires_in()
        if expires_in is not None:
            ttl_left = max(0, round(expires_in))
        elif current is not None and current.ttl == 0:
            ttl_left = 0
        return {
            "auth_method": self.method,
            "logged_in": current is not None,
            "token_ttl": ttl_left,
            "renewable": current.renewable if current else None,
            "policies": list(facts.policies) if facts else [],
            "expires_in": expires_in,
            "last_login": self.last_login,
            **self._token_file_status(),
            **self.stats.as_dict(),
        }

    def _token_file_status(self) -> dict[str, Any]:
        refused_at = self._file_refused_at
        if refused_at is None:
            return {"token_file_refused_for": None, "replacing_token_file": False}
        refused_for = self.clock() - refused_at
        grace = self._creation_ttl + TOKEN_FILE_SLACK if self._creation_ttl else TOKEN_FILE_GRACE
        return {"token_file_refused_for": refused_for, "replacing_token_file": refused_for <= grace}

    def on_new_token(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` each time another token is put in use (a login, a new token file).

        For what was obtained with the previous token and dies with it (a database lease):
        the callback must return at once (it runs inside the login) and never raise.
        """
        self._token_listeners.append(callback)

    def __repr__(self) -> str:
        return f"<TokenKeeper {self.authenticator.describe()} token_id={self.token_id} generation={self.generation}>"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Log in now and start the background renewal.

        A token given as is sends nothing now: its TTL is looked up in the background
        (within :data:`LOOKUP_SPREAD` seconds), so start-up costs only the reads. Raises
        the login's :class:`VaultError` when logging in fails.
        """
        self.renewal.resume()
        current, facts = self.renewal.current, self._facts
        if current is None:
            self._ensure_token()
        elif current.ttl is None and facts is not None and not facts.created:
            self._look_up_soon(jitter.up_to(LOOKUP_SPREAD))
        self.renewal.ensure_thread()

    def start_up_done(self) -> None:
        """The requests so far were start-up (the login, the reads that filled config): no use.

        ``init_app`` calls this last. A process that forks before it sends another request
        with the token (a preloading gunicorn master) then revokes the token, if this keeper
        logged in for it, and logs in again should it ever need one (see
        :meth:`Renewal.release_unused`).
        """
        self.renewal.forget_use()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the background thread (waits up to ``timeout``). The token stays in use."""
        self.renewal.stop(timeout)

    def close(self, *, revoke: bool | None = None, timeout: float = 2.0) -> None:
        """Stop, revoke the token when configured (see ``revoke_on_exit``), forget it."""
        self.renewal.close(revoke=revoke, timeout=timeout)

    def step(self) -> float | None:
        """Do what is due now; seconds until the next thing is due (None: nothing is)."""
        return self.renewal.step()

    def use_token(self, token: str | None) -> None:
        """Use ``token`` as given from now on (None: no token until the next login)."""
        if token:
            self._install(LoginResult(token=token, created=False))
        else:
            self.renewal.clear()

    # -- hooks around every request (TokenHooks) -------------------------------------------

    def before_call(self) -> int:
        """Before a request: log in if there is no token yet; returns the token generation.

        A request that is not the spines' own work (renewing, replacing or revoking a
        lease, from their threads) is a use of the token (:meth:`Renewal.mark_used`).
        """
        renewal = self.renewal
        renewal.check_fork()
        if not renewal.used and not in_upkeep():
            renewal.mark_used()
        return self._ensure_token()

    def _ensure_token(self) -> int:
        renewal = self.renewal
        if renewal.stopped:
            return renewal.generation
        if renewal.current is None:
            if self._may_log_in():
                renewal.flight(self._first_login)
        elif self._token_file_changed():
            renewal.flight(self._reload_token_file)
        renewal.ensure_thread()
        return renewal.generation

    def recover(self, error: VaultError, generation: int) -> bool:
        """After a request failed with ``error``: True when it should be retried with a new token.

        Only a 403 qualifies, and only when the token was replaced since the request was
        sent or lookup-self shows it expired or revoked (then this logs in again, once for
        all the threads that hit the same 403). A valid token's 403 is a real denial.
        """
        if self.renewal.stopped or error.status != 403:
            return False
        if not isinstance(error, (VaultPermissionError, VaultAuthError)):
            return False
        if not self.authenticator.refreshable:
            self._check_given_token(error, generation)
            return False
        if self.generation != generation:
            return True
        for _ in range(2):  # a second round when the flight we joined was about something else
            new, led = self.renewal.flight(lambda: self._recover_body(generation))
            if new != generation:
                return True
            if led:
                return False
        return False

    def audit_token_id(self, resolve: bool) -> str | None:
        """The ``token_id`` of the token in use, for an audit record.

        With ``resolve``, an unknown accessor is looked up once per token (one raw
        ``lookup-self``, recorded like any request); the trail asks only when it records.
        """
        token_id = self.token_id
        if token_id is not None or not resolve or not self.transport.token:
            return token_id
        generation = self.generation
        with self._lookup_lock:
            if self._looked_up_for == generation:
                return None
            self._looked_up_for = generation
        started = time.perf_counter()
        trail = self.transport.trail
        try:
            response = self.transport.hvac.auth.token.lookup_self()
        except Exception as exc:  # one attempt only; the trail must never break a request
            trail.finish("lookup", LOOKUP_SELF, outcome=type(exc).__name__, duration=time.perf_counter() - started)
            return None
        self._learn(response.get("data") if isinstance(response, dict) else None)
        trail.finish("lookup", LOOKUP_SELF, outcome=OK, duration=time.perf_counter() - started, result=response)
        return self.token_id

    def lookup(self) -> dict[str, Any]:
        """The token's lookup-self data, with ``id`` and ``accessor`` replaced by ``token_id``."""
        response = self.transport.request("lookup", LOOKUP_SELF, lambda: self.transport.hvac.auth.token.lookup_self())
        data = dict(response.get("data") or {})
        self._learn(data)
        accessor = data.pop("accessor", None)
        data.pop("id", None)
        data["token_id"] = accessor_hash(accessor)
        return data

    # -- the renewal spine's subject (Renewable) ----------------------------------------

    def renew(self) -> Term[TokenFacts]:
        """Renew the token in use (``renew-self``)."""
        try:
            response = self.transport.request(
                "renew",
                "auth/token/renew-self",
                lambda: self.transport.hvac.auth.token.renew_self(),
                token_hooks=False,
            )
        except VaultError:
            self.stats.renewal_failures += 1
            raise
        renewed = LoginResult.from_auth(response, where="auth/token/renew-self")
        self.stats.renewals += 1
        log.debug("Renewed the Vault token (token_id=%s) for %ss.", self.token_id, _secs(renewed.ttl or 0.0))
        return Term(ttl=renewed.ttl or 0.0, renewable=renewed.renewable)

    def replace(self, reason: str) -> Term[TokenFacts] | None:
        """Log in (or read the token file) for a new token and put it in place."""
        try:
            result = self.authenticator.login(self.transport)
        except VaultError as exc:
            self.stats.login_failures += 1
            self.last_login = type(exc).__name__
            if isinstance(exc, VaultAuthError):
                self._failure = (self.clock(), exc)
            raise
        self._failure = None
        if result is None:
            return None
        self.last_login = OK
        term = self._put_in_place(result)
        if not result.created:
            log.info("Using the Vault token from %s.", self.authenticator.describe())
        else:
            self.stats.logins += 1
            log.info(
                "Logged in to Vault with %s (%s): token_id=%s ttl=%ss renewable=%s policies=%s",
                self.authenticator.describe(),
                reason,
                term.detail.token_id if term.detail else None,
                _secs(result.ttl),
                result.renewable,
                ",".join(result.policies) or "-",
            )
        return term

    def revoke(self, timeout: float) -> None:
        """Revoke the token in use (``revoke-self``, one attempt); at exit, so it only reports failures."""
        if self._revoke_self(timeout, "at exit"):
            log.info("Revoked the Vault token (token_id=%s) at exit.", self.token_id)

    def release(self) -> None:
        """After a fork: revoke the token this process logged in for and has not used since start-up."""
        if self._revoke_self(self.transport.settings.timeout, "after a fork"):
            log.info(
                "Revoked the Vault token (token_id=%s): this process forked without having used it since"
                " start-up (a preloading master, say); its next request to Vault, if any, logs in again.",
                self.token_id,
            )

    def _revoke_self(self, timeout: float, when: str) -> bool:
        """One ``revoke-self`` request; True when Vault took it (a failure is logged: the token ends at its TTL)."""
        token, token_id = self.transport.token, self.token_id
        if not token:
            return False
        started = time.perf_counter()
        adapter = self.transport.side_adapter(token)
        try:
            adapter.post("/v1/auth/token/revoke-self", timeout=min(timeout, self.transport.settings.timeout))
        except Exception as exc:  # report and move on
            duration = time.perf_counter() - started
            record("revoke", "auth/token/revoke-self", outcome=type(exc).__name__, duration=duration, token_id=token_id)
            log.warning(
                "Could not revoke the Vault token (token_id=%s) %s (%s); it ends at its TTL.",
                token_id,
                when,
                type(exc).__name__,
            )
            return False
        record(
            "revoke", "auth/token/revoke-self", outcome=OK, duration=time.perf_counter() - started, token_id=token_id
        )
        return True

    def drop(self) -> None:
        """Forget the token (closed, or the parent's in a forked child)."""
        self.transport.token = None

    def after_fork(self) -> None:
        """In a forked child: own HTTP session (and the client's own parts); counters start again."""
        self.transport.reset_after_fork()
        if self._on_fork is not None:
            self._on_fork()
        self.stats = KeeperStats()  # counters are per process
        self._lookup_lock = threading.Lock()
        self._failure = None
        self._valid_confirmed = None

    def report(
        self, event: Event, *, error: VaultError | None = None, left: float | None = None, delay: float | None = None
    ) -> None:
        """Log what the renewal spine ran into."""
        level, message = _REPORTS[event]
        if log.isEnabledFor(level):
            log.log(
                level,
                message.format(
                    token_id=self.token_id,
                    error=error,
                    left=_secs(left),
                    delay=delay or 0.0,
                    method=self.method,
                    source=self.authenticator.describe(),
                ),
            )

    # -- flight bodies (run by one thread at a time) ----------------------------------------

    def _first_login(self) -> None:
        if self.renewal.current is None:
            self.renewal.replace("first use")

    def _recover_body(self, generation: int) -> None:
        if self.generation != generation:
            return
        if self.transport.token and self._token_still_valid(generation):
            return  # a real permission denial
        self.stats.recoveries += 1
        if isinstance(self.authenticator, TokenAuth):
            auth = self.authenticator
            old = self.transport.token
            token = auth.read()
            if not token and not old:
                return  # no token anywhere: the request's own "no token" error says it
            if not token or token == old:
                if auth.from_agent:
                    self._await_token_file(auth)
                advice = "Is the Agent that writes it running?" if auth.from_agent else "Log in again."
                raise VaultAuthError(
                    f"Vault refused the {auth.describe()}: it expired or was revoked, and {auth.path} holds no "
                    f"newer token. {advice}",
                    url=self.transport.url,
                    status=403,
                )
            log.info("Vault refused the token; %s holds a new one, using it.", self.authenticator.describe())
            self._install(LoginResult(token=token, created=False))
            return
        log.warning(
            "Vault refused the token (token_id=%s): it expired or was revoked. Logging in again with %s.",
            self.token_id,
            self.method,
        )
        self.renewal.replace("the token was refused")

    def _await_token_file(self, auth: TokenAuth) -> None:
        """The file (just read again) still holds the token Vault refused: its Agent replaces it soon.

        Until then this is an outage, not a refusal (:class:`VaultUnavailableError`): cached
        secrets are served, start-up waits, health says ``warn``. Past the time the Agent needs
        to notice (the token's TTL plus TOKEN_FILE_SLACK), the caller's VaultAuthError stands.
        """
        if self._file_refused_at is None:
            self._file_refused_at = self.clock()
            log.warning(
                "Vault refused the token in %s (token_id=%s); waiting for the Agent to write a new one.",
                auth.path,
                self.token_id,
            )
        status = self._token_file_status()
        if status["replacing_token_file"]:
            raise VaultUnavailableError(
                f"Vault refused the token in VAULT_TOKEN_FILE {auth.path} {status['token_file_refused_for']:.0f}s"
                " ago (expired or revoked); waiting for the Agent to write a new one.",
                url=self.transport.url,
                status=403,
            )

    def _reload_token_file(self) -> None:
        assert isinstance(self.authenticator, TokenAuth)
        token = self.authenticator.read()
        if token and token != self.transport.token:
            log.info("The token in %s changed; using the new one.", self.authenticator.describe())
            self._install(LoginResult(token=token, created=False))

    # -- tokens --------------------------------------------------------------------------

    def _put_in_place(self, result: LoginResult) -> Term[TokenFacts]:
        """Send ``result``'s token from now on; its term, for the spine to schedule."""
        self.transport.token = result.token
        self._valid_confirmed = None
        self._file_refused_at = None
        facts = TokenFacts(accessor_hash(result.accessor), result.created, result.policies)
        for listener in list(self._token_listeners):
            try:
                listener()
            except Exception:  # a listener must not break a login
                log.exception("A new-token listener failed.")
        return self._term(result.ttl, renewable=result.renewable, facts=facts)

    def _install(self, result: LoginResult) -> None:
        self.renewal.install(self._put_in_place(result))

    def _term(
        self, ttl: float | None, *, renewable: bool, facts: TokenFacts, full_ttl: float | None = None
    ) -> Term[TokenFacts]:
        agent = isinstance(self.authenticator, TokenAuth) and self.authenticator.from_agent
        revoke = self.revoke_on_exit is not False and (
            facts.created or (bool(self.revoke_on_exit) and not self.authenticator.refreshable)
        )  # an explicit VAULT_REVOKE_ON_EXIT=true also revokes a VAULT_TOKEN, never a token file's
        return Term(
            ttl=ttl,
            renewable=renewable,
            replaceable=facts.created,
            managed=not agent,  # an Agent keeps its sink's token fresh
            revoke_at_close=revoke,
            full_ttl=full_ttl,
            detail=facts,
        )

    def _look_up_soon(self, delay: float, attempt: int = 0) -> None:
        generation = self.generation
        self.renewal.call_soon(lambda: self._look_up_given_token(generation, attempt), delay)

    def _look_up_given_token(self, generation: int, attempt: int = 0) -> None:
        """In the background: learn the TTL of a token given as is (one lookup-self)."""
        current = self.renewal.current
        if self.generation != generation or current is None or current.ttl is not None:
            return  # replaced meanwhile, or already learned (an audit record's lookup)
        try:
            response = self.transport.request(
                "lookup", LOOKUP_SELF, lambda: self.transport.hvac.auth.token.lookup_self(), token_hooks=False
            )
        except VaultUnavailableError as exc:
            log.debug("Could not look the given Vault token up (%s); trying again later.", exc.message)
            self._look_up_soon(jitter.less(min(LOOKUP_RETRY_MAX, LOOKUP_RETRY * 2**attempt), 0.5), attempt + 1)
            return
        except VaultError as exc:  # a refused token: the first request that needs it says so
            log.debug("Could not look the given Vault token up (%s).", type(exc).__name__)
            return
        if self.generation == generation:
            self._learn(response.get("data") if isinstance(response, dict) else None, of_token_in_use=True)

    def _learn(self, data: Any, *, of_token_in_use: bool = False) -> None:
        """A lookup-self answer of the token in use: its accessor hash and expiry.

        For a token given as is whose TTL was not known yet, also whether it can be
        renewed and its policies: its renewal is scheduled from here. An answer whose
        ``id`` is not the token in use is ignored, unless ``of_token_in_use`` says so.
        """
        facts, current = self._facts, self.renewal.current
        if facts is None or current is None or not isinstance(data, dict):
            return
        if not of_token_in_use and data.get("id") != self.transport.token:
            return
        if facts.token_id is None and isinstance(data.get("accessor"), str):
            facts.token_id = accessor_hash(data["accessor"])
        creation_ttl = data.get("creation_ttl")
        if isinstance(creation_ttl, int) and not isinstance(creation_ttl, bool) and creation_ttl > 0:
            self._creation_ttl = float(creation_ttl)
        ttl = data.get("ttl")
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
            return
        if current.ttl is not None or facts.created:
            self.renewal.note_expiry(float(ttl))
            return
        facts.policies = tuple(sorted(str(p) for p in data.get("policies") or []))
        renewable = bool(data.get("renewable"))
        full_ttl = float(data.get("creation_ttl") or ttl)
        self.renewal.update(self._term(float(ttl), renewable=renewable, facts=facts, full_ttl=full_ttl))
        if ttl and not renewable:
            log.info(
                "The given Vault token (token_id=%s) cannot be renewed and expires in %ss.", facts.token_id, _secs(ttl)
            )

    def _check_given_token(self, error: VaultError, generation: int) -> None:
        """After a 403 with a token given as is: say so plainly when Vault refuses the token itself.

        One lookup-self, on this failure path only (a valid token's answer is trusted for
        :data:`VALID_FOR`, a refused one's for as long as that token is in use). Raises a
        :class:`VaultPermissionError` naming the token's source; returns when the token
        is valid (a real denial, which ``error`` already describes).
        """
        auth = self.authenticator
        if not isinstance(auth, TokenAuth) or not self.transport.token:
            return
        if self._refused_generation != generation:
            if self._token_still_valid(generation):
                return
            self._refused_generation = generation
        where = f"{error.path or 'the request'} on {error.url or self.transport.url}"
        raise VaultPermissionError(
            f"Vault refused the {auth.describe()} for {where}:"
            " the token is invalid, has expired or been revoked (lookup-self was refused too; a token without the"
            " default policy cannot look itself up). Give the app a valid token or a login method (docs/auth.md).",
            url=error.url,
            mount=error.mount,
            path=error.path,
            status=403,
        )

    def _token_still_valid(self, generation: int) -> bool:
        confirmed = self._valid_confirmed
        if confirmed is not None and confirmed[0] == generation and self.clock() - confirmed[1] < VALID_FOR:
            return True
        try:
            response = self.transport.request(
                "lookup", LOOKUP_SELF, lambda: self.transport.hvac.auth.token.lookup_self(), token_hooks=False
            )
        except VaultUnavailableError:
            return True  # cannot tell: keep the token and report the original error
        except VaultError as exc:
            return exc.status != 403
        self._learn(response.get("data") if isinstance(response, dict) else None)
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


def _secs(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}" if value >= 10 else f"{value:.1f}"
