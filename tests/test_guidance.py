"""What a newcomer is told when something is off: a wrong environment, a secret not created yet,
Vault down at start-up, a typo in a name, a field or a setting, a backup that changes nothing.

Each message is one line that names what to fix, never a value or a token (the session's
leak scan checks that for every log record and CLI output here).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hvac
import pytest
from flask import Flask

from flask_vault import FlaskVault, SecretNotFoundError, VaultClient, VaultPermissionError
from flask_vault.ops.policies import render_policy
from flask_vault.settings import VaultSettings
from flask_vault.state import CLI, reset_load_mode, set_load_mode
from flask_vault.testing import OpenBaoServer
from tests.first_run_support import clean_env, run_flask, unused_port, write_fresh_app
from tests.observe_support import AuditCapture, Shown, capturing_audit
from tests.rotation_support import PREFIX, backup_files, current, make_cli_app, seed_env, vault


@pytest.fixture
def env(vault_root: hvac.Client, unique_env: str) -> str:
    seed_env(vault_root, unique_env)
    return unique_env


@pytest.fixture
def cli_app(base_config: dict[str, Any], env: str, tmp_path: Path) -> Flask:
    return make_cli_app(base_config, env, tmp_path)


@pytest.fixture
def backup_dir(cli_app: Flask) -> Path:
    return Path(cli_app.instance_path) / "vault-backups"


@pytest.fixture
def audit_log(openbao_server: OpenBaoServer) -> Iterator[AuditCapture]:
    shown = Shown()
    shown.forbidden.add(openbao_server.root_token)
    with capturing_audit(shown) as capture:
        yield capture
    shown.assert_clean("audit")


def token_for(vault_root: hvac.Client, hcl: str) -> str:
    name = f"guidance-{uuid.uuid4().hex[:8]}"
    vault_root.sys.create_or_update_policy(name, hcl)
    return str(vault_root.auth.token.create(policies=[name], ttl="10m")["auth"]["client_token"])


def warnings(result_output: str) -> list[str]:
    return [line for line in result_output.splitlines() if line.startswith("warning:")]


@contextmanager
def loaded_for_a_command() -> Iterator[None]:
    """Apps made inside load as `flask vault` loads them: one quick attempt, missing keys reported."""
    token = set_load_mode(CLI)
    try:
        yield
    finally:
        reset_load_mode(token)


# -- a wrong VAULT_ENVIRONMENT (or prefix, or mount) shows in the message -------------------


def test_a_refused_read_at_start_up_names_the_full_path_and_the_settings_that_built_it(
    base_config: dict[str, Any], vault_root: hvac.Client, env: str
) -> None:
    token = token_for(vault_root, render_policy("app", prefix=PREFIX, environment=env))
    app = Flask("guidance")
    app.config.update(base_config, VAULT_TOKEN=token, VAULT_ENVIRONMENT=f"{env}-typo", VAULT_HEALTH_URL=None)
    with pytest.raises(VaultPermissionError) as raised:
        FlaskVault(app)
    message = raised.value.message
    assert "\n" not in message
    assert f"secret/{PREFIX}/{env}-typo/flask" in message
    assert f"VAULT_MOUNT_POINT='secret', VAULT_PATH_PREFIX='{PREFIX}' and VAULT_ENVIRONMENT='{env}-typo'" in message
    assert token not in message


def test_an_empty_listing_names_the_settings_that_built_its_folder(cli_app: Flask, base_config: dict, env: str) -> None:
    with loaded_for_a_command():  # as `flask vault list` loads it: its secrets are not there
        nowhere = make_cli_app(base_config, f"{env}-typo", Path(cli_app.instance_path).parent / "other")
    listed = vault(nowhere, "list")
    assert listed.exit_code == 0 and listed.output.count("\n") == 1
    assert f"no secrets under secret/{PREFIX}/{env}-typo/" in listed.output
    assert f"VAULT_ENVIRONMENT='{env}-typo'" in listed.output
    backed_up = vault(nowhere, "backup", "--all")
    assert backed_up.exit_code == 0 and f"VAULT_ENVIRONMENT='{env}-typo'" in backed_up.output


# -- a secret that does not exist yet: create it first --------------------------------------


def test_serving_an_app_whose_secret_does_not_exist_points_to_init_before_fail_fast(
    openbao_server: OpenBaoServer, tmp_path: Path
) -> None:
    folder = write_fresh_app(tmp_path / "project")
    env = clean_env(
        folder, VAULT_URL=openbao_server.url, VAULT_TOKEN=openbao_server.root_token, VAULT_ENVIRONMENT="not-created"
    )
    served = run_flask(folder, env, "run", "--port", str(unused_port()), timeout=60)
    assert served.returncode != 0
    [line] = [line for line in served.stderr.splitlines() if "Cannot fill SECRET_KEY" in line]
    assert "`flask --app freshapp vault init` creates every secret the app maps" in line
    assert "`flask --app freshapp vault put flask` this one" in line
    assert line.index("vault init") < line.index("VAULT_FAIL_FAST=false")
    assert "VAULT_ENVIRONMENT='not-created'" in line
    assert openbao_server.root_token not in served.stderr


def test_outside_flask_run_the_advice_names_the_app_with_a_placeholder(
    base_config: dict[str, Any], unique_env: str
) -> None:
    app = Flask("guidance")
    app.config.update(base_config, VAULT_ENVIRONMENT=unique_env, VAULT_HEALTH_URL=None)
    with pytest.raises(SecretNotFoundError) as raised:
        FlaskVault(app)
    message = raised.value.message
    assert "Create it first: `flask --app <app> vault init`" in message
    assert message.index("vault init") < message.index("VAULT_FAIL_FAST=false")
    assert "set VAULT_FAIL_FAST=false to allow it" not in message


# -- Vault down at start-up: each key names its own path -----------------------------------


def test_with_vault_unreachable_each_key_names_its_own_path(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{unused_port()}"
    app = Flask("guidance", instance_path=str(tmp_path / "instance"))
    app.config.update(VAULT_URL=url, VAULT_TOKEN="t", VAULT_PATH_PREFIX=PREFIX, VAULT_ENVIRONMENT="down")
    with loaded_for_a_command():
        vault_ext = FlaskVault(app)
    with app.app_context():
        sources = vault_ext.sources
    database = sources["SQLALCHEMY_DATABASE_URI"].vault_error or ""
    assert f"secret/{PREFIX}/down/database was not asked for" in database
    assert f"Vault at {url}" in database
    assert f"secret/{PREFIX}/down/flask" in (sources["SECRET_KEY"].vault_error or "")
    status = app.test_cli_runner().invoke(args=["vault", "status"])
    assert status.exit_code == 2
    for key, name in (("SECRET_KEY", "flask"), ("SQLALCHEMY_DATABASE_URI", "database")):
        [line] = [line for line in status.output.splitlines() if line.strip().startswith(f"fail {key}:")]
        said = line.partition(" - ")[2]
        assert f"secret/{PREFIX}/down/{name}" in said, line


# -- "did you mean": names and fields -------------------------------------------------------


def test_a_typo_in_a_secret_name_suggests_the_mapped_name(cli_app: Flask) -> None:
    for args in (("get", "flsk"), ("versions", "flsk"), ("rotate", "--secret", "flsk", "--yes")):
        result = vault(cli_app, *args)
        assert result.exit_code == 1, result.output
        assert "Did you mean 'flask'?" in result.output and result.output.count("\n") == 1
    far = vault(cli_app, "get", "payroll")
    assert far.exit_code == 1 and "Did you mean" not in far.output


def test_get_secret_suggests_the_closest_name_and_field(base_config: dict[str, Any], env: str) -> None:
    client = VaultClient(settings=VaultSettings.load({**base_config, "VAULT_ENVIRONMENT": env}, {}))
    with pytest.raises(SecretNotFoundError, match=r"Did you mean 'database'\?"):
        client.get_secret("databse")
    with pytest.raises(SecretNotFoundError, match=r"Did you mean 'secret_key'\?") as raised:
        client.get_secret("flask", "secrt_key")
    assert "fields present: jwt_secret, secret_key" in raised.value.message


def test_a_typo_in_a_field_suggests_the_field_the_secret_has(cli_app: Flask) -> None:
    got = vault(cli_app, "get", "flask", "--field", "secrt_key")
    assert got.exit_code == 1 and "Did you mean 'secret_key'?" in got.output
    rotated = vault(cli_app, "rotate", "--secret", "flask", "--field", "jwt_secrt", "--yes")
    assert rotated.exit_code == 1 and "Did you mean 'jwt_secret'?" in rotated.output


def test_put_of_a_new_name_or_field_close_to_an_existing_one_says_so_first(
    cli_app: Flask, vault_root: hvac.Client, env: str
) -> None:
    new_secret = vault(cli_app, "put", "flsk", "--yes", input='{"secret_key": "typo-key-1a2b3c4d"}')
    assert new_secret.exit_code == 0, new_secret.output
    assert f"note: secret/{PREFIX}/{env}/flsk does not exist yet" in new_secret.output
    assert "did you mean 'flask'?" in new_secret.output
    new_field = vault(cli_app, "put", "flask", "--field", "secrt_key", "--merge", "--yes", input="typo-2e3f4a5b\n")
    assert new_field.exit_code == 0, new_field.output
    assert "has no field 'secrt_key' yet; did you mean 'secret_key'?" in new_field.output
    quiet = vault(cli_app, "put", "payroll", "--yes", input='{"iban": "not-a-typo-6c7d"}')
    assert quiet.exit_code == 0 and "note:" not in quiet.output


# -- misspelt settings -----------------------------------------------------------------------


def _setting_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "flask_vault.settings" and r.levelno == logging.WARNING]


def test_a_misspelt_vault_key_in_app_config_is_warned_once_with_the_closest_setting(
    base_config: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_vault.settings")
    app = Flask("guidance")
    app.config.update(
        base_config, VAULT_ENVIROMENT="production", VAULT_ADDR="http://127.0.0.1:1", VAULT_HEALTH_URL=None
    )
    FlaskVault(app)
    said = _setting_warnings(caplog)
    assert len(said) == 2 and all("\n" not in line for line in said)
    assert "app.config['VAULT_ENVIROMENT'] is not a flask-vault setting" in said[0]
    assert "did you mean VAULT_ENVIRONMENT?" in said[0] and "production" not in said[0]
    assert "app.config['VAULT_ADDR'] is ignored" in said[1] and "the setting is VAULT_URL" in said[1]


def test_flask_vault_status_says_a_misspelt_setting_on_stderr_without_logging_set_up(
    openbao_server: OpenBaoServer, tmp_path: Path
) -> None:
    folder = write_fresh_app(tmp_path / "project")
    env = clean_env(
        folder, VAULT_URL=openbao_server.url, VAULT_TOKEN=openbao_server.root_token, VAULT_ENVIROMENT="production"
    )
    status = run_flask(folder, env, "vault", "status", timeout=60)
    said = [line for line in status.stderr.splitlines() if line.startswith("warning: ")]
    assert said == [
        "warning: The environment variable 'VAULT_ENVIROMENT' is not a flask-vault setting and is ignored;"
        " did you mean VAULT_ENVIRONMENT?"
    ]
    assert openbao_server.root_token not in status.stdout + status.stderr


def test_only_environment_variables_close_to_a_setting_are_warned_about(
    base_config: dict[str, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="flask_vault.settings")
    for name in ("VAULT_FORMAT", "VAULT_CLIENT_TIMEOUT", "VAULT_LOG_LEVEL", "VAULT_WRAP_TTL", "VAULT_ENV", "BAO_ADDR"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("VAULT_PATH_PREFX", "other-app")
    app = Flask("guidance")
    app.config.update(base_config, VAULT_HEALTH_URL=None)
    FlaskVault(app)
    assert _setting_warnings(caplog) == [
        "The environment variable 'VAULT_PATH_PREFX' is not a flask-vault setting and is ignored;"
        " did you mean VAULT_PATH_PREFIX?"
    ]


def test_correct_settings_are_not_warned_about(base_config: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="flask_vault.settings")
    app = Flask("guidance")
    app.config.update(base_config, VAULT_HEALTH_URL=None, VAULT_CACHE_TTL=60)
    FlaskVault(app)
    assert _setting_warnings(caplog) == []


# -- the plaintext-backup warning: only when a file was written -------------------------------


def test_no_plaintext_warning_from_a_command_that_wrote_no_backup(
    cli_app: Flask, base_config: dict, vault_root: hvac.Client, env: str, tmp_path: Path, backup_dir: Path
) -> None:
    missing = vault(cli_app, "backup", "flsk")
    assert missing.exit_code == 1 and warnings(missing.output) == []
    created = vault(cli_app, "put", "brand-new", "--yes", input='{"k": "v-9a8b7c6d"}')
    assert created.exit_code == 0 and warnings(created.output) == []
    reader = make_cli_app(
        base_config,
        env,
        tmp_path / "reader",
        VAULT_TOKEN=token_for(vault_root, render_policy("app", prefix=PREFIX, environment=env)),
    )
    refused = vault(reader, "rotate", "--secret", "flask", "--yes")
    assert refused.exit_code == 1 and "'update' capability" in refused.output
    assert warnings(refused.output) == []
    assert not backup_files(backup_dir) and not backup_files(tmp_path / "reader" / "instance" / "vault-backups")
    rotated = vault(cli_app, "rotate", "--secret", "flask", "--yes")
    assert rotated.exit_code == 0 and len(warnings(rotated.output)) == 1 and len(backup_files(backup_dir)) == 1


# -- nothing to change: nothing written --------------------------------------------------------


def test_restoring_a_backup_of_the_current_data_writes_nothing(
    cli_app: Flask, vault_root: hvac.Client, env: str, backup_dir: Path, audit_log: AuditCapture
) -> None:
    assert vault(cli_app, "backup", "flask").exit_code == 0
    [backup] = backup_files(backup_dir)
    before = current(vault_root, env, "flask")
    audit_log.records.clear()
    restored = vault(cli_app, "restore", str(backup), "--yes")
    assert restored.exit_code == 0, restored.output
    assert restored.output == (
        f"unchanged secret/{PREFIX}/{env}/flask: version 1 already holds the data of backed-up version 1;"
        " nothing was written\n"
    )
    assert current(vault_root, env, "flask") == before
    assert backup_files(backup_dir) == [backup]
    operations = {fields["operation"] for fields in audit_log.fields()}
    assert not operations & {"restore", "write", "backup"}, operations


def test_put_or_rollback_of_the_data_already_there_writes_nothing(
    cli_app: Flask, vault_root: hvac.Client, env: str, backup_dir: Path
) -> None:
    version, data = current(vault_root, env, "flask")
    same = vault(cli_app, "put", "flask", "--yes", input=json.dumps(data))
    assert same.exit_code == 0 and same.output.startswith(f"unchanged secret/{PREFIX}/{env}/flask: version 1")
    back = vault(cli_app, "rollback", "flask", "--version", "1", "--yes")
    assert back.exit_code == 0 and back.output.startswith("unchanged ")
    assert current(vault_root, env, "flask") == (version, data) and not backup_files(backup_dir)


# -- put of a new secret --------------------------------------------------------------------------


def test_put_of_a_new_secret_says_it_was_created_with_its_version(cli_app: Flask, env: str) -> None:
    created = vault(cli_app, "put", "stripe", "--yes", input='{"secret": "sk-test-0f1e2d3c"}')
    assert created.exit_code == 0, created.output
    assert created.output == f"wrote secret/{PREFIX}/{env}/stripe (secret): created, version 1\n"
