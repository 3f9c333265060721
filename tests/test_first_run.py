"""A newcomer's first run, in subprocesses against a real OpenBao: `flask vault` works before the
secrets exist, `init` creates them, the app then serves; servers still refuse to start without them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
import requests
from flask import Flask

from flask_vault import FlaskVault
from flask_vault.devserver import OpenBaoServer, PersistentOpenBaoServer, free_port_pair, stop_process
from tests.core_support import poll
from tests.first_run_support import ConnectionCounter, clean_env, run_flask, unused_port, write_fresh_app

ENVIRONMENT = "production"
DATABASE = {"host": "db.internal", "port": 5432, "username": "fresh", "password": "pw-4c1d-file", "database": "app"}
FIRST_RUN_FLASK = {"secret_key": "fr-secret-key-0a1b2c3d", "jwt_secret": "fr-jwt-secret-4e5f6a7b"}
KEYS = ("SECRET_KEY", "JWT_SECRET_KEY", "SQLALCHEMY_DATABASE_URI")


@pytest.fixture
def empty_server() -> Iterator[OpenBaoServer]:
    """An OpenBao dev server of its own: nothing in it yet."""
    with OpenBaoServer(root_token="first-run-root-7f3e") as server:
        yield server


def versions(root: hvac.Client) -> dict[str, int]:
    kv = root.secrets.kv.v2
    return {
        name: kv.read_secret_metadata(f"freshapp/{ENVIRONMENT}/{name}")["data"]["current_version"]
        for name in ("flask", "database")
    }


def assert_one_line_per_problem(output: str) -> list[str]:
    """No traceback; every line is the summary, a check or a config key."""
    assert "Traceback" not in output
    lines = output.strip().splitlines()
    assert lines[0].startswith("status: fail - ")
    labels = [line.split()[0] for line in lines[1:]]
    assert labels == ["server", "login", "secrets", "fail", "fail", "fail", "cache"], output
    return lines


def serve_one_request(folder: Path, env: dict[str, str]) -> requests.Response:
    """Start gunicorn on the app, send one request, stop it."""
    port = free_port_pair()
    command = [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "freshapp:app"]
    log = folder / "gunicorn.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:

        def answered() -> requests.Response | None:
            assert process.poll() is None, log.read_text()
            try:
                return requests.get(f"http://127.0.0.1:{port}/", timeout=2)
            except requests.ConnectionError:
                return None

        response: requests.Response = poll(answered, timeout=30, interval=0.1)
        return response
    finally:
        stop_process(process, timeout=20)  # SIGTERM, then SIGKILL


@pytest.mark.slow
def test_from_an_empty_vault_status_fails_init_creates_the_secrets_and_the_app_serves(
    empty_server: OpenBaoServer, tmp_path: Path
) -> None:
    folder = write_fresh_app(tmp_path / "project")
    (folder / "db.json").write_text(json.dumps({"database": DATABASE}))
    env = clean_env(
        folder, VAULT_URL=empty_server.url, VAULT_TOKEN=empty_server.root_token, VAULT_ENVIRONMENT=ENVIRONMENT
    )
    root = empty_server.root_client()

    before = run_flask(folder, env, "vault", "status")
    assert before.returncode == 2, before.stdout + before.stderr
    assert before.stderr == ""
    lines = assert_one_line_per_problem(before.stdout)
    for key, where in zip(KEYS, ("flask#secret_key", "flask#jwt_secret", "database"), strict=True):
        [line] = [line for line in lines if f" {key}: " in line]
        assert f"missing secret/freshapp/{ENVIRONMENT}/{where}" in line and "flask vault init" in line

    created = run_flask(folder, env, "vault", "init", "--yes", "--from-file", "db.json")
    assert created.returncode == 0, created.stdout + created.stderr
    assert f"created secret/freshapp/{ENVIRONMENT}/flask (jwt_secret, secret_key): version 1" in created.stdout
    assert f"created secret/freshapp/{ENVIRONMENT}/database" in created.stdout
    assert f'path "secret/data/freshapp/{ENVIRONMENT}/*"' in created.stdout  # the policies to apply
    assert "Next: `flask --app freshapp vault status`" in created.stdout
    assert DATABASE["password"] not in created.stdout + created.stderr
    stored = root.secrets.kv.v2.read_secret_version(f"freshapp/{ENVIRONMENT}/flask", raise_on_deleted_version=True)
    assert set(stored["data"]["data"]) == {"secret_key", "jwt_secret"}
    assert all(len(value) == 64 for value in stored["data"]["data"].values())
    assert versions(root) == {"flask": 1, "database": 1}

    after = run_flask(folder, env, "vault", "status")
    assert after.returncode == 0, after.stdout + after.stderr

    response = serve_one_request(folder, env)
    assert response.status_code == 200
    assert response.json() == {"database_host": "db.internal", "jwt_key_length": 64}
    assert "session" in response.cookies  # signed with the SECRET_KEY init generated

    again = run_flask(folder, env, "vault", "init", "--yes", "--from-file", "db.json")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to create" in again.stdout and "created" not in again.stdout
    assert versions(root) == {"flask": 1, "database": 1}

    empty_server.stop()
    with ConnectionCounter() as counter:
        for args in (["vault", "--help"], ["vault", "status", "--help"], ["vault", "init", "--help"]):
            helped = run_flask(folder, {**env, "VAULT_URL": counter.url}, *args, timeout=30)
            assert helped.returncode == 0 and "Usage: " in helped.stdout, helped.stderr
        assert counter.connections() == 0
    down = run_flask(folder, {**env, "VAULT_STARTUP_TIMEOUT": "600"}, "vault", "status", timeout=60)
    assert down.returncode == 2, down.stdout + down.stderr
    assert down.stderr == ""
    lines = assert_one_line_per_problem(down.stdout)
    assert "state=unreachable" in lines[1]
    assert sum("Cannot connect to Vault" in line for line in lines) == 3


def test_servers_still_refuse_to_start_without_their_secrets(openbao_server: OpenBaoServer, tmp_path: Path) -> None:
    folder = write_fresh_app(tmp_path / "project")
    env = clean_env(folder, VAULT_URL=openbao_server.url, VAULT_TOKEN=openbao_server.root_token)
    env["VAULT_ENVIRONMENT"] = "never-seeded"
    port = unused_port()
    flask_run = run_flask(folder, env, "run", "--port", str(port), timeout=60)
    assert flask_run.returncode != 0
    assert "Cannot fill SECRET_KEY" in flask_run.stderr
    gunicorn = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}", "freshapp:app"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert gunicorn.returncode != 0
    assert "Cannot fill SECRET_KEY" in gunicorn.stdout + gunicorn.stderr
    # The same app and settings: `flask vault` loads it and says what is missing.
    status = run_flask(folder, env, "vault", "status")
    assert status.returncode == 2 and "No secret at secret/freshapp/never-seeded/flask" in status.stdout


def test_policy_prints_with_no_token_and_no_server_and_sends_no_request(tmp_path: Path) -> None:
    folder = write_fresh_app(tmp_path / "project")
    with ConnectionCounter() as counter:
        env = clean_env(folder, VAULT_URL=counter.url, VAULT_ENVIRONMENT="staging", VAULT_PATH_PREFIX="shop")
        app = run_flask(folder, env, "vault", "policy", "app", timeout=30)
        v1 = run_flask(folder, env, "vault", "policy", "rotator", "--kv-version", "1", timeout=30)
        assert counter.connections() == 0
    assert app.returncode == 0, app.stderr
    assert 'path "secret/data/shop/staging/*"' in app.stdout
    assert 'path "secret/metadata/shop/staging/*"' in app.stdout
    assert v1.returncode == 0, v1.stderr
    assert "/data/" not in v1.stdout and "/metadata/" not in v1.stdout
    assert 'path "secret/shop/staging/*" {\n  capabilities = ["create", "read", "update", "list"]\n}' in v1.stdout


def test_status_with_vault_unreachable_is_one_line_per_problem_without_waiting(tmp_path: Path) -> None:
    folder = write_fresh_app(tmp_path / "project")
    env = clean_env(folder, VAULT_URL=f"http://127.0.0.1:{unused_port()}", VAULT_TOKEN="t", VAULT_STARTUP_TIMEOUT="600")
    status = run_flask(folder, env, "vault", "status", timeout=60)  # would outlive the timeout if it waited
    assert status.returncode == 2, status.stdout + status.stderr
    assert status.stderr == ""
    lines = assert_one_line_per_problem(status.stdout)
    assert "Is the server running, and is VAULT_URL (or VAULT_ADDR) right?" in lines[4]


def test_status_for_a_wrong_environment_names_the_path_and_the_settings(
    openbao_server: OpenBaoServer, seeded: dict, tmp_path: Path
) -> None:
    folder = write_fresh_app(tmp_path / "project")
    env = clean_env(
        folder,
        VAULT_URL=openbao_server.url,
        VAULT_TOKEN=openbao_server.root_token,
        VAULT_PATH_PREFIX="store-erp",
        VAULT_ENVIRONMENT="tset",  # the secrets are in "test"
    )
    status = run_flask(folder, env, "vault", "status")
    assert status.returncode == 2 and status.stderr == ""
    lines = assert_one_line_per_problem(status.stdout)
    assert "No secret at secret/store-erp/tset/flask" in lines[4]
    assert "VAULT_ENVIRONMENT='tset'" in lines[4]


def test_an_app_that_fails_to_load_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    broken = "from flask import Flask\napp = Flask('broken')\nraise RuntimeError('the factory needs its database')\n"
    folder = write_fresh_app(tmp_path / "project", broken, name="broken")
    env = clean_env(folder)
    result = run_flask(folder, env, "vault", "status", app="broken", timeout=30)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Loading the app failed: RuntimeError raised in broken.py:3 (<module>)" in result.stderr
    assert "the factory needs its database" not in result.stderr  # where, never what
    debug = run_flask(folder, env, "vault", "status", "--debug", app="broken", timeout=30)
    assert "Traceback" in debug.stderr and "the factory needs its database" in debug.stderr


def test_on_a_kv1_mount_a_token_with_the_printed_policy_reads_and_lists_the_apps_secrets(
    openbao_server: OpenBaoServer, vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    mount = f"kv1-{unique_env}"
    vault_root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    try:
        kv1 = vault_root.secrets.kv.v1
        kv1.create_or_update_secret(f"freshapp/{unique_env}/flask", FIRST_RUN_FLASK, mount_point=mount)
        kv1.create_or_update_secret(f"freshapp/{unique_env}/database", DATABASE, mount_point=mount)
        folder = write_fresh_app(tmp_path / "project")
        env = clean_env(folder, VAULT_URL=f"http://127.0.0.1:{unused_port()}", VAULT_ENVIRONMENT=unique_env)
        env["VAULT_MOUNT_POINT"] = mount
        printed = run_flask(folder, env, "vault", "policy", "app", "--kv-version", "1", timeout=30)
        assert printed.returncode == 0, printed.stderr
        name = f"fresh-{unique_env}"
        vault_root.sys.create_or_update_policy(name, printed.stdout)
        token = vault_root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]

        app = Flask("freshapp", instance_path=str(tmp_path / "instance"))
        app.config.update(
            VAULT_URL=openbao_server.url,
            VAULT_TOKEN=token,
            VAULT_MOUNT_POINT=mount,
            VAULT_ENVIRONMENT=unique_env,
            VAULT_HEALTH_URL=None,
        )
        FlaskVault(app)
        assert app.config["SECRET_KEY"] == FIRST_RUN_FLASK["secret_key"]
        assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql://fresh:")
        listed = app.test_cli_runner().invoke(args=["vault", "list"])
        assert listed.exit_code == 0 and listed.output.split() == ["database", "flask"]
        # The KV v2 policy (the default) would not do on this mount.
        assert f"{mount}/data/" in run_flask(folder, env, "vault", "policy", "app", timeout=30).stdout
    finally:
        vault_root.sys.disable_secrets_engine(mount)


@pytest.mark.slow
def test_with_vault_sealed_status_says_so_and_init_fails_in_one_line(tmp_path: Path) -> None:
    server = PersistentOpenBaoServer().start()
    try:
        server.seal()
        folder = write_fresh_app(tmp_path / "project")
        env = clean_env(folder, VAULT_URL=server.url, VAULT_TOKEN=server.root_token, VAULT_STARTUP_TIMEOUT="600")
        status = run_flask(folder, env, "vault", "status", timeout=60)
        assert status.returncode == 2, status.stdout + status.stderr
        lines = assert_one_line_per_problem(status.stdout)
        assert "state=sealed" in lines[1] and "Vault at" in lines[1] and "is sealed" in lines[1]
        assert all("sealed or down (HTTP 503)" in line for line in lines[4:7])
        init = run_flask(folder, env, "vault", "init", "--yes", timeout=60)
        assert init.returncode == 1 and "Traceback" not in init.stderr
        assert init.stderr.startswith("Error: Vault at") and "sealed or down (HTTP 503)" in init.stderr
        assert server.root_token not in status.stdout + init.stderr
    finally:
        server.stop()
