"""Database credentials taken at connect time, against the machine's PostgreSQL with a role
whose login checks the password (see pg_support.password_required).

A rotation done elsewhere (another app instance's `flask vault rotate`, with its own cache)
changes the role's password; this app's cache still holds the old one, so its next new
connection is refused once, reads the secret through and logs in with the new password.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest
import sqlalchemy
from core_support import FakeClock, poll
from flask import Flask
from pg_support import admin_connection, database_secret, password_required, terminate, throwaway_role
from rotation_app import build_app, db
from rotation_support import make_cli_app, vault

from flask_vault import FlaskVault, VaultConfigError
from flask_vault.db import DatabaseLogin, KVCredentials, attach_engine, is_login_refused
from flask_vault.state import get_state

pytestmark = pytest.mark.postgres

PREFIX = "store-erp"


@pytest.fixture
def admin() -> Iterator[Any]:
    with admin_connection() as connection:
        yield connection


@pytest.fixture
def role(admin: Any) -> Iterator[tuple[str, str]]:
    with throwaway_role(admin) as created, password_required(admin, created[0]):
        yield created


@pytest.fixture
def env(vault_root: hvac.Client, unique_env: str, role: tuple[str, str]) -> str:
    kv = vault_root.secrets.kv.v2
    kv.create_or_update_secret(f"{PREFIX}/{unique_env}/flask", {"secret_key": "sk-db-tests", "jwt_secret": "jwt-db"})
    kv.create_or_update_secret(f"{PREFIX}/{unique_env}/database", database_secret(*role))
    return unique_env


@pytest.fixture
def config(base_config: dict[str, Any], env: str) -> dict[str, Any]:
    return {**base_config, "VAULT_ENVIRONMENT": env, "VAULT_HEALTH_URL": None}


def url_without_password(role: str) -> str:
    return f"postgresql+psycopg://{role}@127.0.0.1:5432/test"


def reads(app: Flask) -> int:
    return get_state(app).client.metrics.count("read")


def login_of_app(app: Flask, index: int = 0) -> DatabaseLogin:
    databases = get_state(app).databases
    assert databases is not None
    return databases.logins[index]


def rotate_elsewhere(base_config: dict[str, Any], env: str, tmp_path: Path, secret: str = "database") -> None:
    """`flask vault rotate` by another app instance: its own cache, ALTER ROLE and the Vault write."""
    other = make_cli_app(base_config, env, tmp_path)
    result = vault(other, "rotate", "--secret", secret, "--field", "password", "--yes")
    assert result.exit_code == 0, result.output


def password_in_vault(vault_root: hvac.Client, env: str, name: str = "database") -> str:
    data = vault_root.secrets.kv.v2.read_secret_version(f"{PREFIX}/{env}/{name}", raise_on_deleted_version=True)
    return str(data["data"]["data"]["password"])


@pytest.mark.parametrize("order", ["vault-first", "db-first"])
def test_a_rotation_by_another_process_costs_no_failed_query(
    config: dict[str, Any],
    base_config: dict[str, Any],
    env: str,
    role: tuple[str, str],
    admin: Any,
    tmp_path: Path,
    order: str,
) -> None:
    if order == "db-first":
        config["SQLALCHEMY_DATABASE_URI"] = url_without_password(role[0])  # the password comes from Vault
    app = build_app(config, db_first=order == "db-first", name=order.replace("-", "_"), instance=str(tmp_path))
    web = app.test_client()
    assert web.get("/db").get_json() == {"user": role[0]}
    for _round in range(2):
        before = reads(app)
        rotate_elsewhere(base_config, env, tmp_path)
        assert terminate(admin, role[0]) >= 1  # the pool's connection dies; the next one logs in anew
        assert web.get("/db").get_json() == {"user": role[0]}
        assert reads(app) - before == 1  # one read-through found the new password
    status = login_of_app(app).status
    assert (status.state, status.refusals, status.recoveries, status.version) == ("ok", 2, 2, 3)


def test_connections_open_before_a_rotation_keep_working(
    config: dict[str, Any], base_config: dict[str, Any], env: str, role: tuple[str, str], tmp_path: Path
) -> None:
    app = build_app(config, name="held", instance=str(tmp_path))
    with app.app_context(), db.engine.connect() as held:
        assert held.execute(sqlalchemy.text("SELECT current_user")).scalar() == role[0]
        rotate_elsewhere(base_config, env, tmp_path)
        assert held.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
        with db.engine.connect() as fresh:  # the pool opens a second connection, with the new password
            assert fresh.execute(sqlalchemy.text("SELECT current_user")).scalar() == role[0]


def test_each_bind_takes_the_credentials_of_its_own_secret(
    config: dict[str, Any],
    base_config: dict[str, Any],
    vault_root: hvac.Client,
    env: str,
    role: tuple[str, str],
    admin: Any,
    tmp_path: Path,
) -> None:
    with throwaway_role(admin, "fv_reports") as reports, password_required(admin, reports[0]):
        vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/reports-db", database_secret(*reports))
        binds = {
            "VAULT_DATABASE_BINDS": {"reports": "reports-db"},
            "SQLALCHEMY_BINDS": {"reports": {"pool_pre_ping": True}},  # the bind's URL goes into its options
        }
        app = build_app({**config, **binds}, name="binds")

        def users() -> tuple[str, str]:
            with app.app_context():
                query = sqlalchemy.text("SELECT current_user")
                main = db.session.execute(query).scalar()
                other = db.session.execute(query, bind_arguments={"bind": db.engines["reports"]}).scalar()
                db.session.remove()
                return main, other

        assert users() == (role[0], reports[0])
        rotate_elsewhere(base_config, env, tmp_path)
        rotate_elsewhere(base_config, env, tmp_path, "reports-db")
        terminate(admin, role[0])
        terminate(admin, reports[0])
        assert users() == (role[0], reports[0])
        with app.app_context():
            keys = sorted(login.provider.key for login in get_state(app).databases.logins)  # type: ignore[union-attr]
        assert keys == ["SQLALCHEMY_BINDS['reports']", "SQLALCHEMY_DATABASE_URI"]


def test_a_plain_engine_takes_its_credentials_from_vault_with_one_call(
    config: dict[str, Any], base_config: dict[str, Any], env: str, role: tuple[str, str], admin: Any, tmp_path: Path
) -> None:
    app = Flask("plain_engine")
    app.config.update(config)
    extension = FlaskVault(app)
    engine = sqlalchemy.create_engine(url_without_password(role[0]), pool_pre_ping=True)
    with pytest.raises(sqlalchemy.exc.OperationalError):  # no password in the URL: the role's login is refused
        engine.connect().close()
    extension.attach_engine(engine, app=app)
    assert extension.attach_engine(engine, app=app) is login_of_app(app)  # a second call changes nothing

    def user() -> str:
        with engine.connect() as connection:
            return str(connection.execute(sqlalchemy.text("SELECT current_user")).scalar())

    assert user() == role[0]
    rotate_elsewhere(base_config, env, tmp_path)
    terminate(admin, role[0])
    assert user() == role[0]
    engine.dispose()


def test_an_unreachable_database_costs_no_vault_read(config: dict[str, Any], role: tuple[str, str]) -> None:
    app = Flask("unreachable_db")
    app.config.update(config)
    extension = FlaskVault(app)
    engine = sqlalchemy.create_engine(f"postgresql+psycopg://{role[0]}@127.0.0.1:1/test?connect_timeout=2")
    extension.attach_engine(engine, app=app)
    before = reads(app)
    for _ in range(5):
        with pytest.raises(sqlalchemy.exc.OperationalError):
            engine.connect().close()
    assert reads(app) == before
    assert login_of_app(app).status.refusals == 0


def test_a_wrong_password_in_vault_keeps_the_last_login_that_worked_and_says_so(
    config: dict[str, Any],
    vault_root: hvac.Client,
    env: str,
    role: tuple[str, str],
    admin: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = build_app({**config, "VAULT_CACHE_TTL": 0}, name="wrong_password", instance=str(tmp_path))
    web = app.test_client()
    assert web.get("/db").status_code == 200
    wrong = "wrong-password-" + "x" * 20
    vault_root.secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{env}/database", database_secret(role[0], wrong)
    )  # Vault only: the role keeps its password
    caplog.set_level(logging.INFO, logger="flask_vault")
    terminate(admin, role[0])
    assert web.get("/db").get_json() == {"user": role[0]}
    status = login_of_app(app).status
    assert (status.state, status.version, status.using_previous) == ("refused", 2, True)
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "SQLALCHEMY_DATABASE_URI" in line and f"secret/{PREFIX}/{env}/database" in line and "version 2" in line
    assert wrong not in caplog.text and role[1] not in caplog.text


def test_refused_logins_read_the_secret_at_most_once_per_interval(
    config: dict[str, Any], vault_root: hvac.Client, env: str, role: tuple[str, str]
) -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{env}/database", database_secret(role[0], "wrong-from-the-start-0123456789")
    )
    app = Flask("always_refused")
    app.config.update(config)
    extension = FlaskVault(app)
    engine = sqlalchemy.create_engine(url_without_password(role[0]))
    login = extension.attach_engine(engine, app=app)
    assert isinstance(login.provider, KVCredentials)
    clock = FakeClock()
    login.provider.reread.clock, login.provider.reread.sleep = clock, clock.advance  # waiting moves the clock
    before = reads(app)
    for _ in range(20):
        with pytest.raises(sqlalchemy.exc.OperationalError):
            engine.connect().close()
    # One read-through per refused login here, but never two within an interval (1 s).
    assert reads(app) - before == 20 and clock.now - 1000.0 == pytest.approx(19.0)
    assert (login.status.state, login.status.using_previous, login.status.refusals) == ("refused", False, 20)


def test_an_engine_without_a_password_keyword_is_refused_clearly(config: dict[str, Any]) -> None:
    app = Flask("sqlite_engine")
    app.config.update(config)
    extension = FlaskVault(app)
    with pytest.raises(VaultConfigError, match="does not take a user name and password"):
        extension.attach_engine(sqlalchemy.create_engine("sqlite://"), app=app)


def test_an_engine_attached_elsewhere_is_not_taken_over(config: dict[str, Any], role: tuple[str, str]) -> None:
    app = Flask("taken")
    app.config.update(config)
    extension = FlaskVault(app)
    engine = sqlalchemy.create_engine(url_without_password(role[0]))
    client = get_state(app).client
    attach_engine(engine, KVCredentials(client, "database", key="OTHER"))
    with pytest.raises(RuntimeError, match="already takes its credentials"):
        extension.attach_engine(engine, app=app)


def test_refused_logins_are_told_apart_from_other_connection_errors(role: tuple[str, str]) -> None:
    psycopg = pytest.importorskip("psycopg")
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(host="127.0.0.1", user=role[0], password="nope", dbname="test", connect_timeout=3)
    with pytest.raises(psycopg.OperationalError) as unreachable:
        psycopg.connect(host="127.0.0.1", port=1, user=role[0], password="nope", dbname="test", connect_timeout=3)
    assert is_login_refused(refused.value) and not is_login_refused(unreachable.value)


def next_report(web: Any, after: str) -> tuple[Any, Any]:
    """The first /health/vault report probed after the one of time ``after``."""

    def probed_since() -> Any:
        response = web.get("/health/vault")
        body = response.get_json()
        return (response, body) if body["checks"]["vault:database"][0]["time"] != after else None

    result: tuple[Any, Any] = poll(probed_since, timeout=10, interval=0.1)
    return result


def test_a_wrong_password_in_vault_fails_the_database_check_within_one_health_window(
    config: dict[str, Any],
    vault_root: hvac.Client,
    env: str,
    role: tuple[str, str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {**config, "VAULT_HEALTH_URL": "/health/vault", "VAULT_HEALTH_CACHE_SECONDS": 2}
    settings["VAULT_HEALTH_DETAILS"] = True
    app = build_app(settings, name="db_health", instance=str(tmp_path))
    web = app.test_client()
    assert web.get("/db").status_code == 200
    first = web.get("/health/vault")
    assert first.status_code == 200
    [item] = first.get_json()["checks"]["vault:database"]
    assert (item["status"], item["state"], item["componentId"]) == ("pass", "ok", "SQLALCHEMY_DATABASE_URI")

    wrong = "wrong-in-vault-" + "y" * 20
    caplog.set_level(logging.INFO, logger="flask_vault")
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/database", database_secret(role[0], wrong))

    response, body = next_report(web, item["time"])
    assert response.status_code == 503 and body["status"] == "fail"
    [failed] = body["checks"]["vault:database"]
    path = f"secret/{PREFIX}/{env}/database"
    assert (failed["status"], failed["state"], failed["path"], failed["version"]) == ("fail", "refused", path, 2)
    assert "SQLALCHEMY_DATABASE_URI" in body["output"] and path in body["output"]
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert "SQLALCHEMY_DATABASE_URI" in line and path in line
    assert wrong not in caplog.text + response.get_data(as_text=True)
    assert web.get("/db").get_json() == {"user": role[0]}  # queries go on with the pooled connection
    status = app.test_cli_runner().invoke(args=["vault", "status"])
    assert status.exit_code == 2
    assert f"database fail SQLALCHEMY_DATABASE_URI: refused {path} v2 - The database refuses" in status.output
    assert wrong not in status.output

    latest = web.get("/health/vault").get_json()["checks"]["vault:database"][0]["time"]  # the status command's
    vault_root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{env}/database", database_secret(*role))
    response, body = next_report(web, latest)
    assert response.status_code == 200 and body["checks"]["vault:database"][0]["state"] == "ok"
