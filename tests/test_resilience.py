"""Resilience: keep serving when Vault is slow, down or hung; bounded retries.

Real OpenBao servers throughout; requests_mock only for statuses a real server won't
give on demand (429, 412, 5xx) and for redirects to other hosts.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
import requests_mock as rm
from core_support import FakeClock, poll, running
from flask import Flask

from flask_vault import FlaskVault, SecretNotFoundError, VaultClient, VaultError, VaultUnavailableError
from flask_vault.devserver import OpenBaoServer, PersistentOpenBaoServer
from tests.conftest import ENVIRONMENT, FLASK_SECRET, PREFIX
from tests.faults import TcpProxy

SECRETS = {"SECRET_KEY": "flask#secret_key"}


def fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def make_app(url: str, token: str, **config: Any) -> Flask:
    app = Flask("resilience")
    app.config.update(
        VAULT_URL=url,
        VAULT_TOKEN=token,
        VAULT_PATH_PREFIX=PREFIX,
        VAULT_ENVIRONMENT=ENVIRONMENT,
        VAULT_SECRETS=SECRETS,
        VAULT_STARTUP_TIMEOUT=0,
        VAULT_HEALTH_CACHE_SECONDS=0,
        VAULT_TIMEOUT=1,
    )
    app.config.update(config)

    @app.get("/secret")
    def secret() -> dict[str, str]:
        from flask_vault import get_secret

        return {"key": fingerprint(get_secret("flask", "secret_key")), "config": fingerprint(app.config["SECRET_KEY"])}

    return app


# -- a server that can be killed and brought back with its data ------------------------


@pytest.fixture(scope="module")
def persistent_server() -> Iterator[PersistentOpenBaoServer]:
    server = PersistentOpenBaoServer().start()
    server.root_client().secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/flask", FLASK_SECRET)
    yield server
    server.stop()


@pytest.fixture
def running_server(persistent_server: PersistentOpenBaoServer) -> PersistentOpenBaoServer:
    return running(persistent_server)


@pytest.mark.slow
def test_warm_cache_serves_every_request_while_vault_is_down_then_reads_fresh_values(
    running_server: PersistentOpenBaoServer,
) -> None:
    server = running_server
    app = make_app(server.url, server.root_token, VAULT_CACHE_TTL=1)
    FlaskVault(app)
    web = app.test_client()
    assert web.get("/secret").status_code == 200

    server.kill()
    statuses = []
    started = time.monotonic()
    for i in range(200):  # 200 requests paced over 10 s
        statuses.append(web.get("/secret").status_code)
        time.sleep(max(0.0, started + (i + 1) * 0.05 - time.monotonic()))
    assert statuses == [200] * 200

    health = web.get("/health/vault")
    assert health.status_code == 200
    assert health.get_json()["status"] == "warn"

    server.start()
    server.wait_active()
    new_value = "rotated-while-down-1f4e"
    server.root_client().secrets.kv.v2.create_or_update_secret(
        f"{PREFIX}/{ENVIRONMENT}/flask", {**FLASK_SECRET, "secret_key": new_value}
    )
    poll(lambda: web.get("/secret").get_json()["key"] == fingerprint(new_value), timeout=15)
    poll(lambda: web.get("/health/vault").get_json()["status"] == "pass", timeout=15)
    assert app.config["SECRET_KEY"] == new_value
    server.root_client().secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{ENVIRONMENT}/flask", FLASK_SECRET)


@pytest.mark.slow
def test_past_stale_max_age_requests_fail_closed_unless_configured_open(
    running_server: PersistentOpenBaoServer,
) -> None:
    server = running_server
    closed = make_app(server.url, server.root_token, VAULT_CACHE_TTL=0.5, VAULT_STALE_MAX_AGE=1.5)
    opened = make_app(
        server.url, server.root_token, VAULT_CACHE_TTL=0.5, VAULT_STALE_MAX_AGE=1.5, VAULT_FAIL_CLOSED=False
    )
    FlaskVault(closed)
    FlaskVault(opened)
    closed_web, opened_web = closed.test_client(), opened.test_client()
    server.kill()
    try:
        assert closed_web.get("/").status_code == 404  # still served: within the stale limit
        poll(lambda: closed_web.get("/").status_code == 503, timeout=10)
        with closed.app_context(), pytest.raises(VaultUnavailableError):
            closed.extensions["vault"].client.get_secret("flask", "secret_key")
        assert closed_web.get("/health/vault").status_code == 503
        # Fail open: the app keeps its last config values; only direct reads fail.
        assert opened_web.get("/").status_code == 404
        assert opened.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
    finally:
        server.start()
        server.wait_active()
    poll(lambda: closed_web.get("/").status_code == 404, timeout=15)


# -- a server that accepts connections and never answers ---------------------------------


@pytest.fixture
def proxy(openbao_server: OpenBaoServer, seeded: dict[str, Any]) -> Iterator[TcpProxy]:
    proxy = TcpProxy(openbao_server.port)
    yield proxy
    proxy.close()


def test_hung_vault_bounds_each_call_by_its_timeout_and_leaves_warm_requests_fast(
    proxy: TcpProxy, openbao_server: OpenBaoServer
) -> None:
    app = make_app(proxy.url, openbao_server.root_token, VAULT_CACHE_TTL=2, VAULT_TIMEOUT=1)
    vault = FlaskVault(app)
    web = app.test_client()
    assert web.get("/secret").status_code == 200

    proxy.set_mode("hang")
    with app.app_context():
        started = time.monotonic()
        with pytest.raises(VaultUnavailableError, match="did not answer within 1s"):
            vault.client.get_secret("flask", use_cache=False)
        assert time.monotonic() - started < 2.0

    slowest = 0.0
    end = time.monotonic() + 4  # across two TTL windows: refresh-ahead, expiry and the outage
    while time.monotonic() < end:
        started = time.monotonic()
        response = web.get("/secret")
        slowest = max(slowest, time.monotonic() - started)
        assert response.status_code == 200
        time.sleep(0.02)
    assert slowest < 0.5, f"a warm request waited {slowest:.2f}s on the hung server"


# -- single flight and freshness -----------------------------------------------------------


def test_fifty_threads_on_an_expired_entry_cause_exactly_one_read(
    openbao_server: OpenBaoServer, seeded: dict[str, Any]
) -> None:
    clock = FakeClock()
    client = VaultClient(
        openbao_server.url, openbao_server.root_token, ENVIRONMENT, 10, path_prefix=PREFIX, clock=clock
    )
    client.get_secret("flask")
    reads_before = client.cache.stats.reads
    clock.now += 11  # expired
    barrier = threading.Barrier(50)
    results: list[Any] = []

    def reader() -> None:
        barrier.wait()
        results.append(client.get_secret("flask", "secret_key"))

    threads = [threading.Thread(target=reader) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == [FLASK_SECRET["secret_key"]] * 50
    assert client.cache.stats.reads - reads_before == 1


def test_changed_value_is_seen_within_ttl_plus_one_second_and_never_reverts(
    openbao_server: OpenBaoServer, vault_root: hvac.Client, unique_env: str
) -> None:
    path = f"{PREFIX}/{unique_env}/flask"
    vault_root.secrets.kv.v2.create_or_update_secret(path, {"secret_key": "old"})
    client = VaultClient(openbao_server.url, openbao_server.root_token, unique_env, 1, path_prefix=PREFIX)
    client.get_secret("flask")
    seen: list[tuple[float, float, str]] = []  # (read started, read returned, value)
    lock = threading.Lock()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            started = time.monotonic()
            value = client.get_secret("flask", "secret_key")
            with lock:
                seen.append((started, time.monotonic(), value))
            time.sleep(0.005)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    vault_root.secrets.kv.v2.create_or_update_secret(path, {"secret_key": "new"})
    written = time.monotonic()
    poll(lambda: any(v == "new" for _, _, v in list(seen)), timeout=5)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    # "Afterwards" means a read that started once a read had returned the new value: a read
    # that started earlier may still return the old one, and record its time later.
    first_new = min(returned for _, returned, v in seen if v == "new")
    assert first_new - written <= 1 + 1
    later = [v for started, _, v in seen if started > first_new]
    assert later and all(v == "new" for v in later)


# -- retries, redirects, failover, start-up ------------------------------------------------

MOCK_URL = "http://vault.test:8200"
READ = f"{MOCK_URL}/v1/secret/data/dev/flask"
OK_BODY = {"data": {"data": {"secret_key": "v"}, "metadata": {"version": 1}}}


@pytest.fixture
def mocked() -> Iterator[rm.Mocker]:
    with rm.Mocker() as mocker:
        mocker.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
        yield mocker


def mock_client(**kwargs: Any) -> VaultClient:
    return VaultClient(MOCK_URL, "mock-token", "dev", 0, **kwargs)


@pytest.mark.parametrize("status", [429, 412, 500, 502, 503, 504])
def test_transient_statuses_are_retried_then_succeed(mocked: rm.Mocker, status: int) -> None:
    mocked.get(READ, [{"status_code": status, "json": {"errors": []}}, {"json": OK_BODY}])
    assert mock_client().get_secret("flask", "secret_key") == "v"
    assert sum(1 for r in mocked.request_history if r.url.startswith(READ)) == 2


@pytest.mark.parametrize("status", [400, 403, 404, 501])
def test_permanent_statuses_are_not_retried(mocked: rm.Mocker, status: int) -> None:
    mocked.get(READ, status_code=status, json={"errors": ["nope"]})
    with pytest.raises(VaultError):
        mock_client().get_secret("flask")
    assert sum(1 for r in mocked.request_history if r.url.startswith(READ)) == 1


def test_retries_are_bounded_in_count(mocked: rm.Mocker) -> None:
    mocked.get(READ, status_code=503, json={"errors": []})
    started = time.monotonic()
    with pytest.raises(VaultUnavailableError):
        mock_client().get_secret("flask")
    assert sum(1 for r in mocked.request_history if r.url.startswith(READ)) == 1 + 3  # VAULT_MAX_RETRIES
    assert time.monotonic() - started < 5


def test_redirect_to_an_unconfigured_host_is_refused_and_never_gets_the_token(mocked: rm.Mocker) -> None:
    mocked.get(READ, status_code=307, headers={"Location": "http://evil.test:8200/v1/secret/data/dev/flask"})
    evil = mocked.get("http://evil.test:8200/v1/secret/data/dev/flask", json=OK_BODY)
    with pytest.raises(VaultError, match="not configured"):
        mock_client().get_secret("flask")
    assert evil.call_count == 0


def test_one_redirect_to_a_configured_address_is_followed(mocked: rm.Mocker) -> None:
    mocked.get(READ, status_code=307, headers={"Location": "http://vault2.test:8200/v1/secret/data/dev/flask"})
    other = mocked.get("http://vault2.test:8200/v1/secret/data/dev/flask", json=OK_BODY)
    client = VaultClient(f"{MOCK_URL},http://vault2.test:8200", "mock-token", "dev", 0)
    assert client.get_secret("flask", "secret_key") == "v"
    assert other.call_count == 1
    assert other.last_request.headers["X-Vault-Token"] == "mock-token"


def test_a_second_redirect_is_not_followed(mocked: rm.Mocker) -> None:
    mocked.get(READ, status_code=307, headers={"Location": "http://vault2.test:8200/v1/secret/data/dev/flask"})
    mocked.get(
        "http://vault2.test:8200/v1/secret/data/dev/flask",
        status_code=307,
        headers={"Location": f"{READ}"},
    )
    client = VaultClient(f"{MOCK_URL},http://vault2.test:8200", "mock-token", "dev", 0)
    with pytest.raises(VaultError, match="redirected twice"):
        client.get_secret("flask")


def test_fails_over_to_the_next_address_and_remembers_it(openbao_server: OpenBaoServer, seeded: dict[str, Any]) -> None:
    dead = TcpProxy(openbao_server.port, mode="down")
    client = VaultClient(
        f"{dead.url},{openbao_server.url}", openbao_server.root_token, ENVIRONMENT, 0, path_prefix=PREFIX
    )
    assert client.get_secret("flask", "secret_key") == FLASK_SECRET["secret_key"]
    assert client.url == openbao_server.url
    assert client.get_secret("flask", "secret_key") == FLASK_SECRET["secret_key"]


def test_init_app_waits_for_a_vault_that_starts_a_little_later(
    openbao_server: OpenBaoServer, seeded: dict[str, Any]
) -> None:
    proxy = TcpProxy(openbao_server.port, mode="down")
    timer = threading.Timer(1.5, proxy.set_mode, args=("forward",))
    timer.start()
    try:
        app = make_app(proxy.url, openbao_server.root_token, VAULT_STARTUP_TIMEOUT=15)
        started = time.monotonic()
        vault = FlaskVault(app)
        assert app.config["SECRET_KEY"] == FLASK_SECRET["secret_key"]
        assert 1.0 < time.monotonic() - started < 15
        with app.app_context():
            assert vault.sources["SECRET_KEY"].origin == "vault"
    finally:
        timer.cancel()
        proxy.close()


def test_startup_timeout_bounds_the_wait_then_fails_fast(openbao_server: OpenBaoServer) -> None:
    proxy = TcpProxy(openbao_server.port, mode="down")
    app = make_app(proxy.url, "unused-token", VAULT_STARTUP_TIMEOUT=1)
    started = time.monotonic()
    with pytest.raises(VaultUnavailableError, match="SECRET_KEY"):
        FlaskVault(app)
    assert time.monotonic() - started < 6


def test_startup_timeout_then_falls_back_to_the_environment(
    openbao_server: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    proxy = TcpProxy(openbao_server.port, mode="down")
    app = make_app(proxy.url, "unused-token", VAULT_STARTUP_TIMEOUT=1)
    vault = FlaskVault(app)
    assert app.config["SECRET_KEY"] == "from-the-environment"
    with app.app_context():
        assert vault.sources["SECRET_KEY"].origin == "env"


def test_a_404_from_a_standby_for_a_known_secret_is_treated_as_a_failover(mocked: rm.Mocker) -> None:
    clock = FakeClock()
    client = VaultClient(MOCK_URL, "mock-token", "dev", 1, clock=clock)
    mocked.get(READ, json=OK_BODY)
    assert client.get_secret("flask", "secret_key") == "v"
    clock.now += 2  # expired
    mocked.get(READ, status_code=404, json={"errors": []})
    mocked.get(f"{MOCK_URL}/v1/sys/health", status_code=429, json={"standby": True})
    assert client.get_secret("flask", "secret_key") == "v"  # the last good value, not "not found"
    assert client.cache.stats.stale_serves == 1


def test_a_404_from_the_active_node_means_the_secret_is_gone(mocked: rm.Mocker) -> None:
    clock = FakeClock()
    client = VaultClient(MOCK_URL, "mock-token", "dev", 1, clock=clock)
    mocked.get(READ, json=OK_BODY)
    client.get_secret("flask")
    clock.now += 2
    mocked.get(READ, status_code=404, json={"errors": []})
    mocked.get(f"{MOCK_URL}/v1/sys/health", status_code=200, json={"initialized": True, "sealed": False})
    with pytest.raises(SecretNotFoundError):
        client.get_secret("flask")
