"""Two real `flask vault rotate` processes racing on one secret: no lost update, every conflict reported."""

from __future__ import annotations

import os
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hvac
import pytest

from tests.rotation_support import current, seed_env

RACE_APP = Path(__file__).with_name("race_app.py")
ROUNDS = 20
ROTATE = ["vault", "rotate", "--secret", "flask", "--yes"]
REPORTED = re.compile(r"version \d+ -> (\d+)")

pytestmark = pytest.mark.slow


def start_rotation(url: str, token: str, env: str, instance: Path, gate: str | None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_", "FLASK_"))}
    environ.update(VAULT_URL=url, VAULT_TOKEN=token, VAULT_ENVIRONMENT=env, RACE_INSTANCE=str(instance))
    if gate:
        environ["RACE_GATE"] = gate
    return subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", f"{RACE_APP}:create_app", *ROTATE],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def release_together(server: socket.socket, procs: list[subprocess.Popen[str]], timeout: float = 60) -> None:
    """Wait until every process has read the version (connected to the gate), then let them all go."""
    conns: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    while len(conns) < len(procs):
        exited = [p for p in procs if p.poll() is not None]  # a racer at the gate cannot exit
        if exited:
            out, err = exited[0].communicate()
            pytest.fail(f"a racer exited before reaching the gate: {out}{err}")
        assert time.monotonic() < deadline, "racers did not reach the gate in time"
        ready, _, _ = select.select([server], [], [], 0.2)
        if ready:
            conn, _ = server.accept()
            conn.settimeout(timeout)
            assert conn.recv(16).startswith(b"ready")
            conns.append(conn)
    for conn in conns:
        conn.sendall(b"go\n")
        conn.close()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out + err


def test_two_processes_rotating_at_once_lose_no_update_and_report_every_conflict(
    openbao_server: Any, vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    seed_env(vault_root, unique_env)
    url, token = openbao_server.url, openbao_server.root_token
    held = [current(vault_root, unique_env, "flask")[1]]
    conflicts = wins = 0
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        gate = f"127.0.0.1:{server.getsockname()[1]}"
        for round_number in range(ROUNDS):
            before, _ = current(vault_root, unique_env, "flask")
            procs = [start_rotation(url, token, unique_env, tmp_path / f"i{n}", gate) for n in range(2)]
            release_together(server, procs)
            results = [finish(p) for p in procs]
            after, data = current(vault_root, unique_env, "flask")
            winners = [out for code, out in results if code == 0]
            losers = [out for code, out in results if code != 0]
            assert len(winners) == 1, f"round {round_number}: {results}"
            assert after == before + 1  # exactly one new version: nothing lost, nothing doubled
            assert [int(v) for v in REPORTED.findall(winners[0])] == [after]
            for out in losers:
                assert "Conflict" in out and "Nothing was written" in out, out
                assert "Traceback" not in out
            assert data not in held  # the winner's values, not a stale or repeated set
            for out in winners + losers:
                assert not any(value in out for value in (*held[-1].values(), *data.values()))
            held.append(data)
            wins += len(winners)
            conflicts += len(losers)
    print(f"\nrace: {ROUNDS} rounds, {wins} rotations won, {conflicts} conflicts reported")
    assert (wins, conflicts) == (ROUNDS, ROUNDS)
    assert current(vault_root, unique_env, "flask")[0] == 1 + ROUNDS


def test_ungated_concurrent_rotations_keep_the_invariant(
    openbao_server: Any, vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    """Without the gate the timing is whatever it is: every success is one version, every failure a conflict."""
    seed_env(vault_root, unique_env)
    url, token = openbao_server.url, openbao_server.root_token
    for _ in range(3):
        before, _ = current(vault_root, unique_env, "flask")
        procs = [start_rotation(url, token, unique_env, tmp_path / f"i{n}", None) for n in range(2)]
        results = [finish(p) for p in procs]
        after, _ = current(vault_root, unique_env, "flask")
        successes = [out for code, out in results if code == 0]
        assert after - before == len(successes) >= 1
        for code, out in results:
            if code != 0:
                assert "Conflict" in out, out
        reported = sorted(int(v) for out in successes for v in REPORTED.findall(out))
        assert reported == list(range(before + 1, after + 1))
