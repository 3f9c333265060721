"""The apps the benchmarks run in child processes.

``python -m benchmarks.apps vault|bare`` builds the app and prints ``ready`` (figure 7);
``gunicorn 'benchmarks.apps:health_app()'`` serves ``/health/vault`` and ``/ok`` (figure 5).
The Vault settings come from the ``VAULT_*`` environment variables the parent sets.

Nothing is imported at module level: the ``bare`` start-up pays for Flask alone.
"""

from __future__ import annotations

import os
import sys
from typing import Any

#: The values the bare app hard-codes (and the seeded secrets hold).
HARD_CODED = {
    "SECRET_KEY": "bench-secret-key-0123456789abcdef",
    "JWT_SECRET_KEY": "bench-jwt-secret-fedcba9876543210",
    "SQLALCHEMY_DATABASE_URI": "postgresql://store:p%40ss%3Aw%2Frd%25%3F%23@db.internal:5432/store_erp",
}


def vault_app() -> Any:
    """A Flask app whose three secret keys come from Vault (the default mapping)."""
    from flask import Flask

    from flask_vault import FlaskVault

    app = Flask("bench_app")
    FlaskVault(app)
    return app


def bare_app() -> Any:
    """The same app with the keys hard-coded."""
    from flask import Flask

    app = Flask("bench_app")
    app.config.update(HARD_CODED)
    return app


def health_app() -> Any:
    """``/health/vault`` (the extension's) and ``/ok`` in one app, plus ``/_bench/stats``:
    how many probes the health monitor sent and which Vault requests left this process."""
    from urllib.parse import urlsplit

    from flask import jsonify

    from .common import RequestLog

    port = urlsplit(os.environ["VAULT_URL"]).port
    log = RequestLog(port).__enter__()  # for the life of the process
    app = vault_app()

    @app.get("/ok")
    def ok() -> str:
        return "ok"

    @app.get("/_bench/stats")
    def stats() -> Any:
        return jsonify(
            probes=app.extensions["vault"].health.probes,
            sys_health=log.count(lambda r: r.path == "/v1/sys/health"),
            lookup_self=log.count(lambda r: r.path.endswith("/lookup-self")),
            requests=len(log.sent),
        )

    return app


def main(argv: list[str]) -> int:
    kind = argv[0] if argv else "vault"
    app = bare_app() if kind == "bare" else vault_app()
    if not all(app.config.get(key) for key in HARD_CODED):
        print("missing keys", file=sys.stderr)
        return 1
    print("ready", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
