"""Database credentials from Vault's database secrets engine, kept alive and switched under a live pool.

A :class:`LeaseCredentials` is the :class:`~flask_vault.db.credentials.CredentialProvider`
of a database secrets engine role (``VAULT_DATABASE_ROLE``). Its credentials are a lease
that the renewal spine (:mod:`flask_vault.auth.renewal`, the one that keeps the token)
keeps alive:

* the lease is renewed (``sys/leases/renew``) at about two thirds of its TTL, with jitter;
* before it can no longer be renewed (a renewal no longer extends it: its max TTL is near;
  or Vault refused the renewal; or the token it was obtained with was replaced, since
  Vault revokes a lease with its token), new credentials are read and put in place: a
  *switch* to the next *generation*. Engines attached to the provider then open new
  connections with the new user; connections checked out finish their work and are
  closed at checkin; idle ones are replaced in the background (:mod:`flask_vault.db.pool`);
  and the previous lease is revoked after ``VAULT_DATABASE_GRACE`` seconds (at the latest
  when it would expire), which drops its database user;
* while Vault cannot be asked, the current credentials stay in use until they really
  expire (and after: existing connections keep working); renewal is tried again soon;
* in a forked worker, the parent's lease is left to the parent and the worker gets its own;
  a parent that has not *used* its lease (handed its credentials to a database connection:
  :meth:`LeaseCredentials.current`) revokes it once it forks, as a preloading gunicorn
  master does, and gets a new one should it ever open a connection;
* at exit, the lease (and any previous one not revoked yet) is revoked.

A static role (``<mount>/static-creds/<role>``: one user whose password Vault rotates)
works through the same provider: found when the role is not a dynamic one, read again just
after each rotation (and at once when the database refuses the password), and nothing is
switched, renewed or revoked: the user stays the same and its sessions stay valid.

Nothing here logs a password or a lease id: messages name the path
(``database/creds/app``), the user name, the generation and a short tag of the lease id.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from flask_vault.auth.renewal import Event, Renewal, Term, mark_upkeep_thread
from flask_vault.db.credentials import REREAD_INTERVAL, Credentials
from flask_vault.errors import VaultError, VaultPermissionError
from flask_vault.flight import ThrottledFlight
from flask_vault.observe.audit import OK, record
from flask_vault.vault.database import DatabaseSecrets, IssuedCredentials, lease_ref

if TYPE_CHECKING:
    from flask_vault.client import VaultClient

log = logging.getLogger(__name__)

#: A static role's password is read again this long after Vault is due to rotate it (seconds).
STATIC_REREAD_DELAY = 1.0
#: Health warns when a lease has less than this share of its TTL left (unless VAULT_DATABASE_WARN_TTL).
WARN_FRACTION = 0.25


@dataclass
class LeaseStats:
    """What one lease provider did in this process."""

    #: Lease renewals that Vault accepted, and those that failed.
    renewals: int = 0
    renewal_failures: int = 0
    #: New credentials put in place of others (not counting the first ones).
    switches: int = 0
    #: Attempts to get new credentials that failed.
    issue_failures: int = 0
    #: Previous leases revoked after their grace period (and at exit).
    revocations: int = 0

    @property
    def failures(self) -> int:
        """Renewals and attempts to get new credentials that failed."""
        return self.renewal_failures + self.issue_failures

    def as_dict(self) -> dict[str, int]:
        return {**self.__dict__, "failures": self.failures}


@dataclass(frozen=True)
class Generation:
    """One set of credentials this process got, and what is known of it. Never shown whole."""

    issued: IssuedCredentials
    number: int

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.issued.username, self.issued.password, version=self.number)

    @property
    def lease(self) -> str | None:
        return lease_ref(self.issued.lease_id)


class LeaseCredentials:
    """Credentials of database secrets engine ``role`` for the engines of one app. See the module docstring.

    ``key`` names what they fill in logs and health (``SQLALCHEMY_DATABASE_URI``);
    ``setting`` the setting that names the role (for messages). ``grace``: seconds the
    previous credentials live on after a switch; ``warn_ttl``: health warns below this
    many seconds left (None: a quarter of the lease's TTL). ``revoke_at_exit``: revoke the
    lease when the process exits. ``clock`` and ``background=False`` are for tests.
    """

    def __init__(
        self,
        client: VaultClient,
        role: str,
        *,
        mount: str = "database",
        key: str = "SQLALCHEMY_DATABASE_URI",
        setting: str = "VAULT_DATABASE_ROLE",
        grace: float = 30.0,
        warn_ttl: float | None = None,
        revoke_at_exit: bool = True,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self.client = client
        self.role = role
        self.key = key
        self.setting = setting
        self.grace = grace
        self.warn_ttl = warn_ttl
        self.revoke_at_exit = revoke_at_exit
        self.clock = clock
        self.secrets = DatabaseSecrets(client.transport, mount)
        #: Where the credentials come from; the static path once the role is known to be static.
        self.path = self.secrets.creds_path(role)
        #: None until the first read says which kind of role it is.
        self.static: bool | None = None
        self.stats = LeaseStats()
        #: Unix time of the last switch (None: none yet).
        self.last_switch: float | None = None
        #: The last failure to renew or get credentials (a message without values), or None.
        self.last_error: str | None = None
        self._current: Generation | None = None
        self._numbers = 0
        self._accepted_up_to = 0  # the newest generation the database accepted a login with
        self._refused_logged = 0  # the newest generation whose refusal was logged
        self._retiring: list[Generation] = []
        self._sweepers: list[Callable[[], object]] = []
        self._switch_listeners: list[Callable[[Credentials], None]] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        #: Getting new credentials because the database refused the current ones: once per interval.
        self._refusals = ThrottledFlight(REREAD_INTERVAL)
        settings = client.settings
        self.renewal: Renewal[Generation] = Renewal(
            self,
            name="flask-vault-lease",
            clock=clock,
            background=background,
            flight_timeout=(settings.timeout + 2) * (settings.max_retries + 1) * 3 + 10,
            depends_on=client.keeper.renewal,  # Vault revokes a lease with the token it was obtained with
        )
        #: The lease was revoked after a fork, unused (see renewal.release_unused); the next connection gets one.
        self.released = False
        client.keeper.on_new_token(self._token_replaced)

    def __repr__(self) -> str:
        return f"<LeaseCredentials {self.key} at {self.path} generation={self.generation}>"

    # -- what others read --------------------------------------------------------------

    @property
    def generation(self) -> int:
        """The number of the credentials in use (0: none yet); each switch adds one."""
        current = self._current
        return current.number if current is not None else 0

    @property
    def username(self) -> str | None:
        current = self._current
        return current.issued.username if current is not None else None

    def expires_in(self) -> float | None:
        """Seconds until the lease expires (negative: it has); None: none, or a static role."""
        return self.renewal.expires_in()

    def warn_below(self) -> float | None:
        """Seconds left below which health warns (None: no lease to judge)."""
        held = self.renewal.current
        if self.warn_ttl is not None:
            return self.warn_ttl
        if held is None or not held.full_ttl:
            return None
        return held.full_ttl * WARN_FRACTION

    def status(self) -> dict[str, Any]:
        """What health and ``flask vault status`` show: no password, no lease id."""
        current = self._current
        held = self.renewal.current
        expires_in = self.expires_in()
        now = self.clock()
        next_rotation = next_action = None
        if held is not None and held.due_at is not None:
            next_rotation = max(0.0, held.due_at - now - STATIC_REREAD_DELAY)
        if held is not None and held.next_at is not None:
            next_action = max(0.0, held.next_at - now)
        return {
            "key": self.key,
            "role": self.role,
            "path": self.path,
            "static": bool(self.static),
            "username": current.issued.username if current is not None else None,
            "generation": self.generation,
            "lease": current.lease if current is not None else None,
            "ttl": held.full_ttl if held is not None else None,
            "expires_in": expires_in,
            "warn_below": self.warn_below(),
            "next_rotation_in": next_rotation,
            # Seconds until the spine renews or replaces it (or tries again after a failure).
            "next_renewal_in": next_action,
            "last_switch": _iso(self.last_switch),
            "retiring": len(self._retiring),
            "released": self.released,
            "last_error": self.last_error,
            **self.stats.as_dict(),
        }

    # -- the engines' side (CredentialProvider, SwitchingProvider) ---------------------

    def current(self) -> Credentials:
        """The credentials a new connection uses now; the first call (in a process) gets them.

        Handing them out is a *use* of the lease (and of the token it was obtained with):
        a process that forks after one keeps its lease (see :meth:`obtain`).
        """
        renewal = self.renewal
        renewal.check_fork()
        if not renewal.used:
            renewal.mark_used()
        return self.obtain()

    def obtain(self) -> Credentials:
        """The credentials now, getting them if there are none, without it counting as a use.

        For filling the URL in ``app.config`` at start-up: a preloading gunicorn master
        does only that, and so revokes its lease after its first fork.
        """
        renewal = self.renewal
        renewal.check_fork()
        current = self._current
        if current is None:
            if renewal.stopped:
                raise VaultError(f"The database credentials from {self.path} were closed.", path=self.path)
            renewal.flight(self._first_use)
            current = self._current
            if current is None:
                raise VaultError(f"Vault gave no database credentials at {self.path}.", path=self.path)
        renewal.ensure_thread()
        return current.credentials

    def refused(self, credentials: Credentials) -> Credentials | None:
        """The database refused ``credentials``: newer ones, or None.

        Older credentials than the current ones: the current ones. The current ones: a
        static role's password may have been rotated, or a lease that worked revoked (its
        user dropped); new credentials are read, at most once per interval. A new user that
        never worked is not replaced by another (the cause is elsewhere: the role's
        statements, ``pg_hba.conf``), so a refusing database cannot make Vault create users
        one after the other.
        """
        current = self._current
        if current is not None and current.number != credentials.version:
            return current.credentials
        number = self.generation
        if not self.static and (credentials.version or 0) > self._accepted_up_to:
            if self._refused_logged == credentials.version:
                return None
            self._refused_logged = credentials.version or 0
            log.error(
                "The database refuses the new credentials from %s (user %s, generation %s) for %s. Check the"
                " role's creation statements and the database's pg_hba.conf; new credentials come at the next"
                " renewal point.",
                self.path,
                credentials.username,
                credentials.version,
                self.key,
            )
            return None
        self._refusals.run(
            lambda: self.renewal.flight(lambda: self._replace_if(number, "the database refused the credentials")),
            wait=True,
        )
        current = self._current
        if current is None or current.number == credentials.version:
            return None
        return current.credentials

    def refresh(self) -> bool:
        """Nothing to ask: the renewal spine keeps the credentials current."""
        return self._current is not None

    def retired(self, version: int | None) -> bool:
        """Connections of an earlier generation than the current one are not used again."""
        if self.static or version is None:
            return False
        return version < self.generation

    def add_sweeper(self, sweep: Callable[[], object]) -> None:
        self._sweepers.append(sweep)

    def accepted(self, version: int | None) -> None:
        if version is not None and version > self._accepted_up_to:
            self._accepted_up_to = version

    def on_switch(self, callback: Callable[[Credentials], None]) -> None:
        """Call ``callback(credentials)`` each time new credentials are put in place (the first too)."""
        self._switch_listeners.append(callback)

    def close(self, *, revoke: bool | None = None, timeout: float = 2.0) -> None:
        """Stop renewing, revoke (by default as ``revoke_at_exit`` says) and forget the credentials."""
        self.renewal.close(revoke=revoke, timeout=timeout)

    # -- the renewal spine's subject (Renewable) ---------------------------------------

    def renew(self) -> Term[Generation]:
        """Renew the lease in use (``sys/leases/renew``)."""
        current = self._current
        if current is None or current.issued.lease_id is None:
            raise VaultError(f"No lease to renew for {self.path}.", path=self.path)
        try:
            ttl, renewable = self.secrets.renew(current.issued.lease_id)
        except VaultError as exc:
            self.stats.renewal_failures += 1
            self.last_error = self._scrub(exc.message)
            raise
        self.stats.renewals += 1
        self.last_error = None
        log.debug("Renewed the database lease %s (lease %s) for %ss.", self.path, current.lease, _secs(ttl))
        return Term(ttl=ttl, renewable=renewable)

    def replace(self, reason: str) -> Term[Generation]:
        """Read new credentials and put them in place of the current ones (a switch)."""
        try:
            issued = self.secrets.issue(self.role, static=self.static)
        except VaultError as exc:
            self.stats.issue_failures += 1
            self.last_error = self._scrub(exc.message)
            raise
        self.static, self.path, self.last_error, self.released = issued.static, issued.path, None, False
        previous = self._current
        if issued.static and previous is not None and previous.issued.password == issued.password:
            self._current = Generation(issued, previous.number)  # not rotated yet: the same credentials
            return self._term(issued)
        self._numbers += 1
        fresh = Generation(issued, self._numbers)
        self._current = fresh
        if previous is None:
            lease = "" if issued.static else f", lease {fresh.lease} for {_secs(issued.ttl)}s"
            log.info(
                "Database credentials for %s from %s: user %s (generation %s%s).",
                self.key,
                self.path,
                issued.username,
                fresh.number,
                lease,
            )
        else:
            self._switched(previous, fresh, reason)
        for listener in list(self._switch_listeners):
            try:
                listener(fresh.credentials)
            except Exception:  # a listener must not stop a switch
                log.exception("A listener of %s's database credentials failed.", self.key)
        return self._term(issued)

    def revoke(self, timeout: float) -> None:
        """At exit: revoke the lease in use and every previous one not revoked yet (one attempt each)."""
        self._closing.set()
        with self._lock:
            leases = [*self._retiring, *([self._current] if self._current is not None else [])]
            self._retiring = []
        for generation in leases:
            if generation.issued.lease_id is not None:
                self._revoke_now(generation, timeout)

    def release(self) -> None:
        """After a fork: revoke the lease this process has not used (one attempt; see renewal.release_unused)."""
        current = self._current
        if current is None or current.issued.lease_id is None:
            return
        self.released = True
        self._revoke_now(current, self.client.settings.timeout, released=True)

    def drop(self) -> None:
        """Forget the credentials (closed, released, or the parent's in a forked child)."""
        self._current = None

    def after_fork(self) -> None:
        """In a forked child: the parent's previous leases are the parent's to revoke; counters start again."""
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._retiring = []
        self.stats = LeaseStats()
        self.last_switch = None
        self.released = False  # the parent's release is the parent's

    def report(
        self, event: Event, *, error: VaultError | None = None, left: float | None = None, delay: float | None = None
    ) -> None:
        """Log what the renewal spine ran into: the path, the user and what to do; never a value."""
        message = self._scrub(error.message) if error is not None else ""
        where = f"{self.path} (user {self.username}, generation {self.generation})"
        expires_in = self.expires_in()
        if event == "unreachable":
            log.warning(
                "Could not renew the database lease %s: %s New connections keep using its credentials, which"
                " expire in %ss; trying again soon. If Vault is still unreachable then, new database logins may"
                " be refused: bring Vault back (health warns below %ss left).",
                where,
                message,
                _secs(expires_in),
                _secs(self.warn_below()),
            )
        elif event == "refused":
            log.info("Vault refused to renew the database lease %s: %s Getting new credentials.", where, message)
        elif event == "capped":
            log.info(
                "The database lease %s reached its max TTL (%ss left); getting new credentials.", where, _secs(left)
            )
        elif event in ("retry", "fork"):
            until = "stay valid until Vault rotates the password" if self.static else f"expire in {_secs(expires_in)}s"
            log.warning(
                "Could not get new database credentials from %s for %s: %s Trying again in %.1fs; the current"
                " ones (user %s) %s. Check that Vault is up, that %s names a role of the database secrets"
                " engine, and that the app's policy may read %s.",
                self.path,
                self.key,
                message,
                delay or 0.0,
                self.username,
                until,
                self.setting,
                self.path,
            )
        else:
            log.warning("The database lease %s cannot be renewed or replaced (%s): %s", where, event, message)

    # -- flight bodies (one thread at a time) --------------------------------------------

    def _first_use(self) -> None:
        if self._current is None:
            self.renewal.replace("first use")

    def _replace_if(self, number: int, reason: str) -> None:
        if self.generation == number:
            self.renewal.replace(reason)

    def _token_replaced(self) -> None:
        """The token changed: Vault revokes a lease with the token it was obtained with, so switch soon."""
        if self._current is not None and not self.static:
            self.renewal.replace_soon("the Vault token it was obtained with was replaced")

    def _term(self, issued: IssuedCredentials) -> Term[Generation]:
        current = self._current
        if issued.static:
            # No lease: the password stays valid until Vault rotates it, and is read again just after.
            return Term(ttl=None, replaceable=True, detail=current, due=issued.ttl + STATIC_REREAD_DELAY)
        return Term(
            ttl=issued.ttl,
            renewable=issued.renewable,
            replaceable=True,
            revoke_at_close=self.revoke_at_exit,
            detail=current,
        )

    # -- switching -------------------------------------------------------------------------

    def _switched(self, previous: Generation, fresh: Generation, reason: str) -> None:
        self.stats.switches += 1
        self.last_switch = time.time()
        if fresh.issued.static:
            log.info(
                "%s's database password from %s changed (Vault rotated it); new connections use it.",
                self.key,
                self.path,
            )
            return
        held = self.renewal.current
        expires_at = held.expires_at if held is not None and held.detail is previous else None
        revoke_in = self.grace if expires_at is None else max(0.0, min(self.grace, expires_at - self.clock()))
        log.info(
            "Switched %s to new database credentials from %s (%s): user %s, generation %s. Connections of user %s"
            " finish their work; its lease is revoked in %ss.",
            self.key,
            self.path,
            reason,
            fresh.issued.username,
            fresh.number,
            previous.issued.username,
            _secs(revoke_in),
        )
        with self._lock:
            self._retiring.append(previous)
        thread = threading.Thread(
            target=self._retire, args=(previous, revoke_in), name="flask-vault-lease-retire", daemon=True
        )
        thread.start()

    def _retire(self, previous: Generation, revoke_in: float) -> None:
        """After a switch: replace idle connections now, revoke the previous lease after the grace period."""
        mark_upkeep_thread()  # its revoke is no use of the token
        closing = self._closing
        self._sweep()
        if closing.wait(revoke_in):
            return  # closing: revoke() takes care of it
        self._sweep()
        with self._lock:
            if previous not in self._retiring:
                return
            self._retiring.remove(previous)
        lease_id = previous.issued.lease_id
        if lease_id is None:
            return
        try:
            self.secrets.revoke(lease_id)
        except VaultPermissionError:
            log.warning(
                "The app's policy does not allow sys/leases/revoke: the previous database credentials from %s"
                ' (user %s) stay until their lease expires. Add \'path "sys/leases/revoke" { capabilities ='
                ' ["update"] }\' to the policy (see `flask vault policy database`).',
                self.path,
                previous.issued.username,
            )
            return
        except VaultError as exc:
            log.warning(
                "Could not revoke the previous database lease %s (user %s, lease %s): %s It ends at its expiry.",
                self.path,
                previous.issued.username,
                previous.lease,
                self._scrub(exc.message),
            )
            return
        self.stats.revocations += 1
        log.info(
            "Revoked the previous database lease %s (user %s, generation %s).",
            self.path,
            previous.issued.username,
            previous.number,
        )

    def _sweep(self) -> None:
        for sweep in list(self._sweepers):
            try:
                sweep()
            except Exception:  # the checkout listener still replaces what a sweep missed
                log.debug("Sweeping a pool after a switch failed.", exc_info=True)

    def _revoke_now(self, generation: Generation, timeout: float, *, released: bool = False) -> None:
        """One ``sys/leases/revoke`` request, no retries (at exit, or ``released`` after a fork)."""
        when = "after a fork" if released else "at exit"
        transport = self.client.transport
        lease_id = generation.issued.lease_id
        token = transport.token
        if lease_id is None or not token:
            return
        started = time.perf_counter()
        adapter = transport.side_adapter(token)
        try:
            adapter.put("/v1/sys/leases/revoke", json={"lease_id": lease_id}, timeout=min(timeout, 5.0))
        except Exception as exc:  # at exit: report and move on
            record("revoke", "sys/leases/revoke", outcome=type(exc).__name__, duration=time.perf_counter() - started)
            log.warning(
                "Could not revoke the database lease %s (user %s, lease %s) %s (%s); it ends at its expiry.",
                self.path,
                generation.issued.username,
                generation.lease,
                when,
                type(exc).__name__,
            )
            return
        record("revoke", "sys/leases/revoke", outcome=OK, duration=time.perf_counter() - started)
        self.stats.revocations += 1
        if released:
            log.info(
                "Revoked the database lease %s (user %s): this process forked without having used it (a"
                " preloading master, say); its next database connection, if any, gets new credentials.",
                self.path,
                generation.issued.username,
            )
        else:
            log.info("Revoked the database lease %s (user %s) at exit.", self.path, generation.issued.username)

    def _scrub(self, text: str) -> str:
        """``text`` without any lease id this provider knows (Vault may quote one)."""
        for generation in [self._current, *self._retiring]:
            lease_id = generation.issued.lease_id if generation is not None else None
            if lease_id:
                text = text.replace(lease_id, self.path)
        return text


def _secs(value: float | None) -> str:
    return "?" if value is None else f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"


def _iso(unix: float | None) -> str | None:
    if unix is None:
        return None
    return datetime.fromtimestamp(unix, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
