"""A preloading gunicorn master lets go of the lease and token it never uses.

``gunicorn --preload`` runs ``init_app`` in the master: it reads database credentials from a
role of the database secrets engine (a PostgreSQL user of its own) and, with AppRole, logs
in. Every worker drops those at fork and gets its own; the master serves no request and
opens no connection, so after its first fork it revokes both (``sys/leases/revoke``,
``revoke-self``) instead of renewing them for its whole life.

Counted from outside, with the session's OpenBao and the machine's PostgreSQL: live leases
of the role (``sys/leases/lookup`` with the root token), PostgreSQL users of the role
(``pg_roles``) and, with AppRole, live tokens of the login role: one per worker, not one
more for the master, while every request succeeds.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from auth_support import token_accessors_of_role
from core_support import assert_no_leak, poll, wait_until_answering
from dynamic_support import address_secret, child_environment, engine_password, make_role, pg_admin

from flask_vault.devserver import free_port_pair

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
__all__ = ["engine_password", "pg_admin"]  # fixtures

REPO = Path(__file__).resolve().parent.parent
PREFIX = "store-erp"
WORKERS = 3
#: Requests sent while counting (each on a new connection, so the kernel spreads them).
REQUESTS = 60


def live_leases(root: hvac.Client, role: str) -> list[str]:
    """Lease ids Vault holds for ``database/creds/<role>`` (listed with the root token)."""
    try:
        return list(root.adapter.list(f"/v1/sys/leases/lookup/database/creds/{role}/")["data"]["keys"])
    except hvac.exceptions.InvalidPath:  # none at all
        return []


def users_of_role(admin: Any, role: str) -> set[str]:
    """PostgreSQL users Vault made for ``role`` (its default username template holds the role's first 8 characters)."""
    rows = admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"v-%-{role[:8]}-%",)).fetchall()
    return {row[0] for row in rows}


def issued_by_pid(logs: str) -> dict[int, set[str]]:
    """pid -> the users each process got (flask_vault.db.lease's INFO lines)."""
    issued: dict[int, set[str]] = {}
    pattern = re.compile(r"^(\d+) flask_vault\.db\.lease INFO (?:Database credentials|Switched).*?: user (v-\S+?)[ ,]")
    for line in logs.splitlines():
        match = pattern.match(line)
        if match:
            issued.setdefault(int(match.group(1)), set()).add(match.group(2))
    return issued


@pytest.fixture(scope="module")
def approle_mount(vault_root: hvac.Client) -> Iterator[str]:
    mount = f"approle-preload-{uuid.uuid4().hex[:6]}"
    vault_root.sys.enable_auth_method("approle", path=mount)
    yield mount
    vault_root.sys.disable_auth_method(mount)


def approle_for(root: hvac.Client, mount: str, environment: str, role: str) -> dict[str, str]:
    """An AppRole whose tokens may read the app's secrets and the database role's credentials."""
    name = f"preload-{uuid.uuid4().hex[:8]}"
    policy = (
        f'path "secret/data/{PREFIX}/{environment}/*" {{ capabilities = ["read"] }}\n'
        f'path "database/creds/{role}" {{ capabilities = ["read"] }}\n'
        f'path "database/static-creds/{role}" {{ capabilities = ["read"] }}\n'
        'path "sys/leases/renew" { capabilities = ["update"] }\n'
        'path "sys/leases/revoke" { capabilities = ["update"] }\n'
    )
    root.sys.create_or_update_policy(name, policy)
    root.auth.approle.create_or_update_approle(
        name, mount_point=mount, token_policies=[name], token_ttl="5m", token_max_ttl="30m"
    )
    role_id = root.auth.approle.read_role_id(name, mount_point=mount)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(name, mount_point=mount)["data"]["secret_id"]
    return {"name": name, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id, "VAULT_APPROLE_MOUNT": mount}


@pytest.mark.parametrize("login", ["token", "approle"])
def test_a_preloading_master_releases_the_lease_and_token_it_never_used(
    base_config: dict[str, Any],
    vault_root: hvac.Client,
    unique_env: str,
    engine_password: str,
    pg_admin: Any,
    approle_mount: str,
    tmp_path: Path,
    login: str,
) -> None:
    role = make_role(vault_root, engine_password, default_ttl="2m", max_ttl="10m", prefix="pl")
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{unique_env}/database", address_secret())
    env = child_environment(base_config, unique_env, role, tmp_path, VAULT_HEALTH_URL="none", DYNAMIC_LOG="1")
    approle: dict[str, str] = {}
    if login == "approle":
        approle = approle_for(vault_root, approle_mount, unique_env, role)
        del env["VAULT_TOKEN"]
        env.update({k: v for k, v in approle.items() if k.startswith("VAULT_")})
    port = free_port_pair()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "gunicorn", "--preload", "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
        "--graceful-timeout", "10", "tests.dynamic_app:create_app()",
    ]  # fmt: skip
    log_file = tmp_path / "gunicorn.log"

    def counts() -> dict[str, int | None]:
        tokens = len(token_accessors_of_role(vault_root, approle["name"])) if approle else None
        return {"leases": len(live_leases(vault_root, role)), "users": len(users_of_role(pg_admin, role)),
                "tokens": tokens}  # fmt: skip

    def settled(expected: dict[str, int | None], timeout: float) -> dict[str, int | None]:
        """The counts once they are ``expected``, or as they are after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (now := counts()) != expected and time.monotonic() < deadline:
            time.sleep(0.2)
        return now

    expected = {"leases": WORKERS, "users": WORKERS, "tokens": WORKERS if approle else None}
    failures: list[str] = []
    pids: set[int] = set()

    def serve(requests_count: int) -> set[int]:
        """Send requests (a new connection each, so the kernel spreads them); the pids that answered."""
        answered: set[int] = set()
        for _ in range(requests_count):
            try:
                response = requests.get(f"{base}/db", headers={"Connection": "close"}, timeout=10)
            except requests.RequestException as exc:
                failures.append(type(exc).__name__)
                continue
            if response.status_code != 200:
                failures.append(f"HTTP {response.status_code}")
                continue
            answered.add(int(response.json()["pid"]))
        return answered

    with open(log_file, "wb") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    started = time.monotonic()
    try:
        wait_until_answering(server, f"{base}/db", log_file)
        master_users = issued_by_pid(log_file.read_text()).get(server.pid, set())
        assert len(master_users) == 1, log_file.read_text()[-3000:]  # init_app in the master got one
        poll(lambda: not master_users & users_of_role(pg_admin, role), timeout=20, interval=0.02)
        master_user_gone_after = time.monotonic() - started
        deadline = time.monotonic() + 30
        while len(pids) < WORKERS and time.monotonic() < deadline:  # until every worker answered (bounded)
            pids |= serve(REQUESTS)
        # Every worker has its own lease and token by now; the master's go within a bounded poll.
        during = settled(expected, timeout=20)
        # A worker restarted (gracefully: it revokes its own) is forked from a master that holds
        # nothing now: it gets its own all the same, and the master gets none.
        stopped = min(pids)
        os.kill(stopped, signal.SIGTERM)
        deadline = time.monotonic() + 30
        after_restart_pids: set[int] = set()
        while (len(after_restart_pids) < WORKERS or stopped in after_restart_pids) and time.monotonic() < deadline:
            after_restart_pids = serve(REQUESTS)
        after_restart = settled(expected, timeout=20)
        master_users_after = issued_by_pid(log_file.read_text()).get(server.pid, set())
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
    logs = log_file.read_text()
    none_left = {"leases": 0, "users": 0, "tokens": 0 if approle else None}
    after_exit = settled(none_left, timeout=20)  # the workers revoke theirs at exit
    print(
        f"\ngunicorn --preload -w {WORKERS} ({login}): {len(failures)} failed requests; live while serving"
        f" {during} (the master's user gone {master_user_gone_after:.1f} s after gunicorn started); after a"
        f" worker restart {after_restart}; after exit {after_exit}"
    )
    assert failures == []
    assert len(pids) == WORKERS
    assert during == expected
    assert len(after_restart_pids) == WORKERS and stopped not in after_restart_pids
    assert after_restart == expected and master_users_after == master_users
    assert after_exit == none_left
    issued = issued_by_pid(logs)
    assert all(len(issued.get(pid, ())) == 1 for pid in pids | after_restart_pids)  # one user per worker, no switch
    master_lines = [line for line in logs.splitlines() if line.startswith(f"{server.pid} ")]
    assert any("without having used it" in line and "database lease" in line for line in master_lines), logs[-3000:]
    if approle:
        assert any("without having used it" in line and "Vault token" in line for line in master_lines), logs[-3000:]
    secrets = [base_config["VAULT_TOKEN"], *(approle[k] for k in ("VAULT_ROLE_ID", "VAULT_SECRET_ID") if approle)]
    assert_no_leak(logs, secrets)
