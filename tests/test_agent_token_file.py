"""An OpenBao Agent's token sink (``VAULT_TOKEN_FILE``) whose token is revoked from outside.

The Agent (AppRole auto-auth, ``token_ttl=12s``) notices the revocation at its next
renewal, a few seconds later, logs in again and writes a new token to the sink. Until
then the file holds a token Vault refuses: the app under ``gunicorn -w 2`` (cache TTL 1 s,
so it keeps asking Vault) must serve every request from what it has, and ``/health/vault``
must say the token is being replaced (``warn``), never ``fail``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import hvac
import pytest
import requests
from auth_support import (
    APP_POLICY,
    ENVIRONMENT,
    FLASK_SECRET,
    PREFIX,
    auth_server,
    make_approle,
    root,
)
from core_support import FakeClock, app_process_env, poll, wait_until_answering
from flask import Flask

from flask_vault import FlaskVault, VaultClient
from flask_vault.auth.keeper import FILE_CHECK_INTERVAL, TOKEN_FILE_SLACK
from flask_vault.devserver import OpenBaoServer, find_bao, free_port_pair, stop_process
from flask_vault.state import get_state

__all__ = ["auth_server", "root"]  # fixtures used by name

REPO = Path(__file__).resolve().parent.parent


def start_agent(server: OpenBaoServer, root: hvac.Client, directory: Path) -> tuple[subprocess.Popen[bytes], Path]:
    role = make_approle(root, token_ttl="12s", token_max_ttl="1h", token_policies=[APP_POLICY])
    (directory / "role_id").write_text(role.role_id)
    (directory / "secret_id").write_text(role.secret_id)
    sink = directory / "sink"
    (directory / "agent.hcl").write_text(
        f"""
vault {{ address = "{server.url}" }}
auto_auth {{
  method "approle" {{
    config = {{
      role_id_file_path = "{directory / "role_id"}"
      secret_id_file_path = "{directory / "secret_id"}"
      remove_secret_id_file_after_reading = false
    }}
  }}
  sink "file" {{ config = {{ path = "{sink}" }} }}
}}
"""
    )
    with open(directory / "agent.log", "wb") as log:
        agent = subprocess.Popen(
            [find_bao(), "agent", f"-config={directory / 'agent.hcl'}"], env=app_process_env(directory),
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    poll(lambda: sink.exists() and sink.read_text().strip(), timeout=30)
    return agent, sink


@pytest.mark.slow
def test_revoking_the_agents_token_fails_no_request_and_health_never_says_fail(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> None:
    agent, sink = start_agent(auth_server, root, tmp_path)
    port = free_port_pair()
    base = f"http://127.0.0.1:{port}"
    env = app_process_env(
        tmp_path,
        VAULT_ADDR=auth_server.url,
        VAULT_TOKEN_FILE=str(sink),
        VAULT_ENVIRONMENT=ENVIRONMENT,
        VAULT_CACHE_TTL="1",
        VAULT_HEALTH_CACHE_SECONDS="0",
        VAULT_HEALTH_DETAILS="true",
        ROTATION_INSTANCE=str(tmp_path / "instance"),
    )
    command = [
        sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
        "--error-logfile", str(tmp_path / "error.log"), "tests.rotation_app:create_app()",
    ]  # fmt: skip
    with open(tmp_path / "stdout.log", "wb") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    try:
        wait_until_answering(
            server, f"{base}/health/vault", tmp_path / "error.log", lambda r: r.json()["status"] == "pass", interval=0.2
        )
        # Both workers up (one request each, new connections spread them), so none boots in the gap.
        poll(lambda: len({requests.get(f"{base}/pid", timeout=5).text for _ in range(20)}) == 2, timeout=30)
        login = requests.post(f"{base}/login", timeout=10)
        cookie, token = login.cookies["session"], login.json()["token"]
        revoked = sink.read_text().strip()
        root.auth.token.revoke_accessor(root.auth.token.lookup(revoked)["data"]["accessor"])
        revoked_at = time.monotonic()
        replaced_at: float | None = None
        while replaced_at is None or time.monotonic() - replaced_at < 4:
            assert time.monotonic() - revoked_at < 60, "the Agent did not replace its token"
            if replaced_at is None and sink.read_text().strip() not in ("", revoked):
                replaced_at = time.monotonic()
            headers = {"Connection": "close"}
            for path, extra in (
                ("/session", {"Cookie": f"session={cookie}"}),
                ("/jwt", {"Authorization": f"Bearer {token}"}),
                ("/health/vault", {}),
            ):
                try:
                    response = requests.get(f"{base}{path}", headers={**headers, **extra}, timeout=10)
                except requests.RequestException as exc:
                    failures.append(f"{path}: {type(exc).__name__}")
                    continue
                if path == "/health/vault":
                    body = response.json()
                    statuses[body["status"]] += 1
                    if body["status"] == "fail":
                        failures.append(f"health fail: {body.get('output')}")
                elif response.status_code != 200:
                    failures.append(f"{path}: HTTP {response.status_code}")
            time.sleep(0.1)
        final = requests.get(f"{base}/health/vault", timeout=10).json()
    finally:
        stop_process(server, timeout=20)  # SIGTERM, then SIGKILL
        stop_process(agent)
    gap = replaced_at - revoked_at
    print(f"\nagent replaced the revoked token after {gap:.1f}s; health statuses: {dict(statuses)}")
    assert failures == []
    assert gap > 1 and statuses["warn"] >= 1  # the gap was seen, and called warn
    assert final["status"] == "pass"
    new_token = sink.read_text().strip()
    logs = (tmp_path / "error.log").read_text() + (tmp_path / "stdout.log").read_text()
    assert revoked not in logs and new_token not in logs
    # The token the app moved to is the Agent's new one, and it reads the app's secrets.
    assert VaultClient(auth_server.url, new_token, ENVIRONMENT, path_prefix=PREFIX).read("flask").version == 1


def test_a_refused_token_file_is_warn_while_it_may_still_be_replaced_then_fail(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> None:
    sink = tmp_path / "sink"
    first = root.auth.token.create(policies=[APP_POLICY], ttl="60s")["auth"]["client_token"]
    sink.write_text(first)
    app = Flask("token_file_health")
    app.config.update(
        TESTING=True,
        VAULT_URL=auth_server.url,
        VAULT_TOKEN_FILE=str(sink),
        VAULT_PATH_PREFIX=PREFIX,
        VAULT_ENVIRONMENT=ENVIRONMENT,
        VAULT_HEALTH_CACHE_SECONDS=0,
        VAULT_HEALTH_DETAILS=True,
        VAULT_STARTUP_TIMEOUT=0,
    )
    FlaskVault(app)
    keeper = get_state(app).client.keeper
    clock = FakeClock()
    keeper.clock = clock
    web = app.test_client()
    assert web.get("/health/vault").get_json()["status"] == "pass"

    root.auth.token.revoke(first)
    body = web.get("/health/vault").get_json()
    [login] = body["checks"]["vault:login"]
    assert (body["status"], login["status"]) == ("warn", "warn")
    assert "waiting for the Agent to write a new one" in login["output"]
    assert body["checks"]["vault:secrets"][0]["status"] == "pass"  # the cached secrets are still served
    clock.advance(60 + TOKEN_FILE_SLACK - 1)  # still within the token's TTL and the slack
    assert web.get("/health/vault").get_json()["status"] == "warn"
    clock.advance(2)
    body = web.get("/health/vault").get_json()
    assert body["status"] == "fail" and "refused" in body["output"]

    second = root.auth.token.create(policies=[APP_POLICY], ttl="60s")["auth"]["client_token"]
    sink.write_text(second)  # the Agent is back
    clock.advance(FILE_CHECK_INTERVAL)
    assert web.get("/health/vault").get_json()["status"] == "pass"
    assert keeper.status()["token_file_refused_for"] is None


def test_an_app_starting_while_its_agent_replaces_a_refused_token_waits_for_the_new_one(
    auth_server: OpenBaoServer, root: hvac.Client, tmp_path: Path
) -> None:
    sink = tmp_path / "sink"
    revoked = root.auth.token.create(policies=[APP_POLICY], ttl="60s")["auth"]["client_token"]
    root.auth.token.revoke(revoked)
    sink.write_text(revoked)
    refused = threading.Event()

    class OnRefusal(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "waiting for the Agent" in record.getMessage():
                refused.set()

    def agent() -> None:  # writes a new token once the app has found the old one refused
        if refused.wait(10):
            sink.write_text(root.auth.token.create(policies=[APP_POLICY], ttl="60s")["auth"]["client_token"])

    handler = OnRefusal()
    logging.getLogger("flask_vault.auth.keeper").addHandler(handler)
    writer = threading.Thread(target=agent)
    writer.start()
    try:
        app = Flask("starts_in_the_gap")
        app.config.update(
            VAULT_URL=auth_server.url,
            VAULT_TOKEN_FILE=str(sink),
            VAULT_PATH_PREFIX=PREFIX,
            VAULT_ENVIRONMENT=ENVIRONMENT,
            VAULT_HEALTH_URL=None,
        )
        FlaskVault(app)
    finally:
        writer.join(15)
        logging.getLogger("flask_vault.auth.keeper").removeHandler(handler)
    assert refused.is_set()
    assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
