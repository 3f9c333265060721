"""Helpers for the first-run tests: a fresh app module, `flask` in a subprocess, a port that counts connections."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from types import TracebackType

FRESH_APP = '''\
"""A newcomer's app: FlaskVault with its default mapping, nothing else."""

import os

from flask import Flask, session
from sqlalchemy.engine import make_url

from flask_vault import FlaskVault

app = Flask("freshapp", instance_path=os.environ["FRESH_INSTANCE"])
FlaskVault(app)


@app.get("/")
def index():
    session["seen"] = True  # signed with SECRET_KEY
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    return {"database_host": url.host, "jwt_key_length": len(app.config["JWT_SECRET_KEY"])}
'''


def write_fresh_app(folder: Path, source: str = FRESH_APP, name: str = "freshapp") -> Path:
    """Write the app module into ``folder`` (its own instance folder beside it); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(source))
    (folder / "instance").mkdir(exist_ok=True)
    return folder


def clean_env(folder: Path, **settings: str) -> dict[str, str]:
    """The test process's environment without VAULT_*/BAO_*/FLASK_* and secrets, plus ``settings``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VAULT_", "BAO_", "FLASK_"))
        and k not in ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "SQLALCHEMY_DATABASE_URI")
    }
    env.update(FRESH_INSTANCE=str(folder / "instance"), HOME=str(folder), PYTHONPATH=str(folder), **settings)
    return env


def run_flask(
    folder: Path, env: dict[str, str], *args: str, app: str = "freshapp", timeout: float = 60, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``flask --app APP ARGS`` in a subprocess in ``folder``; fails the test if it outlives ``timeout``."""
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", app, *args],
        cwd=folder,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ConnectionCounter:
    """A loopback port that listens but never answers, counting the connections made to it.

    The kernel completes each TCP handshake into the listen backlog, so a connection
    attempt is counted even though nothing is ever read or sent.
    """

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._socket.setblocking(False)
        self._accepted: list[socket.socket] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def connections(self) -> int:
        while True:
            try:
                conn, _ = self._socket.accept()
            except BlockingIOError:
                return len(self._accepted)
            self._accepted.append(conn)

    def __enter__(self) -> ConnectionCounter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for conn in self._accepted:
            conn.close()
        self._socket.close()


def unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
