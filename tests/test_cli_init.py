"""`flask vault init`, the load modes of an app loaded for `flask vault`, and messages that say what to do."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask

from flask_vault import FlaskVault
from flask_vault.cli import vault_cli
from flask_vault.errors import VaultConflictError
from flask_vault.mapping import keys_by_name
from flask_vault.ops.bootstrap import apply_init, plan_init
from flask_vault.state import CLI, OFFLINE, get_state, reset_load_mode, set_load_mode
from tests.first_run_support import ConnectionCounter, unused_port
from tests.rotation_support import PREFIX, current, vault

DATABASE = {"host": "db.internal", "port": "5432", "username": "store", "password": "pw-init-9d8c", "database": "erp"}


@contextmanager
def loading(mode: str) -> Iterator[None]:
    """Apps made inside load as the `flask vault` commands load them."""
    token = set_load_mode(mode)
    try:
        yield
    finally:
        reset_load_mode(token)


def cli_app(base_config: dict[str, Any], env: str, tmp_path: Path, mode: str = CLI, **config: Any) -> Flask:
    """An app loaded as `flask vault` loads it (secrets may be missing), its instance under ``tmp_path``."""
    app = Flask("store_erp_init", instance_path=str(tmp_path / "instance"))
    app.config.update(base_config)
    app.config.update(VAULT_ENVIRONMENT=env, VAULT_HEALTH_URL=None, VAULT_MAX_RETRIES=0, **config)
    with loading(mode):
        FlaskVault(app)
    return app


def from_file(tmp_path: Path, data: dict[str, Any]) -> str:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(data))
    return str(path)


def absent(vault_root: hvac.Client, env: str, name: str, mount: str = "secret") -> bool:
    try:
        vault_root.secrets.kv.v2.read_secret_metadata(f"{PREFIX}/{env}/{name}", mount_point=mount)
    except hvac.exceptions.InvalidPath:
        return True
    return False


# -- load modes -------------------------------------------------------------------------


def test_an_app_loaded_for_the_cli_starts_without_its_secrets_and_says_why(
    base_config: dict[str, Any], unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path)
    assert app.config["SECRET_KEY"] is None  # Flask's default: nothing was filled
    assert FlaskVault.loaded_for_cli(app)
    sources = get_state(app).sources
    assert {s.origin for s in sources.values()} == {"missing"}
    assert f"No secret at secret/{PREFIX}/{unique_env}/flask" in (sources["SECRET_KEY"].vault_error or "")


def test_a_cli_load_asks_an_unreachable_vault_once_and_does_not_wait(tmp_path: Path) -> None:
    with ConnectionCounter() as counter:
        config = {"VAULT_URL": counter.url, "VAULT_TOKEN": "t", "VAULT_TIMEOUT": 0.2, "VAULT_STARTUP_TIMEOUT": 600}
        app = cli_app(config, "production", tmp_path, VAULT_SECRETS={"A": "one#a", "B": "two#b", "C": "three"})
    # the first secret's read timed out once (no retry, no waiting); the other two were not asked
    assert get_state(app).client.metrics.requests()["read"] == {"VaultUnavailableError": 1}
    sources = get_state(app).sources
    assert {s.origin for s in sources.values()} == {"missing"}
    assert all("did not answer within 0.2s" in (s.vault_error or "") for s in sources.values())


def test_an_offline_load_sends_no_request_and_fills_nothing(tmp_path: Path) -> None:
    with ConnectionCounter() as counter:
        app = cli_app({"VAULT_URL": counter.url, "VAULT_TOKEN": "t"}, "production", tmp_path, mode=OFFLINE)
        assert counter.connections() == 0
    assert app.config["SECRET_KEY"] is None and get_state(app).sources == {}


def test_a_server_load_still_refuses_to_start_without_its_secrets(
    base_config: dict[str, Any], unique_env: str, app: Flask, vault: FlaskVault
) -> None:
    assert not vault.loaded_for_cli(app)  # the seeded app, loaded the ordinary way
    app = Flask("store_erp_init")
    app.config.update(base_config, VAULT_ENVIRONMENT=unique_env)
    with pytest.raises(Exception, match="Cannot fill SECRET_KEY"):
        FlaskVault(app)


def test_commands_refuse_an_app_without_the_extension_in_one_line() -> None:
    app = Flask("no_vault")
    app.cli.add_command(vault_cli)
    result = app.test_cli_runner().invoke(args=["vault", "status"])
    assert result.exit_code == 1
    assert "FlaskVault is not registered on the app 'no_vault'" in result.output
    assert "Traceback" not in result.output


# -- init -------------------------------------------------------------------------------


def test_init_dry_run_shows_the_plan_and_writes_nothing(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path)
    result = vault(app, "init", "--dry-run", "--from-file", from_file(tmp_path, {"database": DATABASE}))
    assert result.exit_code == 0, result.output
    assert f"would create secret/{PREFIX}/{unique_env}/flask: secret_key, jwt_secret (generated)" in result.output
    assert f"would create secret/{PREFIX}/{unique_env}/database: host, port, username, password, database" in (
        result.output
    )
    assert "dry run: nothing was written" in result.output
    assert absent(vault_root, unique_env, "flask") and absent(vault_root, unique_env, "database")


def test_init_without_a_terminal_needs_the_database_fields_and_writes_nothing(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path)
    result = vault(app, "init", "--yes")
    assert result.exit_code == 1
    assert f"secret/{PREFIX}/{unique_env}/database needs host, username, database" in result.output
    assert '--from-file FILE holding {"database": {"host": "...", "username": "...", "database": "..."}}' in (
        result.output
    )
    assert absent(vault_root, unique_env, "flask")  # checked before the first write


def test_init_without_a_terminal_or_yes_is_refused_before_it_reads_anything(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path)
    requests_sent = get_state(app).client.metrics.count
    before = requests_sent()
    result = vault(app, "init")
    assert result.exit_code == 2, result.output
    assert "`flask vault init` writes to Vault and there is no terminal to confirm on: add --yes" in result.output
    assert requests_sent() == before  # refused before a single request
    assert absent(vault_root, unique_env, "flask") and absent(vault_root, unique_env, "database")


def test_init_takes_a_database_secret_given_as_one_url_field(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path)
    url = f"sqlite:///{tmp_path / 'app.db'}"
    result = vault(app, "init", "--yes", "--from-file", from_file(tmp_path, {"database": {"url": url}}))
    assert result.exit_code == 0, result.output
    assert current(vault_root, unique_env, "database") == (1, {"url": url})


def test_init_creates_what_is_missing_with_generated_keys_then_changes_nothing(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path)
    values = from_file(tmp_path, {"database": DATABASE})
    first = vault(app, "init", "--yes", "--from-file", values)
    assert first.exit_code == 0, first.output
    version, data = current(vault_root, unique_env, "flask")
    assert version == 1 and sorted(data) == ["jwt_secret", "secret_key"]
    assert data["secret_key"] != data["jwt_secret"] and all(len(v) == 64 for v in data.values())
    assert current(vault_root, unique_env, "database") == (1, DATABASE)
    for value in [*data.values(), DATABASE["password"]]:
        assert value not in first.output
    assert "flask vault policy app | bao policy write store-erp-" in first.output
    second = vault(app, "init", "--yes", "--from-file", values)
    assert second.exit_code == 0, second.output
    assert f"exists secret/{PREFIX}/{unique_env}/flask (version 1): left alone" in second.output
    assert "nothing to create" in second.output
    assert current(vault_root, unique_env, "flask") == (1, data)


def test_init_prompts_connection_fields_in_clear_and_secrets_hidden_twice(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setattr("flask_vault.cli._interactive", lambda: True)
    app = cli_app(base_config, unique_env, tmp_path)
    password = "typed-pw-77aa"
    typed = f"db.internal\n\nstore\n{password}\n{password}\nerp\ny\n"  # host, port (empty), user, password x2, db
    result = vault(app, "init", input=typed)
    assert result.exit_code == 0, result.output
    assert "database#host: db.internal" in result.output  # shown as typed
    assert password not in result.output  # hidden
    assert "Create flask, database in secret/" in result.output
    assert current(vault_root, unique_env, "database")[1] == {
        "host": "db.internal",
        "username": "store",
        "password": password,
        "database": "erp",
    }


def test_init_leaves_an_existing_secret_alone_and_says_what_it_lacks(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{unique_env}/flask", {"secret_key": "kept-sk-1234"})
    app = cli_app(base_config, unique_env, tmp_path)
    result = vault(app, "init", "--yes", "--from-file", from_file(tmp_path, {"database": DATABASE}))
    assert result.exit_code == 1
    assert "lacks jwt_secret: left alone; `flask vault put flask --field jwt_secret --merge` adds it" in result.output
    assert f"created secret/{PREFIX}/{unique_env}/database" in result.output
    assert current(vault_root, unique_env, "flask") == (1, {"secret_key": "kept-sk-1234"})


def test_a_secret_created_after_the_plan_is_not_overwritten(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path, VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"})
    client = get_state(app).client
    plan = plan_init(client, keys_by_name(get_state(app).settings.secrets), get_state(app).settings.rotation)
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{unique_env}/flask", {"secret_key": "theirs-123456"})
    with pytest.raises(VaultConflictError, match="is version 1, not absent"):
        apply_init(client, plan, {})
    assert current(vault_root, unique_env, "flask") == (1, {"secret_key": "theirs-123456"})


def test_init_refuses_values_for_a_secret_the_app_does_not_map(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path)
    result = vault(app, "init", "--yes", "--from-file", from_file(tmp_path, {"databse": DATABASE}))
    assert result.exit_code == 1
    assert "--from-file: 'databse' is not a secret VAULT_SECRETS maps (it maps: flask, database)" in result.output
    assert absent(vault_root, unique_env, "flask")


def test_init_generates_what_vault_rotation_names_and_asks_for_the_rest(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(
        base_config,
        unique_env,
        tmp_path,
        VAULT_SECRETS={"WEBHOOK_SECRET": "payments#webhook", "STRIPE_KEY": "payments#stripe_key"},
        VAULT_ROTATION={"payments": {"webhook": {"length": 40, "alphabet": "hex"}}},
    )
    plan = vault(app, "init", "--dry-run")
    assert "payments: webhook (generated); stripe_key (asked)" in plan.output
    result = vault(app, "init", "--yes", "--from-file", from_file(tmp_path, {"payments": {"stripe_key": "sk_1"}}))
    assert result.exit_code == 0, result.output
    _, data = current(vault_root, unique_env, "payments")
    assert data["stripe_key"] == "sk_1"
    assert len(data["webhook"]) == 40 and set(data["webhook"]) <= set("0123456789abcdef")


def test_init_on_a_kv1_mount_creates_the_secrets_and_prints_kv1_policies(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    mount = f"kv1-{unique_env}"
    vault_root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    try:
        app = cli_app(base_config, unique_env, tmp_path, VAULT_MOUNT_POINT=mount)
        result = vault(app, "init", "--yes", "--from-file", from_file(tmp_path, {"database": DATABASE}))
        assert result.exit_code == 0, result.output
        assert f"created {mount}/{PREFIX}/{unique_env}/flask (jwt_secret, secret_key)\n" in result.output
        assert "(KV v1)" in result.output and "--kv-version 1 | bao policy write" in result.output
        stored = vault_root.secrets.kv.v1.read_secret(f"{PREFIX}/{unique_env}/database", mount_point=mount)
        assert stored["data"] == DATABASE
        again = vault(app, "init", "--yes")
        assert again.exit_code == 0 and "nothing to create" in again.output
    finally:
        vault_root.sys.disable_secrets_engine(mount)


# -- status and messages ----------------------------------------------------------------


def test_status_exits_1_when_a_key_is_served_from_the_environment(
    base_config: dict[str, Any], unique_env: str, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-the-env-1234")
    app = cli_app(base_config, unique_env, tmp_path, VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"})
    result = vault(app, "status")
    assert result.exit_code == 1, result.output
    assert "warn SECRET_KEY: env $SECRET_KEY - Served from the environment variable SECRET_KEY" in result.output


def test_a_refused_read_names_the_api_path_the_capability_and_the_settings(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{unique_env}/flask", {"secret_key": "x" * 20})
    name = f"nothing-{unique_env}"
    vault_root.sys.create_or_update_policy(name, 'path "secret/data/elsewhere/*" { capabilities = ["read"] }')
    token = vault_root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"]
    app = cli_app(base_config, unique_env, tmp_path, VAULT_TOKEN=token)
    read = vault(app, "get", "flask")
    assert read.exit_code == 1
    assert f"must grant 'read' on secret/data/{PREFIX}/{unique_env}/flask" in read.output
    assert f"VAULT_MOUNT_POINT='secret', VAULT_PATH_PREFIX='{PREFIX}' and VAULT_ENVIRONMENT='{unique_env}'" in (
        read.output
    )
    assert "`flask vault policy app`" in read.output
    listed = vault(app, "list")
    assert listed.exit_code == 1
    assert f"must grant 'list' on secret/metadata/{PREFIX}/{unique_env}/ " in listed.output
    status = vault(app, "status")
    assert status.exit_code == 2
    assert f"must grant 'read' on secret/data/{PREFIX}/{unique_env}/flask" in status.output
    assert token not in read.output + listed.output + status.output


def test_an_unknown_mount_is_named_not_reported_as_a_missing_secret(
    base_config: dict[str, Any], unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path, VAULT_MOUNT_POINT="no-such-mount")
    result = vault(app, "get", "flask")
    assert result.exit_code == 1
    assert "has no secrets engine mounted at 'no-such-mount'" in result.output
    assert "Check VAULT_MOUNT_POINT" in result.output and "No secret at" not in result.output
    status = vault(app, "status")
    assert status.exit_code == 2 and "Check VAULT_MOUNT_POINT" in status.output
    init = vault(app, "init", "--dry-run")
    assert init.exit_code == 1 and "Check VAULT_MOUNT_POINT" in init.output


def test_status_with_no_server_waits_for_nothing_and_sends_one_probe(tmp_path: Path) -> None:
    config = {"VAULT_URL": f"http://127.0.0.1:{unused_port()}", "VAULT_TOKEN": "t", "VAULT_STARTUP_TIMEOUT": 600}
    app = cli_app(config, "production", tmp_path)
    result = vault(app, "status")
    assert result.exit_code == 2
    assert "Vault is unavailable and this process has no cached secret to serve." in result.output


def test_status_says_a_login_method_could_not_reach_vault_rather_than_no_token(tmp_path: Path) -> None:
    config = {
        "VAULT_URL": f"http://127.0.0.1:{unused_port()}",
        "VAULT_AUTH_METHOD": "approle",
        "VAULT_ROLE_ID": "role",
        "VAULT_SECRET_ID": "secret-id-0f9e",
    }
    app = cli_app(config, "production", tmp_path)
    result = vault(app, "status")
    assert result.exit_code == 2
    assert "login    fail method=approle authenticated=False - Not logged in: Vault is unreachable." in result.output
    assert "No Vault token" not in result.output


def test_status_names_a_missing_field_and_the_command_that_adds_it(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{unique_env}/flask", {"secret_key": "only-sk-5566"})
    secrets = {"SECRET_KEY": "flask#secret_key", "JWT_SECRET_KEY": "flask#jwt_secret"}
    app = cli_app(base_config, unique_env, tmp_path, VAULT_SECRETS=secrets)
    result = vault(app, "status")
    assert result.exit_code == 2
    assert "pass SECRET_KEY: vault" in result.output
    assert "has no field 'jwt_secret'; fields present: secret_key." in result.output
    assert "`flask vault put flask --field jwt_secret --merge`" in result.output
    assert "only-sk-5566" not in result.output


def test_put_creates_a_missing_secret_from_an_app_that_could_not_fill_it(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str, tmp_path: Path
) -> None:
    app = cli_app(base_config, unique_env, tmp_path, VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"})
    assert get_state(app).sources["SECRET_KEY"].origin == "missing"
    result = vault(app, "put", "flask", "--yes", "--from-file", from_file(tmp_path, {"secret_key": "put-sk-8899"}))
    assert result.exit_code == 0, result.output
    assert current(vault_root, unique_env, "flask") == (1, {"secret_key": "put-sk-8899"})
    reloaded = cli_app(base_config, unique_env, tmp_path, VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"})
    assert vault(reloaded, "status").exit_code == 0  # the next `flask vault status` process
