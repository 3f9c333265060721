"""/health/vault and ``flask vault status`` (the audit trail and ``vault.stats()`` have
test_audit.py and test_metrics.py).

Real OpenBao servers for what they can show (healthy, sealed, stopped, a refused token,
AppRole logins); ``requests_mock`` for the health answers a single server won't give
(429, 472, 473, 501, malformed bodies) and for counting the probes. Every health body,
CLI output and audit record produced here is collected and, at the end, searched for
the seeded secret values and every token, accessor and credential used.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hvac
import pytest
import requests
import requests_mock
from core_support import FakeClock, poll, read_policy, running, token_with_policy
from flask import Flask
from observe_support import AuditCapture, Shown, approle_login, capturing_audit, health_answer, new_app

from flask_vault import FlaskVault, VaultClient
from flask_vault.devserver import PersistentOpenBaoServer
from flask_vault.observe.audit import accessor_hash
from tests.conftest import DATABASE_SECRET, ENVIRONMENT, FLASK_SECRET, PREFIX

CHECKS = ("vault:server", "vault:login", "vault:secrets", "vault:cache")
STATUS_ONLY = {name: [{"status": "pass"}] for name in CHECKS}

# -- what must never appear, and everything that was shown --------------------------------

#: Every health body, CLI output, audit record and metrics page produced here, and what must never be in
#: them: the seeded secret values and credentials (tests add the tokens, accessors and ids they create).
SHOWN = Shown()


@pytest.fixture(scope="module")
def audit_log() -> Iterator[AuditCapture]:
    with capturing_audit(SHOWN) as handler:
        yield handler


@pytest.fixture(autouse=True)
def _keep_the_audit_trail(audit_log: AuditCapture, openbao_server: Any) -> None:
    """Every test in this module runs with the audit trail on and collected."""
    SHOWN.forbidden.add(openbao_server.root_token)


def health(app: Flask, headers: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    return health_answer(app, SHOWN, headers)


def status_cli(app: Flask, *args: str) -> Any:
    result = app.test_cli_runner().invoke(args=["vault", "status", *args])
    SHOWN.add("cli", result.output)
    return result


def check(body: dict[str, Any], name: str) -> dict[str, Any]:
    items = body["checks"][name]
    assert len(items) == 1
    item: dict[str, Any] = items[0]
    return item


def secrets_by_key(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["componentId"]: item for item in body["checks"]["vault:secrets"]}


# -- a healthy server -------------------------------------------------------------------------


def test_healthy_vault_passes_and_shows_only_statuses_by_default(app: Flask, vault: FlaskVault) -> None:
    response, body = health(app)
    assert response.status_code == 200
    assert response.mimetype == "application/health+json"
    assert response.headers["Cache-Control"] == "max-age=5"
    assert body == {"status": "pass", "checks": STATUS_ONLY}


def test_details_setting_shows_server_login_secrets_and_cache_in_the_draft_shape(
    base_config: dict[str, Any],
) -> None:
    app = new_app(base_config, VAULT_HEALTH_DETAILS=True)
    response, body = health(app)
    assert response.status_code == 200 and body["status"] == "pass"

    server = check(body, "vault:server")
    assert server["status"] == "pass"
    assert server["componentType"] == "datastore"
    assert (server["state"], server["initialized"], server["sealed"], server["standby"]) == (
        "active",
        True,
        False,
        False,
    )
    assert isinstance(server["version"], str) and server["version"]
    assert server["observedUnit"] == "ms" and server["observedValue"] >= 0
    assert server["time"].endswith("Z")

    login = check(body, "vault:login")
    assert login["status"] == "pass" and login["authenticated"] is True and login["method"] == "token"
    assert login["expires"] is False  # the dev root token has no TTL

    secrets = secrets_by_key(body)
    assert set(secrets) == {"SECRET_KEY", "JWT_SECRET_KEY", "SQLALCHEMY_DATABASE_URI"}
    for key, item in secrets.items():
        assert item["status"] == "pass" and item["origin"] == "vault", key
        assert isinstance(item["version"], int) and item["version"] >= 1
        assert item["observedUnit"] == "s" and item["observedValue"] >= 0
    assert secrets["SECRET_KEY"]["path"] == f"secret/{PREFIX}/{ENVIRONMENT}/flask"
    assert secrets["SECRET_KEY"]["field"] == "secret_key"

    cache = check(body, "vault:cache")
    assert cache["status"] == "pass"
    assert cache["misses"] >= 2 and cache["staleServes"] == 0 and cache["refreshFailures"] == 0
    assert "hits" in cache


def test_details_need_the_bearer_token_compared_in_constant_time(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bearer = f"health-bearer-{uuid.uuid4().hex}"
    SHOWN.forbidden.add(bearer)
    app = new_app(base_config, VAULT_HEALTH_TOKEN=bearer)
    compared: list[bool] = []
    import flask_vault.health.view as health_module

    real_compare = health_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(True)
        return real_compare(a, b)

    monkeypatch.setattr(health_module.hmac, "compare_digest", spy)

    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {bearer}"}):
        response, body = health(app, headers)
        assert body == {"status": "pass", "checks": STATUS_ONLY}, headers
        assert response.headers["Cache-Control"] == "max-age=5"
        assert response.headers["Vary"] == "Authorization"

    response, body = health(app, {"Authorization": f"Bearer {bearer}"})
    assert body["checks"]["vault:server"][0]["state"] == "active"
    assert "SECRET_KEY" in secrets_by_key(body)
    assert response.headers["Cache-Control"] == "private, max-age=5"  # never kept by a shared cache
    assert compared  # the token was checked with hmac.compare_digest


def test_login_check_reports_the_method_and_the_token_ttl_left(
    base_config: dict[str, Any], vault_root: hvac.Client
) -> None:
    token = token_with_policy(vault_root, read_policy("secret", f"{PREFIX}/{ENVIRONMENT}/*"), ttl="1h")
    SHOWN.forbidden.add(token)
    app = new_app(base_config, VAULT_TOKEN=token, VAULT_HEALTH_DETAILS=True)
    _, body = health(app)
    login = check(body, "vault:login")
    assert login["status"] == "pass" and login["method"] == "token"
    assert login["observedUnit"] == "s" and 3000 < login["observedValue"] <= 3600
    assert login["renewable"] is True
    assert "default" in login["policies"] and any(p.startswith("core-test-") for p in login["policies"])
    status = status_cli(app)
    assert "policies=" in status.output and "core-test-" in status.output


def test_a_needed_secret_without_any_value_fails_with_503(base_config: dict[str, Any]) -> None:
    app = new_app(
        base_config,
        VAULT_FAIL_FAST=False,
        VAULT_FALLBACK_ENV=False,
        VAULT_HEALTH_DETAILS=True,
        VAULT_SECRETS={"SECRET_KEY": "flask#secret_key", "PAYMENTS_KEY": "payments-missing#stripe"},
    )
    response, body = health(app)
    assert response.status_code == 503 and body["status"] == "fail"
    secrets = secrets_by_key(body)
    assert secrets["SECRET_KEY"]["status"] == "pass"
    assert (secrets["PAYMENTS_KEY"]["status"], secrets["PAYMENTS_KEY"]["origin"]) == ("fail", "missing")
    assert "PAYMENTS_KEY" in body["output"]
    assert check(body, "vault:server")["status"] == "pass"


def test_a_key_served_from_the_environment_fallback_warns(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    value = f"stripe-from-env-{uuid.uuid4().hex}"
    SHOWN.forbidden.add(value)
    monkeypatch.setenv("STRIPE_KEY", value)
    app = new_app(
        base_config,
        VAULT_HEALTH_DETAILS=True,
        VAULT_SECRETS={"SECRET_KEY": "flask#secret_key", "STRIPE_KEY": "payments-missing#stripe"},
    )
    assert app.config["STRIPE_KEY"] == value
    response, body = health(app)
    assert response.status_code == 200 and body["status"] == "warn"
    stripe = secrets_by_key(body)["STRIPE_KEY"]
    assert (stripe["status"], stripe["origin"], stripe["envVar"]) == ("warn", "env", "STRIPE_KEY")


def test_a_refused_token_fails_even_when_every_secret_has_a_fallback(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bogus = f"canary-bogus-{uuid.uuid4().hex}"
    SHOWN.forbidden.add(bogus)
    for name in ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL"):
        monkeypatch.setenv(name, f"fallback-{name.lower()}")
    app = new_app(base_config, VAULT_TOKEN=bogus, VAULT_HEALTH_DETAILS=True, VAULT_MAX_RETRIES=0)
    response, body = health(app)
    assert response.status_code == 503 and body["status"] == "fail"
    login = check(body, "vault:login")
    assert login["status"] == "fail" and login["authenticated"] is False
    assert check(body, "vault:server")["status"] == "pass"
    assert {item["origin"] for item in body["checks"]["vault:secrets"]} == {"env"}


def test_a_token_without_the_default_policy_that_reads_its_secrets_passes(
    base_config: dict[str, Any], vault_root: hvac.Client
) -> None:
    # lookup-self needs the default policy; Vault's 403 alone can't tell "dead" from "not allowed".
    token = token_with_policy(vault_root, read_policy("secret", f"{PREFIX}/{ENVIRONMENT}/*"), default_policy=False)
    SHOWN.forbidden.add(token)
    app = new_app(base_config, VAULT_TOKEN=token, VAULT_HEALTH_DETAILS=True)
    response, body = health(app)
    assert response.status_code == 200 and body["status"] == "pass"
    assert check(body, "vault:login")["authenticated"] is True


# -- a list of checks ------------------------------------------------------------------------


def test_a_check_added_to_the_list_is_combined_into_the_status_and_shown_in_body_and_cli(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from flask_vault.health import checks
    from flask_vault.health.report import HealthCheck, Outcome

    def queue_check(context: checks.HealthContext) -> Outcome:
        item = {
            "componentId": "orders",
            "componentType": "component",
            "status": "fail",
            "observedValue": 75,
            "observedUnit": "s",
            "time": context.time,
            "output": "The order queue has not moved for 75 s.",
            "unused": None,
        }
        return Outcome([item], summary="The order queue is stuck.")

    bearer = f"health-bearer-{uuid.uuid4().hex}"
    SHOWN.forbidden.add(bearer)
    monkeypatch.setattr(checks, "CHECKS", [*checks.CHECKS, HealthCheck("app:queue", queue_check)])
    app = new_app(base_config, VAULT_HEALTH_TOKEN=bearer)
    response, body = health(app)
    assert response.status_code == 503
    assert body == {"status": "fail", "checks": {**STATUS_ONLY, "app:queue": [{"status": "fail"}]}}

    _, body = health(app, {"Authorization": f"Bearer {bearer}"})
    assert list(body["checks"]) == [*CHECKS, "app:queue"]
    assert body["output"] == "The order queue is stuck."
    assert check(body, "app:queue") == {
        "status": "fail",
        "componentId": "orders",
        "componentType": "component",
        "observedValue": 75,
        "observedUnit": "s",
        "time": check(body, "vault:server")["time"],
        "output": "The order queue has not moved for 75 s.",
    }
    result = status_cli(app)
    assert result.exit_code == 2 and result.output.startswith("status: fail - The order queue is stuck.")
    assert "queue    fail orders 1m15s - The order queue has not moved for 75 s." in result.output

    # The same check capped at warn only degrades the app.
    monkeypatch.setattr(checks, "CHECKS", [*checks.CHECKS[:-1], HealthCheck("app:queue", queue_check, "warn")])
    response, body = health(new_app(base_config, VAULT_HEALTH_DETAILS=True))
    assert (response.status_code, body["status"], body["output"]) == (200, "warn", "The order queue is stuck.")
    assert check(body, "app:queue")["status"] == "fail"


# -- flask vault status ------------------------------------------------------------------------


def test_cli_status_prints_the_report_and_exits_0_1_2(
    base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    healthy = new_app(base_config)
    result = status_cli(healthy)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("status: pass")
    assert f"SECRET_KEY: vault secret/{PREFIX}/{ENVIRONMENT}/flask#secret_key v" in result.output
    for line in ("server   pass", "login    pass", "secrets  pass", "cache    pass"):
        assert line in result.output

    as_json = status_cli(healthy, "--json")
    assert as_json.exit_code == 0
    document = json.loads(as_json.output)
    assert document["status"] == "pass" and document["checks"]["vault:server"][0]["state"] == "active"

    monkeypatch.setenv("STRIPE_KEY", "stripe-env-value-for-cli")
    SHOWN.forbidden.add("stripe-env-value-for-cli")
    warn = new_app(base_config, VAULT_SECRETS={"STRIPE_KEY": "payments-missing#stripe"})
    result = status_cli(warn)
    assert result.exit_code == 1 and result.output.startswith("status: warn")
    assert "STRIPE_KEY: env $STRIPE_KEY" in result.output

    failing = new_app(
        base_config, VAULT_FAIL_FAST=False, VAULT_FALLBACK_ENV=False, VAULT_SECRETS={"X_KEY": "absent-secret#x"}
    )
    result = status_cli(failing)
    assert result.exit_code == 2 and result.output.startswith("status: fail")


# -- an AppRole app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def approle(vault_root: hvac.Client) -> dict[str, str]:
    return approle_login(vault_root, SHOWN, "health")


def approle_app(base_config: dict[str, Any], login: dict[str, str], **config: Any) -> Flask:
    without_token = {k: v for k, v in base_config.items() if k != "VAULT_TOKEN"}
    return new_app(without_token, **login, VAULT_HEALTH_DETAILS=True, **config)


def test_an_approle_app_reports_its_login_and_audits_it_with_the_new_tokens_accessor_hash(
    base_config: dict[str, Any], approle: dict[str, str], vault_root: hvac.Client, audit_log: AuditCapture
) -> None:
    audit_log.records.clear()
    app = approle_app(base_config, approle)
    client: VaultClient = app.extensions["vault"].client
    try:
        token = client.token
        assert token
        accessor = vault_root.auth.token.lookup(token)["data"]["accessor"]
        SHOWN.forbidden.update({token, accessor})
        logins = audit_log.fields("login")
        assert [(f["outcome"], f["token_id"]) for f in logins] == [("ok", accessor_hash(accessor))]
        assert {f["token_id"] for f in audit_log.fields("read")} == {accessor_hash(accessor)}

        _, body = health(app)
        assert body["status"] == "pass"
        login = check(body, "vault:login")
        assert (login["method"], login["authenticated"], login["observedUnit"]) == ("approle", True, "s")
        assert 500 < login["observedValue"] <= 600
        with app.app_context():
            assert app.extensions["vault"].health is not None
            assert FlaskVault().stats()["logins"] == 1
        assert status_cli(app).exit_code == 0
    finally:
        client.keeper.close(revoke=False)


def test_a_refused_approle_login_fails_health_even_with_every_secret_from_a_fallback(
    base_config: dict[str, Any], approle: dict[str, str], monkeypatch: pytest.MonkeyPatch, audit_log: AuditCapture
) -> None:
    for name in ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL"):
        monkeypatch.setenv(name, f"fallback-{name.lower()}")
    wrong = f"wrong-secret-id-{uuid.uuid4().hex}"
    SHOWN.forbidden.add(wrong)
    app = approle_app(base_config, {**approle, "VAULT_SECRET_ID": wrong}, VAULT_MAX_RETRIES=0)
    try:
        assert audit_log.fields("login")[-1]["outcome"] != "ok"
        response, body = health(app)
        assert response.status_code == 503 and body["status"] == "fail"
        login = check(body, "vault:login")
        assert (login["status"], login["method"]) == ("fail", "approle")
        assert status_cli(app).exit_code == 2
    finally:
        app.extensions["vault"].client.keeper.close(revoke=False)


@pytest.mark.slow
def test_a_refused_relogin_warns_while_the_token_works_and_an_expired_token_fails_while_vault_is_down(
    base_config: dict[str, Any], approle: dict[str, str], vault_root: hvac.Client
) -> None:
    # The keeper's facts decide here: a secret_id good for one login, a token that cannot outlive 12 s.
    mount, role = approle["VAULT_APPROLE_MOUNT"], f"once-{uuid.uuid4().hex[:6]}"
    policy = f"health-once-{uuid.uuid4().hex[:6]}"
    vault_root.sys.create_or_update_policy(policy, read_policy("secret", f"{PREFIX}/{ENVIRONMENT}/*"))
    vault_root.write(
        f"auth/{mount}/role/{role}", token_ttl="12s", token_max_ttl="12s", token_policies=policy, secret_id_num_uses=1
    )
    role_id = vault_root.read(f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
    secret_id = vault_root.write(f"auth/{mount}/role/{role}/secret-id")["data"]["secret_id"]
    SHOWN.forbidden.update({role_id, secret_id})
    app = approle_app(
        base_config,
        {**approle, "VAULT_ROLE_ID": role_id, "VAULT_SECRET_ID": secret_id},
        VAULT_MAX_RETRIES=0,
        VAULT_TIMEOUT=1,
    )
    state = app.extensions["vault"]
    keeper = state.client.keeper
    try:
        SHOWN.forbidden.add(str(state.client.token))
        poll(lambda: keeper.status()["login_failures"] >= 1, timeout=15)  # the re-login at the max TTL
        report = state.health.report(fresh=True)
        login = report.checks["vault:login"][0]
        assert (report.status, login["status"], login["authenticated"]) == ("warn", "warn", True)
        assert login["output"] == "The token works, but the last login attempt was refused."

        poll(lambda: (keeper.status()["expires_in"] or 1) <= 0, timeout=15)
        url = base_config["VAULT_URL"]
        with requests_mock.Mocker() as mock:
            mock.get(f"{url}/v1/sys/health", exc=requests.exceptions.ConnectionError)
            state.health.report(fresh=True)
            response, body = health(app)
        assert response.status_code == 503 and body["status"] == "fail"
        login = check(body, "vault:login")
        assert (login["status"], login["observedValue"]) == ("fail", 0)
        assert login["output"] == "The token has expired and Vault cannot be asked for a new one."
        assert body["output"] == login["output"]
    finally:
        keeper.close(revoke=False)


# -- Vault answers a single dev server won't give (requests_mock) -----------------------------

LOOKUP_BODY = {
    "data": {"id": "mock-token-id-value", "accessor": "mock-accessor-value", "ttl": 600, "renewable": True},
}
SHOWN.forbidden.update({"mock-token-id-value", "mock-accessor-value"})


@pytest.fixture
def mocked(base_config: dict[str, Any], vault_root: hvac.Client) -> Iterator[tuple[Flask, requests_mock.Mocker, str]]:
    """An app started against the real server, then cut off from it by requests_mock.

    It has a token of its own, so its requests can be told from those of other tests' apps
    whose keepers still run in the background (requests_mock sees every thread's requests).
    """
    token = vault_root.auth.token.create(policies=["root"], ttl="1h")["auth"]["client_token"]
    app = new_app(base_config, VAULT_HEALTH_DETAILS=True, VAULT_MAX_RETRIES=0, VAULT_TOKEN=token)
    url = base_config["VAULT_URL"]
    keeper = app.extensions["vault"].client.keeper  # its background lookup of the given token comes first
    poll(lambda: keeper.status()["token_ttl"] is not None, timeout=10)
    with requests_mock.Mocker() as mock:
        mock.get(f"{url}/v1/auth/token/lookup-self", json=LOOKUP_BODY)
        yield app, mock, url


def calls(mock: requests_mock.Mocker, path: str, *, token: str | None = None) -> int:
    """Requests to ``path`` (with ``token``: only those that carried it)."""
    return sum(
        1 for r in mock.request_history if r.path == path and (token is None or r.headers.get("X-Vault-Token") == token)
    )


@pytest.mark.parametrize(
    ("code", "body", "state"),
    [
        (429, {"initialized": True, "sealed": False, "standby": True, "version": "2.7.2"}, "standby"),
        (472, {"initialized": True, "sealed": False, "standby": False, "version": "2.7.2"}, "dr-secondary"),
        (473, {"initialized": True, "sealed": False, "performance_standby": True}, "performance-standby"),
    ],
)
def test_standby_answers_pass(
    mocked: tuple[Flask, requests_mock.Mocker, str], code: int, body: dict[str, Any], state: str
) -> None:
    app, mock, url = mocked
    mock.get(f"{url}/v1/sys/health", status_code=code, json=body)
    response, report = health(app)
    assert response.status_code == 200 and report["status"] == "pass"
    server = check(report, "vault:server")
    assert (server["status"], server["state"], server["standby"]) == ("pass", state, state != "dr-secondary")
    assert calls(mock, "/v1/auth/token/lookup-self") == 1


@pytest.mark.parametrize(
    ("code", "body", "state"),
    [
        (501, {"initialized": False, "sealed": True, "standby": True}, "not-initialized"),
        (503, {"initialized": True, "sealed": True, "standby": True}, "sealed"),
    ],
)
def test_sealed_or_uninitialized_fail_the_server_check_but_warn_while_secrets_are_served(
    mocked: tuple[Flask, requests_mock.Mocker, str], code: int, body: dict[str, Any], state: str
) -> None:
    app, mock, url = mocked
    mock.get(f"{url}/v1/sys/health", status_code=code, json=body)
    response, report = health(app)
    assert response.status_code == 200 and report["status"] == "warn"
    server = check(report, "vault:server")
    assert (server["status"], server["state"]) == ("fail", state)
    assert check(report, "vault:login")["status"] == "warn"  # not verifiable, not refused
    assert {item["status"] for item in report["checks"]["vault:secrets"]} == {"pass"}  # fresh in the cache
    assert calls(mock, "/v1/auth/token/lookup-self") == 0  # no lookup against a sealed server


@pytest.mark.parametrize(
    ("answer", "server_status"),
    [
        ({"status_code": 200, "text": "<html>proxy</html>"}, "pass"),
        ({"status_code": 200, "text": ""}, "pass"),
        ({"status_code": 200, "json": []}, "pass"),
        ({"status_code": 200, "json": None}, "pass"),
        ({"status_code": 200, "json": {"initialized": "yes", "sealed": [1], "version": {"x": 1}}}, "pass"),
        ({"status_code": 200, "json": {"sealed": True}}, "fail"),
        ({"status_code": 429, "text": "not json"}, "pass"),
        ({"status_code": 503, "text": "\x00\xff garbage"}, "fail"),
        ({"status_code": 500, "json": {"errors": ["boom"]}}, "fail"),
        ({"status_code": 404, "text": "not found"}, "fail"),
        ({"exc": requests.exceptions.ConnectTimeout}, "fail"),
        ({"exc": requests.exceptions.ConnectionError}, "fail"),
        ({"exc": ValueError}, "fail"),
    ],
)
def test_malformed_or_odd_health_answers_keep_the_mapping_and_never_raise(
    mocked: tuple[Flask, requests_mock.Mocker, str], answer: dict[str, Any], server_status: str
) -> None:
    app, mock, url = mocked
    mock.get(f"{url}/v1/sys/health", **answer)
    response, report = health(app)
    assert response.mimetype == "application/health+json"
    assert check(report, "vault:server")["status"] == server_status
    assert report["status"] in ("pass", "warn")  # every secret is still in the fresh cache
    assert response.status_code == 200


def test_a_malformed_token_lookup_answer_never_raises(mocked: tuple[Flask, requests_mock.Mocker, str]) -> None:
    app, mock, url = mocked
    mock.get(f"{url}/v1/sys/health", json={"initialized": True, "sealed": False, "standby": False})
    mock.get(f"{url}/v1/auth/token/lookup-self", text="{not json")
    response, report = health(app)
    assert response.status_code == 200 and report["status"] == "warn"
    assert check(report, "vault:login")["status"] == "warn"


def test_with_several_addresses_an_unreachable_one_is_not_the_whole_story(base_config: dict[str, Any]) -> None:
    real, other = base_config["VAULT_URL"], "http://127.0.0.2:8200"
    app = new_app(base_config, VAULT_URL=f"{real},{other}", VAULT_HEALTH_DETAILS=True)
    with requests_mock.Mocker() as mock:
        mock.get(f"{real}/v1/sys/health", exc=requests.exceptions.ConnectionError)
        mock.get(
            f"{other}/v1/sys/health", json={"initialized": True, "sealed": False, "standby": True}, status_code=429
        )
        mock.get(f"{real}/v1/auth/token/lookup-self", json=LOOKUP_BODY)
        _, body = health(app)
        server = check(body, "vault:server")
        assert (server["status"], server["componentId"], server["state"]) == ("pass", other, "standby")
        assert f"{real} is unreachable" in server["output"]
        assert all("X-Vault-Token" not in r.headers for r in mock.request_history if r.path == "/v1/sys/health")

        mock.get(f"{other}/v1/sys/health", exc=requests.exceptions.ConnectTimeout)
        app.extensions["vault"].health.report(fresh=True)
        _, body = health(app)
        server = check(body, "vault:server")
        assert (server["status"], server["state"]) == ("fail", "unreachable")
        assert "No configured Vault address answers" in server["output"]
        assert body["status"] == "warn"


def test_the_probe_is_cached_one_health_call_and_one_lookup_per_window(
    mocked: tuple[Flask, requests_mock.Mocker, str],
) -> None:
    app, mock, url = mocked
    mock.get(f"{url}/v1/sys/health", json={"initialized": True, "sealed": False, "standby": False})
    monitor = app.extensions["vault"].health
    clock = FakeClock()
    monitor.clock = clock
    token = app.extensions["vault"].client.token

    def lookups() -> int:
        return calls(mock, "/v1/auth/token/lookup-self", token=token)

    def hit(_: int) -> int:
        return int(app.test_client().get("/health/vault").status_code)

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(hit, range(200))) == {200}
    assert (calls(mock, "/v1/sys/health"), lookups()) == (1, 1)

    clock.advance(4.9)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hit, range(50)))
    assert calls(mock, "/v1/sys/health") == 1

    clock.advance(0.2)  # the window (VAULT_HEALTH_CACHE_SECONDS = 5) has passed
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(hit, range(50)))
    assert (calls(mock, "/v1/sys/health"), lookups()) == (2, 2)
    with app.app_context():
        assert app.extensions["vault"].health.probes == 2


def test_one_probe_at_a_time_and_others_get_the_previous_report_meanwhile(
    mocked: tuple[Flask, requests_mock.Mocker, str],
) -> None:
    app, mock, url = mocked
    release = threading.Event()
    entered = threading.Event()
    answers = iter([False, True])

    def slow_health(request: Any, context: Any) -> dict[str, Any]:
        if next(answers):  # the second probe hangs until released
            entered.set()
            release.wait(10)
        return {"initialized": True, "sealed": False, "standby": False}

    mock.get(f"{url}/v1/sys/health", json=slow_health)
    clock = FakeClock()
    app.extensions["vault"].health.clock = clock
    assert health(app)[1]["status"] == "pass"
    clock.advance(10)
    slow = threading.Thread(target=lambda: app.test_client().get("/health/vault"))
    slow.start()
    try:
        assert entered.wait(5)
        started = time.monotonic()
        for _ in range(20):
            response, report = health(app)
            assert response.status_code == 200 and report["status"] == "pass"
        assert time.monotonic() - started < 2  # nobody queued behind the hanging probe
    finally:
        release.set()
        slow.join(10)
    assert calls(mock, "/v1/sys/health") == 2


# -- a real server stopped, sealed and brought back ------------------------------------------


@pytest.fixture(scope="module")
def disk_server() -> Iterator[PersistentOpenBaoServer]:
    server = PersistentOpenBaoServer().start()
    assert server.unseal_key is not None
    SHOWN.forbidden.update({server.root_token, server.unseal_key})
    root = server.root_client()
    root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/flask", FLASK_SECRET)
    root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/database", DATABASE_SECRET)
    root.adapter.close()
    yield server
    server.stop()


@pytest.fixture
def disk_vault(disk_server: PersistentOpenBaoServer) -> PersistentOpenBaoServer:
    return running(disk_server)


def disk_app(server: PersistentOpenBaoServer, **config: Any) -> Flask:
    app = Flask(f"health_disk_{uuid.uuid4().hex[:6]}")
    app.config.update(
        VAULT_URL=server.url,
        VAULT_TOKEN=server.root_token,
        VAULT_PATH_PREFIX=PREFIX,
        VAULT_ENVIRONMENT=ENVIRONMENT,
        VAULT_STARTUP_TIMEOUT=0,
        VAULT_HEALTH_DETAILS=True,
        VAULT_HEALTH_CACHE_SECONDS=0.2,
        VAULT_TIMEOUT=1,
        VAULT_MAX_RETRIES=0,
    )
    app.config.update(config)
    FlaskVault(app)
    return app


def report_when(app: Flask, predicate: Callable[[dict[str, Any]], bool], timeout: float) -> tuple[Any, dict[str, Any]]:
    def attempt() -> tuple[Any, dict[str, Any]] | None:
        response, body = health(app)
        return (response, body) if predicate(body) else None

    result: tuple[Any, dict[str, Any]] = poll(attempt, timeout=timeout)
    return result


@pytest.mark.slow
def test_sealed_vault_fails_the_server_check_warns_overall_then_passes_after_unseal(
    disk_vault: PersistentOpenBaoServer,
) -> None:
    app = disk_app(disk_vault)
    assert health(app)[1]["status"] == "pass"

    disk_vault.seal()
    sealed_at = time.monotonic()
    response, body = report_when(app, lambda b: check(b, "vault:server")["status"] == "fail", timeout=5)
    assert time.monotonic() - sealed_at < 0.2 + 2  # within one cache window (plus slack for a busy machine)
    assert response.status_code == 200 and body["status"] == "warn"
    server = check(body, "vault:server")
    assert (server["state"], server["sealed"], server["initialized"]) == ("sealed", True, True)
    assert check(body, "vault:login")["status"] == "warn"
    assert status_cli(app).exit_code == 1

    disk_vault.unseal()
    disk_vault.wait_active()
    response, body = report_when(app, lambda b: b["status"] == "pass", timeout=10)
    assert response.status_code == 200
    assert status_cli(app).exit_code == 0


@pytest.mark.slow
def test_stopped_vault_warns_within_the_stale_limit_fails_after_it_and_passes_after_restart(
    disk_vault: PersistentOpenBaoServer,
) -> None:
    stale_max_age = 3.0
    app = disk_app(disk_vault, VAULT_STALE_MAX_AGE=stale_max_age, VAULT_CACHE_TTL=1)
    client: VaultClient = app.extensions["vault"].client
    assert health(app)[1]["status"] == "pass"

    for name in ("flask", "database"):
        client.read(name, use_cache=False)  # the stale clock starts now
    read_at = time.monotonic()
    disk_vault.kill()
    stopped_at = time.monotonic()

    response, body = report_when(app, lambda b: check(b, "vault:server")["status"] == "fail", timeout=5)
    assert time.monotonic() - stopped_at < 0.2 + 2
    assert check(body, "vault:server")["state"] == "unreachable"
    assert time.monotonic() - read_at < stale_max_age, "the machine was too slow to see the warn phase"
    assert response.status_code == 200 and body["status"] == "warn"
    assert {item["status"] for item in body["checks"]["vault:secrets"]} <= {"pass", "warn"}

    response, body = report_when(app, lambda b: b["status"] == "fail", timeout=stale_max_age + 5)
    assert time.monotonic() - read_at >= stale_max_age
    assert response.status_code == 503
    for key, item in secrets_by_key(body).items():
        assert (item["status"], item["origin"]) == ("fail", "stale-cache"), key
        assert "VAULT_STALE_MAX_AGE" in item["output"]
    assert "No usable value" in body["output"]
    assert status_cli(app).exit_code == 2

    disk_vault.start()
    disk_vault.wait_active()
    response, body = report_when(app, lambda b: b["status"] == "pass", timeout=15)
    assert response.status_code == 200
    assert check(body, "vault:server")["state"] == "active"


# -- nothing leaks ----------------------------------------------------------------------------


def test_no_secret_value_or_token_in_any_health_body_cli_output_audit_record_or_metric() -> None:
    SHOWN.assert_clean("health", "cli", "audit")
