"""The token keeper: renewal timing and re-login rules (injectable clock, requests_mock),
then single-flight logins, 403 recovery, revoke-on-exit and fork safety against a real
OpenBao server and real processes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests
import requests_mock as rm
from auth_support import (
    FLASK_SECRET,
    LogCapture,
    assert_no_leak,
    auth_server,
    flask_vault_logs,
    make_approle,
    root,
    token_accessors_of_role,
    uncached_secret_app,
    wait_for,
)
from core_support import FakeClock

from flask_vault import VaultClient, VaultPermissionError, VaultSettings
from flask_vault.auth.keeper import LOOKUP_SPREAD, TokenKeeper
from flask_vault.auth.methods import authenticator_from_settings
from flask_vault.devserver import OpenBaoServer
from flask_vault.vault.transport import Transport

__all__ = ["auth_server", "flask_vault_logs", "root"]  # fixtures used by name

MOCK_URL = "http://vault.test:8200"
LOGIN_URL = f"{MOCK_URL}/v1/auth/approle/login"
RENEW_URL = f"{MOCK_URL}/v1/auth/token/renew-self"
LOOKUP_URL = f"{MOCK_URL}/v1/auth/token/lookup-self"
REVOKE_URL = f"{MOCK_URL}/v1/auth/token/revoke-self"
TOKENS = [f"s.mock-token-{n}" for n in range(1, 6)]


def auth_answer(token: str, ttl: int = 30, renewable: bool = True) -> dict[str, Any]:
    return {
        "auth": {
            "client_token": token,
            "accessor": f"accessor-of-{token}",
            "lease_duration": ttl,
            "renewable": renewable,
            "policies": ["default", "app"],
        }
    }


def mocked_keeper(clock: FakeClock, *, jitter: float = 0.0, **config: Any) -> tuple[Transport, TokenKeeper]:
    """A transport and the keeper of its token, on ``clock`` with no background thread."""
    config = {
        "VAULT_URL": MOCK_URL,
        "VAULT_ROLE_ID": "role-id-1",
        "VAULT_SECRET_ID": "secret-id-1",
        "VAULT_MAX_RETRIES": 0,
        **config,
    }
    settings = VaultSettings.load(config, {})
    transport = Transport(settings)
    keeper = TokenKeeper(transport, authenticator_from_settings(settings), clock=clock, jitter=jitter, background=False)
    return transport, keeper


def logins(mocked: rm.Mocker) -> int:
    return sum(1 for r in mocked.request_history if r.url == LOGIN_URL)


# -- timing and re-login rules (fake clock) -------------------------------------------------


def test_renewal_is_due_at_about_two_thirds_of_the_ttl_minus_jitter() -> None:
    clock = FakeClock()
    delays = []
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, json=auth_answer(TOKENS[0], ttl=30))
        for _ in range(20):
            _, keeper = mocked_keeper(clock, jitter=0.1)
            keeper.start()
            delay = keeper.step()
            assert delay is not None
            delays.append(delay)
    assert all(18.0 <= d <= 20.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 1  # jitter spreads processes started together


def test_token_is_renewed_when_due_and_renewal_is_rescheduled() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, json=auth_answer(TOKENS[0], ttl=30))
        renew = mocked.post(RENEW_URL, json=auth_answer(TOKENS[0], ttl=30))
        client, keeper = mocked_keeper(clock)
        keeper.start()
        assert keeper.step() == pytest.approx(20)
        clock.advance(19.9)
        keeper.step()
        assert renew.call_count == 0
        clock.advance(0.1)
        assert keeper.step() == pytest.approx(20)
        assert renew.call_count == 1
        assert renew.last_request.headers["X-Vault-Token"] == TOKENS[0]
        assert keeper.stats.renewals == 1
        assert logins(mocked) == 1
        assert client.token == TOKENS[0]


def test_logs_in_again_when_a_renewal_no_longer_extends_the_token() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, [{"json": auth_answer(TOKENS[0])}, {"json": auth_answer(TOKENS[1])}])
        mocked.post(RENEW_URL, json=auth_answer(TOKENS[0], ttl=7))  # capped by the max TTL
        client, keeper = mocked_keeper(clock)
        keeper.start()
        clock.advance(20)
        keeper.step()
        assert logins(mocked) == 2
        assert client.token == TOKENS[1]
        assert keeper.stats.as_dict()["logins"] == 2


def test_new_token_listeners_hear_of_each_new_token_but_not_of_a_renewal() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, [{"json": auth_answer(TOKENS[0])}, {"json": auth_answer(TOKENS[1])}])
        mocked.post(RENEW_URL, [{"json": auth_answer(TOKENS[0], ttl=30)}, {"json": auth_answer(TOKENS[0], ttl=7)}])
        transport, keeper = mocked_keeper(clock)
        heard: list[str | None] = []

        def broken() -> None:
            raise RuntimeError("a listener that fails")

        keeper.on_new_token(broken)  # must not break a login
        keeper.on_new_token(lambda: heard.append(transport.token))
        keeper.start()  # a login
        clock.advance(20)
        keeper.step()  # a renewal: the same token
        clock.advance(20)
        keeper.step()  # capped: a login
        keeper.use_token(TOKENS[2])  # given as is
    assert heard == [TOKENS[0], TOKENS[1], TOKENS[2]]


@pytest.mark.parametrize(
    ("status", "errors"),
    [(403, ["permission denied"]), (400, ["lease is not renewable"]), (500, ["past the max TTL, cannot renew"])],
)
def test_logs_in_again_when_renewal_is_refused(status: int, errors: list[str]) -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, [{"json": auth_answer(TOKENS[0])}, {"json": auth_answer(TOKENS[1])}])
        mocked.post(RENEW_URL, status_code=status, json={"errors": errors})
        client, keeper = mocked_keeper(clock)
        keeper.start()
        clock.advance(20)
        keeper.step()
        assert client.token == TOKENS[1]
        assert keeper.stats.renewal_failures == 1


def test_renewal_while_vault_is_unreachable_is_retried_soon_then_a_login_after_expiry() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, [{"json": auth_answer(TOKENS[0])}, {"json": auth_answer(TOKENS[1])}])
        mocked.post(RENEW_URL, exc=requests.ConnectionError)
        client, keeper = mocked_keeper(clock)
        keeper.start()
        clock.advance(20)
        delay = keeper.step()
        assert delay is not None and 0.5 <= delay <= 5
        assert logins(mocked) == 1  # Vault could not be asked: keep the token, try again
        clock.advance(11)  # past the token's expiry
        keeper.step()
        delay = keeper.step()
        clock.advance(delay or 0)
        keeper.step()
        assert client.token == TOKENS[1]


def test_non_renewable_login_token_is_replaced_before_it_expires() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, [{"json": auth_answer(t, renewable=False)} for t in TOKENS[:2]])
        renew = mocked.post(RENEW_URL, json={})
        client, keeper = mocked_keeper(clock)
        keeper.start()
        clock.advance(20)
        keeper.step()
        assert renew.call_count == 0
        assert client.token == TOKENS[1]


def test_failed_background_login_backs_off_and_then_recovers() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(
            LOGIN_URL,
            [
                {"json": auth_answer(TOKENS[0], renewable=False)},
                {"exc": requests.ConnectionError},
                {"exc": requests.ConnectionError},
                {"json": auth_answer(TOKENS[1], renewable=False)},
            ],
        )
        client, keeper = mocked_keeper(clock)
        keeper.start()
        clock.advance(20)
        first = keeper.step()
        clock.advance(first or 0)
        second = keeper.step()
        assert first is not None and second is not None and 0.25 <= first <= 0.5 and 0.5 <= second <= 1.0
        clock.advance(second)
        keeper.step()
        assert client.token == TOKENS[1]
        assert keeper.stats.login_failures == 2


def test_static_token_that_cannot_be_renewed_is_warned_about_once_before_it_expires(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    token = "s.static-app-token"
    with rm.Mocker() as mocked:
        mocked.get(LOOKUP_URL, json={"data": {"ttl": 60, "creation_ttl": 60, "renewable": False, "policies": ["app"]}})
        client, keeper = mocked_keeper(clock, VAULT_TOKEN=token, VAULT_ROLE_ID=None, VAULT_SECRET_ID=None)
        keeper.start()
        assert mocked.call_count == 0  # a token given as is costs nothing at start-up
        assert keeper.step() <= LOOKUP_SPREAD  # its lookup is due in the background, spread over a second
        clock.advance(LOOKUP_SPREAD)
        assert keeper.step() == pytest.approx(40)
        assert mocked.call_count == 1
        with caplog.at_level(logging.WARNING, logger="flask_vault.auth.keeper"):
            clock.advance(40)
            assert keeper.step() is None
            clock.advance(10)
            assert keeper.step() is None
        warnings = [r for r in caplog.records if r.name == "flask_vault.auth.keeper" and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "cannot be renewed and expires in 20" in warnings[0].getMessage()
        assert token not in caplog.text
        assert client.token == token


def test_the_background_lookup_of_a_given_token_backs_off_while_vault_is_unreachable() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        lookup = mocked.get(LOOKUP_URL, exc=requests.exceptions.ConnectionError)
        _, keeper = mocked_keeper(clock, VAULT_TOKEN="s.given", VAULT_ROLE_ID=None, VAULT_SECRET_ID=None)
        keeper.start()
        clock.advance(LOOKUP_SPREAD)
        waits = []
        for _ in range(3):
            wait = keeper.step()
            assert wait is not None
            waits.append(wait)
            clock.advance(wait)
        assert lookup.call_count == 3
        assert 2.5 <= waits[0] <= 5 and 5 <= waits[1] <= 10 and 10 <= waits[2] <= 20
        mocked.get(LOOKUP_URL, json={"data": {"ttl": 60, "creation_ttl": 60, "renewable": True, "policies": ["app"]}})
        assert keeper.step() == pytest.approx(40)  # learned: the renewal is scheduled
        assert keeper.status()["token_ttl"] == 60


def test_static_renewable_token_is_renewed_but_not_revoked_at_exit() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.get(LOOKUP_URL, json={"data": {"ttl": 60, "creation_ttl": 60, "renewable": True, "policies": ["app"]}})
        renew = mocked.post(RENEW_URL, json=auth_answer("s.given", ttl=60))
        revoke = mocked.post(REVOKE_URL, status_code=204)
        _, keeper = mocked_keeper(clock, VAULT_TOKEN="s.given", VAULT_ROLE_ID=None, VAULT_SECRET_ID=None)
        keeper.start()
        clock.advance(LOOKUP_SPREAD)
        keeper.step()  # the background lookup learns the TTL
        clock.advance(40)
        keeper.step()
        assert renew.call_count == 1
        keeper.close()
        assert revoke.call_count == 0


@pytest.mark.parametrize(("setting", "revoked"), [(None, True), (True, True), (False, False)])
def test_close_revokes_the_token_it_logged_in_for_unless_told_not_to(setting: bool | None, revoked: bool) -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, json=auth_answer(TOKENS[0]))
        revoke = mocked.post(REVOKE_URL, status_code=204)
        extra = {} if setting is None else {"VAULT_REVOKE_ON_EXIT": setting}
        client, keeper = mocked_keeper(clock, **extra)
        keeper.start()
        keeper.close()
        assert revoke.call_count == (1 if revoked else 0)
        if revoked:
            assert revoke.last_request.headers["X-Vault-Token"] == TOKENS[0]
        assert client.token is None


def test_status_shows_method_ttl_left_renewable_and_policies_but_no_token() -> None:
    clock = FakeClock()
    with rm.Mocker() as mocked:
        mocked.post(LOGIN_URL, json=auth_answer(TOKENS[0], ttl=30))
        _, keeper = mocked_keeper(clock)
        keeper.start()
        clock.advance(12)
        status = keeper.status()
    assert status["auth_method"] == "approle"
    assert status["token_ttl"] == 18
    assert status["renewable"] is True
    assert status["policies"] == ["app", "default"]
    text = json.dumps(status) + repr(keeper)
    assert_no_leak(text, [TOKENS[0], f"accessor-of-{TOKENS[0]}", "secret-id-1", "role-id-1"])


# -- real server: single flight and 403 recovery ---------------------------------------------


def approle_client(server: OpenBaoServer, root: hvac.Client, **role: Any) -> VaultClient:
    role_ = make_approle(root, **{"token_ttl": "60s", **role})
    config = role_.config(server, VAULT_MAX_RETRIES=1)
    return VaultClient(settings=VaultSettings.load(config, {}))


def read_in_threads(client: VaultClient, count: int) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def read(i: int) -> None:
        barrier.wait(timeout=10)
        try:
            results[i] = client.get_secret("flask", "secret_key", use_cache=False)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=read, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_threads_needing_a_token_at_once_share_one_login(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    client = approle_client(auth_server, root)
    results = read_in_threads(client, 12)
    assert results == [FLASK_SECRET["secret_key"]] * 12
    assert client.keeper.stats.logins == 1
    assert len(flask_vault_logs.audit("login")) == 1


def test_token_revoked_from_outside_is_replaced_once_for_all_threads_and_every_read_succeeds(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    client = approle_client(auth_server, root)
    client.get_secret("flask")
    old_token = client.token
    root.auth.token.revoke(old_token)
    results = read_in_threads(client, 12)
    assert results == [FLASK_SECRET["secret_key"]] * 12
    assert client.keeper.stats.logins == 2
    assert client.keeper.stats.recoveries == 1
    assert client.token != old_token
    assert_no_leak(flask_vault_logs.text(), [old_token, client.token or "?"])


def test_operator_revoking_the_apps_token_by_accessor_mid_run_does_not_fail_the_next_read(
    auth_server: OpenBaoServer, root: hvac.Client
) -> None:
    role = make_approle(root, token_ttl="60s")
    app = uncached_secret_app("revoked_mid_run", role, auth_server)
    http = app.test_client()
    assert http.get("/secret").status_code == 200
    (accessor,) = token_accessors_of_role(root, role.name)
    root.auth.token.revoke_accessor(accessor)  # `bao token revoke -accessor ...`
    response = http.get("/secret")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == FLASK_SECRET["secret_key"]
    assert app.extensions["vault"].client.keeper.stats.recoveries == 1


def test_a_real_permission_denial_is_not_retried_and_causes_no_login(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    client = approle_client(auth_server, root)
    client.get_secret("flask")
    with pytest.raises(VaultPermissionError):
        client.read_metadata("flask")  # the app policy allows data/ reads only
    assert client.keeper.stats.logins == 1
    assert client.keeper.stats.recoveries == 0
    assert len(flask_vault_logs.audit("metadata", "VaultPermissionError")) == 1
    assert len(flask_vault_logs.audit("lookup")) == 1  # one lookup-self told a real denial from an expiry


def test_keeper_work_runs_in_the_background_daemon_and_stops_cleanly(
    auth_server: OpenBaoServer, root: hvac.Client
) -> None:
    client = approle_client(auth_server, root)
    client.keeper.start()
    thread = client.keeper.renewal.thread
    assert thread is not None and thread.is_alive() and thread.daemon
    assert thread.name == "flask-vault-renewal"
    client.keeper.stop(timeout=5)
    assert client.keeper.renewal.thread is None  # no longer served, whatever else the thread serves


def test_static_root_token_is_looked_up_after_start_and_then_needs_no_thread(auth_server: OpenBaoServer) -> None:
    client = VaultClient(vault_url=auth_server.url, vault_token=auth_server.root_token)
    client.keeper.start()
    assert client.keeper.status()["token_ttl"] is None  # nothing was asked at start-up
    wait_for(lambda: client.keeper.status()["token_ttl"] == 0, 10, "the background lookup did not learn the TTL")
    # A token that never expires needs no keeping: the thread that looked it up ends.
    wait_for(lambda: client.keeper.renewal.thread is None, 10, "the keeper thread did not end")
    assert client.metrics.count("lookup", "ok") == 1


# -- real processes: revoke at exit, fork ------------------------------------------------------

PROCESS_PREAMBLE = """
import json, os, sys
from flask_vault import VaultClient
client = VaultClient()
client.get_secret("flask", "secret_key")
"""


def run_python(code: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")} | env
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=str(Path(__file__).parent.parent),
    )


def process_env(server: OpenBaoServer, role: Any, **extra: str) -> dict[str, str]:
    return {k: str(v) for k, v in role.config(server).items() if k.startswith("VAULT_")} | extra


def token_is_alive(root: hvac.Client, token: str) -> bool:
    try:
        root.auth.token.lookup(token)
    except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
        return False
    return True


@pytest.mark.parametrize(("setting", "alive_after"), [(None, False), ("false", True)])
def test_token_is_revoked_when_the_process_exits_unless_disabled(
    auth_server: OpenBaoServer, root: hvac.Client, setting: str | None, alive_after: bool
) -> None:
    role = make_approle(root, token_ttl="60s")
    extra = {} if setting is None else {"VAULT_REVOKE_ON_EXIT": setting}
    done = run_python(PROCESS_PREAMBLE + "print(client.token)\n", process_env(auth_server, role, **extra))
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert token
    assert token_is_alive(root, token) is alive_after


def test_forked_child_gets_its_own_session_token_and_keeper_thread(
    auth_server: OpenBaoServer, root: hvac.Client
) -> None:
    role = make_approle(root, token_ttl="60s")
    code = PROCESS_PREAMBLE + textwrap.dedent(
        """
        parent_token, parent_session = client.token, client.hvac.session
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            report = {"token_at_fork": client.token == parent_token}
            report["value"] = client.get_secret("flask", "secret_key", use_cache=False)
            report["own_token"] = bool(client.token) and client.token != parent_token
            report["own_session"] = client.hvac.session is not parent_session
            thread = client.keeper.renewal.thread
            report["keeper_thread"] = bool(thread and thread.is_alive() and thread.daemon)
            report["logins"] = client.keeper.stats.logins
            os.write(write_end, json.dumps(report).encode())
            os.close(write_end)
            sys.exit(0)  # atexit revokes the child's own token, never the parent's
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            child = json.loads(pipe.read() or "{}")
        _, status = os.waitpid(pid, 0)
        child["child_exit"] = os.waitstatus_to_exitcode(status)
        child["parent_still_reads"] = client.get_secret("flask", "secret_key", use_cache=False)
        child["parent_kept_token"] = client.token == parent_token
        print(json.dumps(child))
        """
    )
    done = run_python(code, process_env(auth_server, role))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "token_at_fork": False,
        "value": FLASK_SECRET["secret_key"],
        "own_token": True,
        "own_session": True,
        "keeper_thread": True,
        "logins": 1,
        "child_exit": 0,
        "parent_still_reads": FLASK_SECRET["secret_key"],
        "parent_kept_token": True,
    }


FORK_AFTER_INIT_APP = """
import json, os, time
from flask import Flask
from flask_vault import FlaskVault

app = Flask("forker")
FlaskVault(app)  # logs in with AppRole and reads the mapped secrets: start-up
client = app.extensions["vault"].client
token = client.token
if os.environ["READ_AFTER_START_UP"] == "1":
    client.get_secret("flask", "secret_key", use_cache=False)  # a use: the token is kept at the fork
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
handed_over = client.keeper.renewal._release_pending
deadline = time.monotonic() + 10
while os.environ["READ_AFTER_START_UP"] == "0" and client.keeper.renewal.current is not None:
    assert time.monotonic() < deadline, "the token was not released"
    time.sleep(0.02)
report = {"token": token, "handed_over": handed_over, "held_after_fork": client.token == token}
report["value"] = client.get_secret("flask", "secret_key", use_cache=False)  # the next use logs in if need be
report["token_now"] = client.token
print(json.dumps(report))
"""


@pytest.mark.parametrize("read_after_start_up", [False, True], ids=["unused", "used"])
def test_after_a_fork_a_token_unused_since_start_up_is_revoked_and_a_used_one_kept(
    auth_server: OpenBaoServer, root: hvac.Client, read_after_start_up: bool
) -> None:
    role = make_approle(root, token_ttl="60s")
    env = process_env(auth_server, role, READ_AFTER_START_UP="1" if read_after_start_up else "0")
    done = run_python(FORK_AFTER_INIT_APP, env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    first, now = report["token"], report["token_now"]
    assert report["value"] == FLASK_SECRET["secret_key"]
    if read_after_start_up:
        assert report["handed_over"] is False and report["held_after_fork"] and now == first
    else:  # revoked at Vault (not merely forgotten); the read after it logged in again
        assert not report["held_after_fork"] and now != first
        assert not token_is_alive(root, first)
