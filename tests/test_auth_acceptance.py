"""Acceptance of the auth issue with real processes and short-lived AppRole tokens
(token_ttl=2s, token_max_ttl=6s):

* an app reading an uncached secret every 200 ms for 20 s, its token revoked from outside
  half-way, sees no failure; its own log shows renewals and logins and no token;
* ``gunicorn --preload -w 3`` on the example app for longer than the max TTL: every worker
  accepts the session cookie signed by the others with the Vault SECRET_KEY, and no
  request fails.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from auth_support import (
    APP_POLICY,
    FLASK_SECRET,
    PREFIX,
    LogCapture,
    app_policy,
    assert_no_leak,
    auth_server,
    flask_vault_logs,
    make_approle,
    root,
    token_accessors_of_role,
    uncached_secret_app,
    unique,
    wait_for,
)
from core_support import app_process_env
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from flask_vault import VaultClient
from flask_vault.devserver import OpenBaoServer, free_port_pair, stop_process

__all__ = ["auth_server", "flask_vault_logs", "root"]  # fixtures used by name

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_20s_of_uncached_reads_with_2s_tokens_never_fail_and_the_log_shows_renewals_and_logins(
    auth_server: OpenBaoServer, root: hvac.Client, flask_vault_logs: LogCapture
) -> None:
    role = make_approle(root, token_ttl="2s", token_max_ttl="6s")
    app = uncached_secret_app("keeper_20s", role, auth_server)
    client: VaultClient = app.extensions["vault"].client
    http = app.test_client()
    tokens: set[str] = set()
    failures: list[str] = []
    reads = 0
    revoked_at_read: int | None = None
    started = time.monotonic()
    next_read = started
    while time.monotonic() - started < 20:
        if revoked_at_read is None and time.monotonic() - started >= 10:
            for accessor in token_accessors_of_role(root, role.name):
                root.auth.token.revoke_accessor(accessor)  # an operator pulls the app's token
            revoked_at_read = reads
        try:
            response = http.get("/secret")
            if response.status_code != 200 or response.get_data(as_text=True) != FLASK_SECRET["secret_key"]:
                failures.append(f"read {reads}: HTTP {response.status_code}")
        except Exception as exc:
            failures.append(f"read {reads}: {type(exc).__name__}: {exc}")
        reads += 1
        if client.token:
            tokens.add(client.token)
        next_read += 0.2
        time.sleep(max(0.0, next_read - time.monotonic()))
    stats = client.keeper.stats
    login_records = flask_vault_logs.audit("login")
    renew_records = flask_vault_logs.audit("renew")
    keeper_lines = flask_vault_logs.messages("flask_vault.auth.keeper")
    print(
        f"\n20s run: reads={reads} failures={len(failures)} logins={stats.logins} renewals={stats.renewals} "
        f"recoveries={stats.recoveries} renewal_failures={stats.renewal_failures} tokens={len(tokens)} "
        f"audit login={len(login_records)} renew={len(renew_records)}"
    )
    assert failures == []
    assert reads >= 90
    assert revoked_at_read is not None
    assert stats.logins >= 3
    assert len(login_records) == stats.logins
    assert len(renew_records) >= 3
    assert any(line.startswith("Logged in to Vault with approle") for line in keeper_lines)
    assert any("max TTL" in line or "refused to renew" in line for line in keeper_lines)
    for record in login_records + renew_records:
        assert re.fullmatch(r"[0-9a-f]{12}", record.vault["token_id"])  # type: ignore[attr-defined]
    assert_no_leak(flask_vault_logs.text(), [*tokens, role.secret_id, role.role_id])


def _example_env(server: OpenBaoServer, root: hvac.Client, tmp_path: Path) -> tuple[dict[str, str], Any]:
    """A fresh environment with the example's secrets (SQLite in tmp) and an AppRole for it."""
    environment = unique("gunicorn")
    root.secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{environment}/flask", {"secret_key": "gunicorn-" + unique("key"), "jwt_secret": unique("jwt")}
    )
    root.secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{environment}/database", {"url": f"sqlite:///{tmp_path / 'store.db'}"}
    )
    policy = f"{APP_POLICY}-{environment}"
    root.sys.create_or_update_policy(policy, app_policy(environment))
    role = make_approle(root, token_ttl="2s", token_max_ttl="6s", token_policies=[policy])
    env = app_process_env(
        tmp_path,
        VAULT_ADDR=server.url,
        VAULT_ROLE_ID=role.role_id,
        VAULT_SECRET_ID=role.secret_id,
        VAULT_ENVIRONMENT=environment,
        VAULT_HEALTH_CACHE_SECONDS="0",
        VAULT_STARTUP_TIMEOUT="5",
    )
    return env, role


@pytest.mark.slow
def test_gunicorn_preload_workers_share_the_session_key_past_the_token_max_ttl_with_no_failed_request(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> None:
    env, role = _example_env(auth_server, root, tmp_path)
    secret_key = root.secrets.kv.v2.read_secret_version(
        f"{PREFIX}/{env['VAULT_ENVIRONMENT']}/flask", raise_on_deleted_version=True
    )["data"]["data"]["secret_key"]
    port = free_port_pair()
    base = f"http://127.0.0.1:{port}"
    access_log, error_log = tmp_path / "access.log", tmp_path / "error.log"
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "-w", "3", "-b", f"127.0.0.1:{port}",
        "--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s %(U)s",
        "--error-logfile", str(error_log), "--graceful-timeout", "10", "example_app:create_app()",
    ]  # fmt: skip
    with open(tmp_path / "stdout.log", "wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def ready() -> bool:
            assert process.poll() is None, error_log.read_text()
            try:
                return requests.get(f"{base}/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(ready, 30, "gunicorn did not answer", interval=0.1)
        cookie: str | None = None
        visits = 0
        failures: list[str] = []
        health_codes: dict[int, int] = {}
        started = time.monotonic()
        requests_sent = 0
        while time.monotonic() - started < 9.0:  # > token_max_ttl (6 s)
            # A new connection per request, so the kernel spreads them over the workers.
            headers = {"Connection": "close"} | ({"Cookie": f"session={cookie}"} if cookie else {})
            try:
                response = requests.get(f"{base}/visits", headers=headers, timeout=5)
                requests_sent += 1
                body = response.json() if response.status_code == 200 else {}
                if body.get("visits") != visits + 1:
                    failures.append(f"HTTP {response.status_code} visits={body.get('visits')} expected {visits + 1}")
                else:
                    visits += 1
                    cookie = response.cookies.get("session") or cookie
                if requests_sent % 5 == 0:
                    health = requests.get(f"{base}/health/vault", headers={"Connection": "close"}, timeout=5)
                    requests_sent += 1
                    health_codes[health.status_code] = health_codes.get(health.status_code, 0) + 1
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
            time.sleep(0.02)
        elapsed = time.monotonic() - started
        live_tokens = len(token_accessors_of_role(root, role.name))
    finally:
        stop_process(process, timeout=20)  # SIGTERM, then SIGKILL
    lines = access_log.read_text().splitlines()
    visit_pids: dict[str, int] = {}
    for line in lines:
        pid, _status, path = line.split()
        if path == "/visits":
            visit_pids[pid] = visit_pids.get(pid, 0) + 1
    print(
        f"\ngunicorn run: {elapsed:.1f}s, {requests_sent} requests, visits={visits}, failures={len(failures)}, "
        f"per worker={sorted(visit_pids.values())}, health={health_codes}, live tokens of the role={live_tokens}"
    )
    assert failures == []
    assert elapsed > 6
    assert len(visit_pids) == 3, "every worker should have answered"
    assert all(count >= 5 for count in visit_pids.values())
    assert set(health_codes) == {200}
    assert live_tokens >= 3  # each worker logged in for itself (the arbiter revoked its own once it forked)
    # The cookie every worker accepted is signed with the SECRET_KEY stored in Vault.
    checker = Flask("cookie_check")
    checker.secret_key = secret_key
    serializer = SecureCookieSessionInterface().get_signing_serializer(checker)
    assert serializer is not None and cookie is not None
    assert serializer.loads(cookie)["visits"] == visits
    output = error_log.read_text() + (tmp_path / "stdout.log").read_text()
    assert_no_leak(output, [role.secret_id, role.role_id, secret_key])
    # Revoke-on-exit: the processes revoked their tokens as they stopped; only ones already
    # replaced and about to expire can remain, and those are gone within the max TTL.
    wait_for(lambda: not token_accessors_of_role(root, role.name), 8, "tokens left behind after exit", interval=0.5)
