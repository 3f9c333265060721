"""Rotation that every process survives, end to end.

``gunicorn -w 3 --max-requests 200`` serves ``tests/rotation_app.py`` (Flask sessions,
flask-jwt-extended with ``use_vault_jwt_keys``, Flask-SQLAlchemy on a PostgreSQL role whose
login checks the password). For 60 s a load of old sessions and JWTs (signed before the
first rotation), fresh ones (signed by whichever worker answered a login a moment ago, then
sent to any worker), database queries and health checks runs, while another process runs
``flask vault rotate --all --yes`` every 10 s (new signing keys, and a new database password
paired with ``ALTER ROLE``) and then ends the role's idle sessions (``pg_terminate_backend``)
so that every worker has to log in to the database again. No request may fail.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import hvac
import pytest
import requests
from core_support import app_process_env, assert_no_leak, wait_until_answering
from pg_support import connect_admin, database_secret, password_required, throwaway_role

from flask_vault import VaultClient
from flask_vault.devserver import free_port_pair, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parent.parent
PREFIX = "store-erp"
RUN_SECONDS = 60.0
ROTATE_EVERY = 10.0
PACE = 0.05  # seconds between two requests of one load thread
ROTATE = [sys.executable, "-m", "flask", "--app", "tests/rotation_app.py:create_app", "vault", "rotate", "--all"]
ROTATE.append("--yes")
KINDS = ("old_session", "fresh_session", "old_jwt", "fresh_jwt", "db", "login", "health")


class Load:
    """Requests of every kind against the server until stopped; counts per kind."""

    def __init__(self, base: str, role: str) -> None:
        self.base = base
        self.role = role
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.failures: list[str] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.old = self.login()
        self.fresh = self.old

    def login(self) -> tuple[str, str]:
        response = requests.post(f"{self.base}/login", headers={"Connection": "close"}, timeout=10)
        response.raise_for_status()
        return response.cookies["session"], response.json()["token"]

    def _record(self, kind: str, ok: bool, detail: str) -> None:
        with self._lock:
            self.sent[kind] += 1
            if not ok:
                self.failed[kind] += 1
                if len(self.failures) < 20:
                    self.failures.append(f"{kind}: {detail}")

    def one(self, kind: str) -> None:
        headers = {"Connection": "close"}
        try:
            if kind == "login":
                self.fresh = self.login()
                self._record(kind, True, "")
                return
            if kind in ("old_session", "fresh_session"):
                cookie = (self.old if kind == "old_session" else self.fresh)[0]
                headers["Cookie"] = f"session={cookie}"
                response = requests.get(f"{self.base}/session", headers=headers, timeout=10)
                ok = response.status_code == 200 and response.json() == {"user": "demo"}
            elif kind in ("old_jwt", "fresh_jwt"):
                token = (self.old if kind == "old_jwt" else self.fresh)[1]
                headers["Authorization"] = f"Bearer {token}"
                response = requests.get(f"{self.base}/jwt", headers=headers, timeout=10)
                ok = response.status_code == 200 and response.json() == {"user": "demo"}
            elif kind == "health":  # never fail: every key, the database's included, is served
                response = requests.get(f"{self.base}/health/vault", headers=headers, timeout=10)
                ok = response.status_code == 200 and response.json()["status"] != "fail"
            else:
                response = requests.get(f"{self.base}/db", headers=headers, timeout=10)
                ok = response.status_code == 200 and response.json() == {"user": self.role}
            self._record(kind, ok, f"HTTP {response.status_code} {response.text[:200]!r}")
        except requests.RequestException as exc:
            self._record(kind, False, f"{type(exc).__name__}: {exc}")

    def run(self, offset: int) -> None:
        # Paced, so that a worker lives for several rotations before --max-requests recycles it
        # and its pooled connections are still there to be ended after a password change.
        index = offset
        while not self.stop.wait(PACE):
            self.one(KINDS[index % len(KINDS)])
            index += 1


def test_gunicorn_workers_survive_rotations_every_10s_with_no_failed_request(
    openbao_server: Any, vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    admin = connect_admin()
    try:
        run_rotations(admin, openbao_server, vault_root, unique_env, tmp_path)
    finally:
        admin.close()


def run_rotations(admin: Any, openbao_server: Any, vault_root: hvac.Client, unique_env: str, tmp_path: Path) -> None:
    with throwaway_role(admin, "fv_accept") as (role, password), password_required(admin, role):
        kv = vault_root.secrets.kv.v2
        keys = {"secret_key": "sk-" + "a" * 40, "jwt_secret": "jwt-" + "b" * 40}
        kv.create_or_update_secret(f"{PREFIX}/{unique_env}/flask", keys)
        kv.create_or_update_secret(f"{PREFIX}/{unique_env}/database", database_secret(role, password))
        env = app_process_env(
            tmp_path,
            VAULT_ADDR=openbao_server.url,
            VAULT_TOKEN=openbao_server.root_token,
            VAULT_ENVIRONMENT=unique_env,
            ROTATION_INSTANCE=str(tmp_path / "instance"),
            ROTATION_LOG="flask_vault.db",
        )
        port = free_port_pair()
        base = f"http://127.0.0.1:{port}"
        access_log, error_log = tmp_path / "access.log", tmp_path / "error.log"
        command = [
            sys.executable, "-m", "gunicorn", "-w", "3", "--max-requests", "200", "-b", f"127.0.0.1:{port}",
            "--access-logfile", str(access_log), "--access-logformat", "%(p)s %(s)s %(U)s",
            "--error-logfile", str(error_log), "--graceful-timeout", "10", "tests.rotation_app:create_app()",
        ]  # fmt: skip
        with open(tmp_path / "stdout.log", "wb") as out:
            server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        rotations: list[float] = []
        terminated: list[int] = []
        try:
            wait_until_answering(server, f"{base}/session", error_log, lambda response: response.status_code == 401)
            load = Load(base, role)
            threads = [threading.Thread(target=load.run, args=(n,)) for n in range(4)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            try:
                for n in range(int(RUN_SECONDS / ROTATE_EVERY)):
                    time.sleep(max(0.0, started + ROTATE_EVERY / 2 + n * ROTATE_EVERY - time.monotonic()))
                    rotate = subprocess.run(ROTATE, cwd=REPO, env=env, capture_output=True, timeout=60)
                    assert rotate.returncode == 0, rotate.stdout.decode() + rotate.stderr.decode()
                    assert "PostgreSQL" in rotate.stdout.decode()
                    rotations.append(time.monotonic() - started)
                    # Idle sessions only: a query cut off mid-flight says nothing about credentials.
                    rows = admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s AND state = 'idle'",
                        (role,),
                    ).fetchall()
                    terminated.append(len(rows))
                time.sleep(max(0.0, started + RUN_SECONDS - time.monotonic()))
            finally:
                load.stop.set()
                for thread in threads:
                    thread.join(30)
            elapsed = time.monotonic() - started
        finally:
            stop_process(server, timeout=20)  # SIGTERM, then SIGKILL
        client = VaultClient(openbao_server.url, openbao_server.root_token, unique_env, path_prefix=PREFIX)
        final_flask, final_database = client.read_version("flask"), client.read_version("database")
    pids = {line.split()[0] for line in access_log.read_text().splitlines()}
    logs = error_log.read_text() + (tmp_path / "stdout.log").read_text()
    recovered = [line for line in logs.splitlines() if "The database refused SQLALCHEMY_DATABASE_URI" in line]
    rows = [f"{kind:<14}{load.sent[kind]:>7}{load.failed[kind]:>8}" for kind in KINDS]
    print(
        f"\nrotation run: {elapsed:.1f}s, rotations at {[round(t, 1) for t in rotations]} s,"
        f" idle sessions ended after each: {terminated}, worker processes: {len(pids)},"
        f" logins refused then retried with the re-read password: {len(recovered)}\n"
        f"{'kind':<14}{'sent':>7}{'failed':>8}\n" + "\n".join(rows)
    )
    assert load.failures == [], load.failures
    assert len(rotations) == 6 and final_flask.version == 7 and final_database.version == 7
    assert all(load.sent[kind] >= 50 for kind in KINDS)
    assert sum(terminated) >= 3  # connections really were forced to log in again
    assert len(recovered) >= 3  # ... and found the new password by reading it through
    assert len(pids) > 3, "--max-requests should have recycled workers"
    secrets = [*final_flask.data.values(), final_database.data["password"], password]
    assert_no_leak(logs, secrets)
