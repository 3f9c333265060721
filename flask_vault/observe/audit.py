"""The client-side audit trail: one structured record per Vault operation.

Records go to the ``flask_vault.audit`` logger, at INFO when the operation succeeded and
at WARNING when it failed. Each record carries a ``vault`` attribute (a dict, so a JSON
formatter can ship it as fields)::

    operation    "read", "write", "list", "metadata", "lookup", "login", "renew",
                 "rotate", "backup", "restore", "rollback", ...
    path         the Vault path, e.g. "secret/store-erp/production/flask"
    version      the KV v2 version read or written, else None
    outcome      "ok", or the error class name ("VaultUnavailableError", ...)
    status       the HTTP status of a failed request, when there was one
    duration_ms  wall time of the operation, retries included
    token_id     the first 12 hex digits of SHA-256(token accessor), or None

Never a secret value, a token or an accessor. ``token_id`` matches
``accessor_hash(accessor)`` for the accessor Vault shows in its own audit log and in
``bao token lookup``, so an operator who knows an accessor can find its records, while
the trail itself cannot be used to look up, renew or revoke the token.

The accessor is learnt without extra requests from every login, renewal and
lookup-self answer. For a token given as is (``VAULT_TOKEN``), the first successful
request of that token is followed by one ``lookup-self`` to learn it, and only when
the logger is enabled for INFO (that is, when the trail is being kept).

:class:`AuditTrail` is what a :class:`~flask_vault.client.VaultClient` uses: it emits
the record, counts the operation in :class:`~flask_vault.observe.metrics.VaultMetrics` and
remembers accessor hashes. Code that groups several requests into one operation
(rotation, backups) wraps it in :meth:`AuditTrail.operation`.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from flask_vault.observe.metrics import VaultMetrics

audit_log = logging.getLogger("flask_vault.audit")

OK = "ok"
#: The path recorded for the lookup that learns a token's accessor.
LOOKUP_SELF_PATH = "auth/token/lookup-self"
#: Operations whose own answer names the accessor (or that must not trigger a lookup).
_NO_LOOKUP_AFTER = frozenset({"lookup", "login", "renew", "revoke", "health"})
#: How many tokens' accessor hashes are remembered (the current one and a few before it).
_REMEMBERED_TOKENS = 16


def accessor_hash(accessor: str | None) -> str | None:
    """A short, stable, one-way tag for a token accessor, safe to log."""
    if not accessor:
        return None
    return hashlib.sha256(accessor.encode()).hexdigest()[:12]


def record(
    operation: str,
    path: str | None,
    *,
    outcome: str,
    duration: float,
    version: int | None = None,
    token_id: str | None = None,
    status: int | None = None,
) -> None:
    """Emit one audit record (see the module docstring for the fields)."""
    level = logging.INFO if outcome == OK else logging.WARNING
    if not audit_log.isEnabledFor(level):
        return
    fields = {
        "operation": operation,
        "path": path,
        "version": version,
        "outcome": outcome,
        "status": status,
        "duration_ms": round(duration * 1000, 2),
        "token_id": token_id,
    }
    audit_log.log(
        level,
        "vault %s %s outcome=%s version=%s duration_ms=%s token_id=%s",
        operation,
        path or "-",
        outcome if status is None else f"{outcome}({status})",
        version if version is not None else "-",
        fields["duration_ms"],
        token_id or "-",
        extra={"vault": fields},
    )


def _fingerprint(token: str) -> str:
    # Only ever compared in memory, never logged: a key for "which token is this".
    return hashlib.sha256(token.encode()).hexdigest()


class TokenTags:
    """Accessor hashes (and expiry, when known) of recently used tokens.

    Keyed by a fingerprint of the token; neither token nor accessor is kept.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._tags: OrderedDict[str, str] = OrderedDict()
        self._expiry: dict[str, float | None] = {}
        self._tried: set[str] = set()

    def remember(self, token: str, accessor: str, *, ttl: Any = None) -> None:
        """``ttl``: seconds the token has left (0: it never expires), when the answer said."""
        tag = accessor_hash(accessor)
        if not token or tag is None:
            return
        key = _fingerprint(token)
        with self._lock:
            self._tags[key] = tag
            self._tags.move_to_end(key)
            if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0:
                self._expiry[key] = None if ttl == 0 else self.clock() + ttl
            while len(self._tags) > _REMEMBERED_TOKENS:
                old, _ = self._tags.popitem(last=False)
                self._expiry.pop(old, None)

    def learn(self, response: Any) -> None:
        """Remember the accessor (and TTL) named in a login, renewal or lookup answer, if any."""
        if not isinstance(response, dict):
            return
        auth = response.get("auth")
        if isinstance(auth, dict) and _both_str(auth.get("client_token"), auth.get("accessor")):
            self.remember(auth["client_token"], auth["accessor"], ttl=auth.get("lease_duration"))
        data = response.get("data")
        if isinstance(data, dict) and _both_str(data.get("id"), data.get("accessor")):
            self.remember(data["id"], data["accessor"], ttl=data.get("ttl"))

    def expires_at(self, token: str) -> tuple[bool, float | None]:
        """(known, expiry on ``clock``; None: never expires) for ``token``."""
        key = _fingerprint(token)
        with self._lock:
            if key not in self._expiry:
                return False, None
            return True, self._expiry[key]

    def get(self, token: str) -> str | None:
        with self._lock:
            return self._tags.get(_fingerprint(token))

    def known(self, token: str) -> bool:
        with self._lock:
            return _fingerprint(token) in self._tags

    def claim_lookup(self, token: str) -> bool:
        """True once per token: the caller may look its accessor up."""
        key = _fingerprint(token)
        with self._lock:
            if key in self._tags or key in self._tried:
                return False
            if len(self._tried) > 4 * _REMEMBERED_TOKENS:
                self._tried.clear()
            self._tried.add(key)
            return True


def _issued_token_id(response: Any) -> str | None:
    auth = response.get("auth") if isinstance(response, dict) else None
    if isinstance(auth, dict) and isinstance(auth.get("accessor"), str):
        return accessor_hash(auth["accessor"])
    return None


def _both_str(token: Any, accessor: Any) -> bool:
    return isinstance(token, str) and isinstance(accessor, str) and bool(token) and bool(accessor)


@dataclass
class AuditedOperation:
    """What the body of :meth:`AuditTrail.operation` may fill in before it ends."""

    operation: str
    path: str | None
    version: int | None = None


class AuditTrail:
    """One client's audit trail: records, counters and the accessor hash of its token.

    ``token`` returns the token currently in use; ``token_id_hint`` what the login code
    already knows of its accessor hash (the token keeper's ``token_id``), if anything;
    ``lookup_self`` makes one raw ``auth/token/lookup-self`` request with the token (no
    retries), used only when neither knows it.
    """

    def __init__(
        self,
        *,
        token: Callable[[], str | None],
        token_id_hint: Callable[[], str | None] | None = None,
        lookup_self: Callable[[], Any] | None = None,
        metrics: VaultMetrics | None = None,
    ) -> None:
        self.metrics = metrics if metrics is not None else VaultMetrics()
        self.tags = TokenTags()
        self._token = token
        self._token_id_hint = token_id_hint
        self._lookup_self = lookup_self
        #: Outcome of the most recent "login" operation ("ok", an error class name, or None).
        self.last_login_outcome: str | None = None

    def token_id(self, *, resolve: bool = False) -> str | None:
        """The accessor hash of the token in use; with ``resolve``, look it up once if unknown."""
        token = self._token()
        if not token:
            return None
        tag = self.tags.get(token)
        if tag is None and self._token_id_hint is not None:
            hint = self._token_id_hint()
            tag = hint if isinstance(hint, str) and hint else None
        if tag is not None or not resolve or self._lookup_self is None:
            return tag
        if not audit_log.isEnabledFor(logging.INFO) or not self.tags.claim_lookup(token):
            return None
        self._look_up_accessor()
        return self.tags.get(token)

    def note_accessor(self, accessor: str | None, token: str | None = None) -> None:
        """Hook for login code: the accessor of ``token`` (default: the token in use)."""
        token = token or self._token()
        if token and accessor:
            self.tags.remember(token, accessor)

    def _look_up_accessor(self) -> None:
        assert self._lookup_self is not None
        started = time.perf_counter()
        try:
            response = self._lookup_self()
        except Exception as exc:  # one attempt only; the trail must never break a request
            self.finish("lookup", LOOKUP_SELF_PATH, outcome=type(exc).__name__, duration=time.perf_counter() - started)
            return
        self.finish("lookup", LOOKUP_SELF_PATH, outcome=OK, duration=time.perf_counter() - started, result=response)

    def finish(
        self,
        operation: str,
        path: str | None,
        *,
        outcome: str,
        duration: float,
        version: int | None = None,
        status: int | None = None,
        result: Any = None,
    ) -> None:
        """Count and record one finished operation; ``result`` is Vault's answer when it succeeded."""
        self.metrics.observe(operation, outcome, duration)
        if operation == "login":
            self.last_login_outcome = outcome
        if result is not None:
            self.tags.learn(result)
        level = logging.INFO if outcome == OK else logging.WARNING
        if not audit_log.isEnabledFor(level):
            return
        # A login or renewal is recorded with the token it produced; anything else with the token in use.
        token_id = _issued_token_id(result) or self.token_id(
            resolve=outcome == OK and operation not in _NO_LOOKUP_AFTER
        )
        record(
            operation,
            path,
            outcome=outcome,
            duration=duration,
            version=version,
            token_id=token_id,
            status=status,
        )

    @contextmanager
    def operation(self, operation: str, path: str | None = None) -> Iterator[AuditedOperation]:
        """Record a composite operation (rotate, backup, restore, rollback) as one record.

        ``with trail.operation("rotate", path) as op: ...; op.version = new_version``.
        An exception is recorded as the outcome (its class name) and re-raised.
        """
        op = AuditedOperation(operation, path)
        started = time.perf_counter()
        try:
            yield op
        except BaseException as exc:
            status = getattr(exc, "status", None)
            self.finish(
                op.operation,
                op.path,
                outcome=type(exc).__name__,
                duration=time.perf_counter() - started,
                version=op.version,
                status=status if isinstance(status, int) else None,
            )
            raise
        self.finish(op.operation, op.path, outcome=OK, duration=time.perf_counter() - started, version=op.version)
