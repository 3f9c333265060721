"""The app the race test runs as ``flask --app tests/race_app.py:create_app vault rotate ...``.

Settings come from the environment (VAULT_URL, VAULT_TOKEN, VAULT_ENVIRONMENT) set by the
test. With RACE_GATE=host:port, the rotation's read of the current version is followed by
a wait at that socket until the test releases every process at once, so both rotations
have read the same version before either writes: each round is a real race.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from flask import Flask

from flask_vault import FlaskVault


def create_app() -> Flask:
    app = Flask("store_erp_race", instance_path=os.environ["RACE_INSTANCE"])
    app.config.update(VAULT_PATH_PREFIX="store-erp", VAULT_HEALTH_URL=None, VAULT_MAX_RETRIES=0)
    FlaskVault(app)
    gate = os.environ.get("RACE_GATE")
    if gate:
        _gate_first_current_read(app, gate)
    return app


def _gate_first_current_read(app: Flask, gate: str) -> None:
    client = app.extensions["vault"].client
    read_version = client.read_version
    waited = False

    def gated(name: str, version: int | None = None) -> Any:
        nonlocal waited
        entry = read_version(name, version)
        if version is None and not waited:
            waited = True
            host, port = gate.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=60) as conn:
                conn.sendall(b"ready\n")
                conn.recv(16)  # "go": every racer has read the same version
        return entry

    client.read_version = gated
