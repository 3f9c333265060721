"""The renewal spine (flask_vault.auth.renewal) is not about tokens: it keeps a database-style
lease alive the same way. A fake lease (what ``database/creds/<role>``, ``sys/leases/renew``
and ``sys/leases/revoke`` would give) on an injectable clock, stepped by hand; threads and
a real fork where the behaviour is about them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from core_support import FakeClock, wait_for

from flask_vault.auth import renewal as renewal_module
from flask_vault.auth.renewal import Event, Renewal, Term
from flask_vault.errors import VaultError, VaultUnavailableError

log = logging.getLogger("flask_vault.fake_lease")


class FakeLease:
    """A lease with a TTL: issued (``replace``), renewed, revoked; what a DB credential would do."""

    def __init__(
        self,
        clock: FakeClock,
        *,
        ttl: float = 30,
        renewable: bool = True,
        background: bool = False,
        depends_on: FakeLease | None = None,
        revocations: list[str] | None = None,
    ) -> None:
        self.ttl = ttl
        self.renewable = renewable
        self.lease_id: str | None = None
        self.issued: list[str] = []
        self.reasons: list[str] = []
        self.renewals = 0
        self.renew_answers: list[float | VaultError] = []
        self.revoked: list[str] = []
        #: Every revocation, released or at close, in order (shared by fakes that depend on each other).
        self.revocations = revocations if revocations is not None else []
        self.released: list[str] = []
        self.events: list[Event] = []
        self.forked = False
        self.renewal: Renewal[str] = Renewal(
            self,
            name="fake-lease",
            clock=clock,
            jitter=0.0,
            background=background,
            depends_on=depends_on.renewal if depends_on is not None else None,
        )

    def renew(self) -> Term[str]:
        answer = self.renew_answers.pop(0) if self.renew_answers else self.ttl
        if isinstance(answer, VaultError):
            raise answer
        self.renewals += 1
        return Term(ttl=answer, renewable=True)

    def replace(self, reason: str) -> Term[str]:
        self.lease_id = f"database/creds/app/lease-{len(self.issued) + 1}-pid-{os.getpid()}"
        self.issued.append(self.lease_id)
        self.reasons.append(reason)
        return Term(
            ttl=self.ttl, renewable=self.renewable, replaceable=True, revoke_at_close=True, detail=self.lease_id
        )

    def revoke(self, timeout: float) -> None:
        assert self.lease_id is not None
        self.revoked.append(self.lease_id)
        self.revocations.append(self.lease_id)

    def release(self) -> None:
        assert self.lease_id is not None
        self.released.append(self.lease_id)
        self.revocations.append(self.lease_id)
        log.info("fake lease %s: released after a fork", self.lease_id)

    def drop(self) -> None:
        self.lease_id = None

    def after_fork(self) -> None:
        self.forked = True

    def report(
        self, event: Event, *, error: VaultError | None = None, left: float | None = None, delay: float | None = None
    ) -> None:
        self.events.append(event)
        log.info("fake lease %s: %s", self.lease_id, event)  # as a real subject logs what the spine reports


def acquired(clock: FakeClock, **kwargs: Any) -> FakeLease:
    lease = FakeLease(clock, **kwargs)
    lease.renewal.flight(lambda: lease.renewal.replace("first use"))
    return lease


def test_a_lease_is_renewed_at_two_thirds_of_its_ttl_and_renewed_again_later() -> None:
    clock = FakeClock()
    lease = acquired(clock)
    assert lease.renewal.step() == pytest.approx(20)
    clock.advance(19.9)
    lease.renewal.step()
    assert lease.renewals == 0
    clock.advance(0.1)
    assert lease.renewal.step() == pytest.approx(20)
    assert (lease.renewals, lease.issued) == (1, [f"database/creds/app/lease-1-pid-{os.getpid()}"])
    assert lease.renewal.expires_in() == pytest.approx(30)


def test_jitter_spreads_the_renewal_point_of_leases_taken_together() -> None:
    clock = FakeClock()
    delays = []
    for _ in range(20):
        lease = FakeLease(clock)
        lease.renewal.jitter = 0.1
        lease.renewal.flight(lambda lease=lease: lease.renewal.replace("first use"))
        delays.append(lease.renewal.step())
        lease.renewal.close(revoke=False)
    assert all(d is not None and 18.0 <= d <= 20.0 for d in delays)
    assert len({round(d or 0, 3) for d in delays}) > 1


@pytest.mark.parametrize(
    ("answer", "event"),
    [(7.0, "capped"), (VaultError("lease is not renewable", status=400), "refused")],
)
def test_a_lease_whose_renewal_is_capped_or_refused_is_replaced(answer: float | VaultError, event: str) -> None:
    clock = FakeClock()
    lease = acquired(clock)
    lease.renew_answers.append(answer)
    clock.advance(20)
    lease.renewal.step()
    assert lease.events == [event]
    assert len(lease.issued) == 2 and lease.lease_id == lease.issued[1]
    assert lease.reasons[1] in ("max TTL reached", "renewal refused")
    assert lease.renewal.current is not None and lease.renewal.current.detail == lease.issued[1]


def test_a_renewal_vault_cannot_answer_is_retried_soon_and_the_lease_replaced_once_it_expired() -> None:
    clock = FakeClock()
    lease = acquired(clock)
    lease.renew_answers.extend([VaultUnavailableError("down"), VaultUnavailableError("down")])
    clock.advance(20)
    delay = lease.renewal.step()
    assert delay is not None and 0.5 <= delay <= 5
    assert len(lease.issued) == 1  # Vault could not be asked: keep the lease, try again
    clock.advance(11)  # past its expiry
    lease.renewal.step()
    delay = lease.renewal.step()
    clock.advance(delay or 0)
    lease.renewal.step()
    assert len(lease.issued) == 2
    assert lease.events == ["unreachable", "unreachable"]


def test_a_lease_that_cannot_be_renewed_is_replaced_before_it_expires() -> None:
    clock = FakeClock()
    lease = acquired(clock, renewable=False)
    clock.advance(20)
    lease.renewal.step()
    assert (lease.renewals, len(lease.issued)) == (0, 2)


def test_a_lease_that_can_be_neither_renewed_nor_replaced_is_warned_about_once() -> None:
    clock = FakeClock()
    lease = FakeLease(clock)
    lease.renewal.install(Term(ttl=60, detail="database/creds/app/given"))
    assert lease.renewal.step() == pytest.approx(40)
    clock.advance(40)
    assert lease.renewal.step() is None
    clock.advance(10)
    assert lease.renewal.step() is None
    assert lease.events == ["expiring"]


def test_threads_needing_a_lease_at_once_share_one_acquisition() -> None:
    clock = FakeClock()
    lease = FakeLease(clock)
    entered, release = threading.Event(), threading.Event()
    calls = []

    def acquire() -> None:
        calls.append(1)
        entered.set()
        release.wait(10)
        lease.renewal.replace("first use")

    results: list[tuple[int, bool]] = []
    leader = threading.Thread(target=lambda: results.append(lease.renewal.flight(acquire)))
    leader.start()
    assert entered.wait(10)
    followers = [threading.Thread(target=lambda: results.append(lease.renewal.flight(acquire))) for _ in range(8)]
    for thread in followers:
        thread.start()
    wait_for(lambda: all(t.is_alive() for t in followers))
    release.set()
    for thread in [leader, *followers]:
        thread.join(10)
    assert len(calls) == 1 and len(lease.issued) == 1
    assert sorted(led for _, led in results) == [False] * 8 + [True]
    assert {generation for generation, _ in results} == {lease.renewal.generation}


def test_close_revokes_the_lease_this_process_obtained_and_forgets_it() -> None:
    clock = FakeClock()
    lease = acquired(clock)
    obtained = lease.lease_id
    lease.renewal.close()
    assert lease.revoked == [obtained]
    assert lease.lease_id is None and lease.renewal.current is None


def test_close_leaves_a_lease_it_was_given_or_told_to_keep() -> None:
    clock = FakeClock()
    given = FakeLease(clock)
    given.renewal.install(Term(ttl=60, renewable=True, detail="database/creds/app/given"))
    given.lease_id = "database/creds/app/given"
    given.renewal.close()
    kept = acquired(clock)
    kept.renewal.close(revoke=False)
    assert given.revoked == [] and kept.revoked == []


@pytest.fixture
def only_new_spines(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork and exit handlers see only the spines this test makes (not another test's keepers)."""
    import weakref

    from flask_vault.auth import renewal as spine

    monkeypatch.setattr(spine, "_LIVE", weakref.WeakSet())


def fork_and_report(report: Any) -> dict[str, Any]:
    """Fork; the child sends ``report()`` (JSON) and leaves without the parent's exit handlers."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            os.write(write_end, json.dumps(report()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child: dict[str, Any] = json.loads(pipe.read() or "{}")
    os.waitpid(pid, 0)
    return child


def test_a_forked_child_drops_the_parents_lease_and_gets_its_own_from_its_own_thread(only_new_spines: None) -> None:
    lease = acquired(FakeClock(), background=True)
    lease.renewal.mark_used()  # the parent uses it: it keeps it after the fork
    parent_lease = lease.lease_id

    def child_report() -> dict[str, Any]:
        wait_for(lambda: len(lease.issued) == 2, timeout=10)
        thread = lease.renewal.thread
        return {
            "forked": lease.forked,
            "own_lease": lease.lease_id not in (None, parent_lease),
            "reason": lease.reasons[-1],
            "thread": thread is not None and thread.daemon,
            "revoked": lease.revoked,
        }

    child = fork_and_report(child_report)
    try:
        assert child == {"forked": True, "own_lease": True, "reason": "first use", "thread": True, "revoked": []}
        assert lease.lease_id == parent_lease and len(lease.issued) == 1 and not lease.forked
    finally:
        lease.renewal.close(revoke=False)


def test_in_a_forked_child_the_token_comes_only_once_the_parents_lease_is_dropped(only_new_spines: None) -> None:
    token = acquired(FakeClock(), background=True)
    lease = acquired(FakeClock(), background=True, depends_on=token)
    lease.renewal.mark_used()  # the parent keeps both
    parent, token_came = os.getpid(), threading.Event()
    lease_when_the_token_came: list[bool] = []
    get_token = token.replace

    def replace(reason: str) -> Term[str]:
        if os.getpid() != parent:  # a keeper's listener here replaces a lease held then (older token)
            lease_when_the_token_came.append(lease.renewal.current is not None)
        token_came.set()
        return get_token(reason)

    def lease_after_fork() -> None:  # had the thread started already, the token would come meanwhile
        token_came.wait(1.0)
        lease.forked = True

    token.replace = replace  # type: ignore[method-assign]
    lease.after_fork = lease_after_fork  # type: ignore[method-assign]

    def child_report() -> dict[str, Any]:
        wait_for(lambda: len(token.issued) == 2 and len(lease.issued) == 2, timeout=10)
        return {"lease_held": lease_when_the_token_came, "reasons": lease.reasons[1:]}

    try:
        assert fork_and_report(child_report) == {"lease_held": [False], "reasons": ["first use"]}
    finally:
        for spine in renewal_module.live():
            spine.close(revoke=False)


def test_after_a_fork_the_parent_revokes_a_lease_it_never_used_and_keeps_the_one_it_used(
    only_new_spines: None,
) -> None:
    unused, used = acquired(FakeClock(), background=True), acquired(FakeClock(), background=True)
    used.renewal.mark_used()
    unused_id, used_id = unused.lease_id, used.lease_id

    def child_report() -> dict[str, Any]:
        wait_for(lambda: len(unused.issued) == 2 and len(used.issued) == 2, timeout=10)
        return {"own": unused.lease_id not in (None, unused_id) and used.lease_id not in (None, used_id),
                "released": unused.released + used.released}  # fmt: skip

    child = fork_and_report(child_report)
    try:
        assert child == {"own": True, "released": []}  # the child gets its own of both and releases nothing
        wait_for(lambda: unused.released == [unused_id], timeout=10)  # in the parent's background thread
        assert unused.lease_id is None and unused.renewal.current is None and unused.revoked == []
        assert not unused.renewal.needs_background() and len(unused.issued) == 1  # nothing got until a use
        assert used.lease_id == used_id and used.released == [] and used.renewal.current is not None
        # The next use gets a new one, as a forked child's first use does; and a second fork keeps it.
        unused.renewal.mark_used()
        unused.renewal.flight(lambda: unused.renewal.replace("first use"))
        assert unused.lease_id == unused.issued[1]
        fork_and_report(lambda: {})
        assert unused.renewal.used and unused.renewal.current is not None and unused.released == [unused_id]
    finally:
        for lease in (unused, used):
            lease.renewal.close(revoke=False)


@pytest.mark.parametrize("lease_used", [False, True])
def test_a_token_is_released_after_the_lease_obtained_with_it_and_kept_while_that_lease_is_used(
    only_new_spines: None, lease_used: bool
) -> None:
    revocations: list[str] = []
    token = acquired(FakeClock(), background=True, revocations=revocations)
    lease = acquired(FakeClock(), background=True, depends_on=token, revocations=revocations)
    token_id, lease_id = token.lease_id, lease.lease_id
    if lease_used:
        lease.renewal.mark_used()  # a database connection: it needs the token too
    fork_and_report(lambda: {})
    try:
        if lease_used:
            assert token.renewal.used
            # Something unused made now is released after the next fork: once it is, that fork was handled.
            other = acquired(FakeClock(), background=True, revocations=revocations)
            fork_and_report(lambda: {})
            wait_for(lambda: other.released != [], timeout=10)
            assert revocations == [other.issued[0]]
            assert token.lease_id == token_id and lease.lease_id == lease_id
        else:
            wait_for(lambda: len(revocations) == 2, timeout=10)
            assert revocations == [lease_id, token_id]  # the lease first, while the token still works
            assert token.renewal.current is None and lease.renewal.current is None
    finally:
        for spine in renewal_module.live():
            spine.close(revoke=False)


def test_something_due_at_a_known_time_is_replaced_then_whatever_its_ttl() -> None:
    clock = FakeClock()
    lease = FakeLease(clock)
    lease.renewal.flight(lambda: lease.renewal.install(Term(ttl=None, replaceable=True, due=7.0)))
    assert lease.renewal.step() == pytest.approx(7)
    assert lease.renewal.expires_in() is None  # no expiry: it is valid until it changes
    clock.advance(7)
    lease.renewal.step()
    assert lease.reasons == ["it is near the end of its TTL"] and lease.renewals == 0


def test_replace_soon_replaces_from_the_background_with_its_reason() -> None:
    clock = FakeClock()
    lease = acquired(clock)
    lease.renewal.replace_soon("the token it was obtained with was replaced")
    assert lease.renewal.step() == pytest.approx(20)  # done at once; the new one is scheduled
    assert len(lease.issued) == 2 and lease.reasons[-1] == "the token it was obtained with was replaced"
    given = FakeLease(clock)
    given.renewal.install(Term(ttl=60, renewable=True))  # not replaceable: nothing to do
    given.renewal.replace_soon("ignored")
    assert given.renewal.current is not None and given.renewal.current.action == "renew"


def test_at_exit_the_newest_spine_is_closed_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import weakref

    from flask_vault.auth import renewal as spine

    clock = FakeClock()
    token, lease = acquired(clock), acquired(clock)  # a lease is made after the token it needs
    closed: list[str] = []
    token.revoke = lambda timeout: closed.append("token")  # type: ignore[method-assign]
    lease.revoke = lambda timeout: closed.append("lease")  # type: ignore[method-assign]
    only_these: weakref.WeakSet[Any] = weakref.WeakSet([lease.renewal, token.renewal])
    monkeypatch.setattr(spine, "_LIVE", only_these)  # the exit handler, on these two spines only
    assert spine.live() == [token.renewal, lease.renewal]  # oldest first: the order forks take
    spine._close_all_at_exit()
    assert closed == ["lease", "token"]  # the lease is revoked while the token still works


def test_every_spine_of_a_process_is_served_by_one_background_thread() -> None:
    leases = [FakeLease(FakeClock(), ttl=0.3, background=True) for _ in range(3)]
    for lease in leases:
        lease.renewal.clock = time.monotonic  # real time: the background thread sleeps for real
        lease.renewal.flight(lambda lease=lease: lease.renewal.replace("first use"))
    try:
        wait_for(lambda: all(lease.renewals >= 2 for lease in leases), timeout=10)
        threads = {lease.renewal.thread for lease in leases}
        assert len(threads) == 1
        (thread,) = threads
        assert thread is not None and thread.daemon and thread.name == "flask-vault-renewal"
        assert [t for t in threading.enumerate() if t.name == "flask-vault-renewal"] == [thread]
        assert all(len(lease.issued) == 1 for lease in leases)  # renewed, never replaced: none was late
    finally:
        for lease in leases:
            lease.renewal.close(revoke=False)
    assert all(lease.renewal.thread is None for lease in leases)


SPINE_IN_A_FRESH_PROCESS = """
import json, threading, time
from flask_vault.auth.renewal import Renewal, Term

class RenewedOnce:
    renewals = 0
    def renew(self):
        self.renewals += 1
        return Term(ttl=0, renewable=False)  # never expires from now on: nothing more to schedule
    def replace(self, reason): return None
    def revoke(self, timeout): pass
    def drop(self): pass
    def after_fork(self): pass
    def report(self, event, **details): pass

def background_threads():
    return [t for t in threading.enumerate() if t.name == "flask-vault-renewal"]

def until(predicate):
    deadline = time.monotonic() + 10
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()

report = {"before": len(background_threads())}
threads = set()
for round in ("first", "again"):
    subject = RenewedOnce()
    spine = Renewal(subject, name="fresh")
    spine.install(Term(ttl=0.3, renewable=True))
    spine.ensure_thread()
    threads.add(spine.thread)
    report[round + "_renewed"] = until(lambda: subject.renewals == 1)
    report[round + "_let_go"] = until(lambda: spine.thread is None)
report["threads"] = len(threads)
report["idle_threads_left"] = len(background_threads())
print(json.dumps(report))
"""


def test_the_background_thread_lets_a_spine_go_when_it_has_nothing_scheduled_and_serves_the_next_one() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SPINE_IN_A_FRESH_PROCESS], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "before": 0,
        "first_renewed": True,
        "first_let_go": True,
        "again_renewed": True,
        "again_let_go": True,
        "threads": 1,
        "idle_threads_left": 1,
    }
