"""`make demo`: a local OpenBao dev server, seeded, and the example app on top of it.

Starts `bao server -dev` on 127.0.0.1 (port 8200 when free) with a file audit device
writing to instance/openbao-audit.log, seeds the store-erp development secrets (the
database secret points at a SQLite file under instance/, or at the local PostgreSQL with
--database postgresql), then runs the example app with `flask run`. Ctrl-C stops both.

--database dynamic (``DATABASE=dynamic make demo``) also sets up Vault's database secrets
engine on the local PostgreSQL (as PGUSER, default postgres: a database
store_erp_dynamic, a management role for Vault, a role whose users Vault makes for 30 s at
a time, up to 2 minutes each) and runs the app with VAULT_DATABASE_ROLE: `flask vault
status` and /health/vault show the lease, its user, generation and last switch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from example_app.seed import DYNAMIC_ROLE, database_secret, seed, set_up_dynamic_database  # noqa: E402
from flask_vault.devserver import OpenBaoServer, free_port_pair  # noqa: E402


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def audit_config(log_path: Path) -> str:
    """A file audit device. OpenBao 2.x takes audit devices from its config file only.

    ``hmac_accessor = false`` keeps token accessors readable in the log, so the app's
    ``token_id`` tags (SHA-256 of the accessor) can be matched to the server's records;
    secret values are still HMAC'd.
    """
    return (
        'audit "file" "file" {\n'
        "  options {\n"
        f"    file_path = {json.dumps(str(log_path))}\n"
        '    hmac_accessor = "false"\n'
        "  }\n"
        "}\n"
    )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


#: Seconds the demo app keeps a secret before reading it again, so that a rotation shows soon.
DEMO_CACHE_TTL = 10


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database", choices=["sqlite", "postgresql", "dynamic"], default=os.environ.get("DATABASE", "sqlite")
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")), help="the app's port")
    args = parser.parse_args()

    vault_port = 8200 if port_is_free(8200) and port_is_free(8201) else free_port_pair()
    app_port = args.port if port_is_free(args.port) else free_port_pair()
    instance = ROOT / "instance"
    instance.mkdir(exist_ok=True)

    audit_log = instance / "openbao-audit.log"
    audit_log.unlink(missing_ok=True)  # one demo run, one log

    server = OpenBaoServer(port=vault_port, config=audit_config(audit_log)).start()
    dynamic = args.database == "dynamic"
    engine: dict[str, str] | None = None
    try:
        seeded = seed(
            server.root_client(),
            environment="development",
            database=database_secret(args.database, str(instance / "store.db")),
            database_role=DYNAMIC_ROLE if dynamic else None,
        )
        if dynamic:
            engine = set_up_dynamic_database(server.root_client(), default_ttl="30s", max_ttl="2m")
        secret_id = server.root_client().auth.approle.generate_secret_id(seeded["role"])["data"]["secret_id"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("VAULT_")}
        env.update(
            VAULT_ADDR=server.url,
            VAULT_ENVIRONMENT="development",
            VAULT_ROLE_ID=seeded["role_id"],  # the app logs in with AppRole, as it would in production
            VAULT_SECRET_ID=secret_id,
            VAULT_CACHE_TTL=str(DEMO_CACHE_TTL),  # a rotation shows within seconds (default: 300)
            FLASK_APP="example_app",
        )
        if engine is not None:
            env.update(VAULT_DATABASE_ROLE=engine["role"], VAULT_DATABASE_GRACE="5")
        app_url = f"http://127.0.0.1:{app_port}"
        print(f"OpenBao dev server: {server.url} (in memory; root token 'root', for this demo only)")
        print(f"Seeded {seeded['path']}/{{flask,database}}; the app logs in with AppRole '{seeded['role']}'.")
        if engine is not None:
            print(
                f"Database secrets engine at {engine['mount']}/, role '{engine['role']}' on PostgreSQL database"
                f" {engine['database']}: users for 30 s at a time (renewed), switched before 2 minutes."
            )
            print(
                f"  VAULT_ADDR={server.url} VAULT_TOKEN=root VAULT_ENVIRONMENT=development"
                f" VAULT_DATABASE_ROLE={engine['role']} .venv/bin/flask --app example_app vault status"
            )
        print(f"OpenBao audit log: {audit_log}")
        print(f"  jq -c 'select(.type==\"response\") | [.time, .request.operation, .request.path]' {audit_log}")
        print("  (docs/operations.md: finding the app's reads and a rotation in it)")
        print(f"\nExample app: {app_url}")
        print(f"  curl -s {app_url}/health/vault")
        print(
            f"  curl -s -X POST {app_url}/login -H 'Content-Type: application/json'"
            ' -d \'{"username": "demo", "password": "demo"}\''
        )
        print(
            f"A rotation to find in the audit log afterwards (in another terminal); the app picks it up within"
            f" {DEMO_CACHE_TTL} s (VAULT_CACHE_TTL) and new JWTs then carry kid vault-v2:"
        )
        print(
            f"  VAULT_ADDR={server.url} VAULT_TOKEN=root VAULT_ENVIRONMENT=development"
            " .venv/bin/flask --app example_app vault rotate --secret flask --yes"
        )
        print("Ctrl-C stops the app and the server.\n", flush=True)
        app = subprocess.Popen(
            [sys.executable, "-m", "flask", "run", "--host", "127.0.0.1", "--port", str(app_port)],
            cwd=ROOT,
            env=env,
        )
        try:
            return app.wait()
        except KeyboardInterrupt:
            # SIGTERM, not SIGINT: a demo started in the background (`make demo &`) has SIGINT ignored.
            app.terminate()
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()
            return 0
    finally:
        if engine is not None:
            # The in-memory server forgets its leases when it stops: revoke them first, so that
            # no database user outlives the demo (the app revokes its own at a normal exit).
            server.root_client().sys.revoke_prefix(f"{engine['mount']}/creds/{engine['role']}")
        server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
