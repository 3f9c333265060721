"""Smoke test of an installed wheel, run by scripts/wheel-smoke.sh from outside the repository.

Checks that the installed package (not a checkout) imports, ships its data, fills a tiny
app's config from a real OpenBao dev server, and that `flask --app <app> vault status`
passes in a subprocess. Prints one line per check and a closing count.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import flask_vault
from flask_vault.devserver import OpenBaoServer

HERE = Path.cwd()
TINY_APP = """\
from flask import Flask

from flask_vault import FlaskVault

vault = FlaskVault()


def create_app():
    app = Flask(__name__)
    app.config["VAULT_PATH_PREFIX"] = "smoke"
    app.config["VAULT_SECRETS"] = {"SECRET_KEY": "flask#secret_key"}
    vault.init_app(app)
    return app
"""

results: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> None:
    results.append((name, ok, detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}", flush=True)


def main() -> int:
    package = Path(flask_vault.__file__).resolve().parent
    check("imports the installed package", "site-packages" in package.parts, str(package))
    data = resources.files("flask_vault")
    check("ships py.typed", data.joinpath("py.typed").is_file())
    check(
        "ships the policy files",
        all(data.joinpath("policies", name).is_file() for name in ("app.hcl", "rotator.hcl")),
    )
    check("installs no example_app", importlib.util.find_spec("example_app") is None)

    value = secrets.token_urlsafe(32)
    (HERE / "smokeapp.py").write_text(TINY_APP)
    # A random root token, so the leak check below cannot be fooled by the policy name "root".
    with OpenBaoServer(root_token=f"smoke-{secrets.token_hex(12)}") as server:
        server.root_client().secrets.kv.v2.create_or_update_secret("smoke/production/flask", {"secret_key": value})
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env.update(VAULT_ADDR=server.url, VAULT_TOKEN=server.root_token, VAULT_ENVIRONMENT="production")
        env["HOME"] = str(HERE)  # no ~/.vault-token from the machine

        probe = textwrap.dedent(
            f"""
            from smokeapp import create_app
            app = create_app()
            assert app.config["SECRET_KEY"] == {value!r}
            response = app.test_client().get("/health/vault")
            assert response.status_code == 200 and response.get_json()["status"] == "pass", response.get_data()
            """
        )
        filled = subprocess.run([sys.executable, "-c", probe], env=env, cwd=HERE, capture_output=True, text=True)
        check("init_app fills SECRET_KEY and /health/vault passes", filled.returncode == 0, filled.stderr[-1500:])

        flask = Path(sys.executable).with_name("flask")
        status = subprocess.run(
            [str(flask), "--app", "smokeapp", "vault", "status"], env=env, cwd=HERE, capture_output=True, text=True
        )
        output = status.stdout + status.stderr
        check(
            "flask vault status exits 0 with status: pass",
            status.returncode == 0 and output.startswith("status: pass"),
            f"exit {status.returncode}: {output[-1500:]}",
        )
        check("flask vault status shows no secret or token", value not in output and server.root_token not in output)

    failed = sum(not ok for _, ok, _ in results)
    print(f"wheel smoke: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
