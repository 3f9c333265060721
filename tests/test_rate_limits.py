"""Rate-limit quotas (HTTP 429) against a real OpenBao server: the transport waits out the
``Retry-After`` Vault sends (plus a random spread), holds back the rest of the process's
requests to that part of Vault meanwhile, retries a refused login, and the cache serves
what it has while Vault says no.

Every HTTP attempt is recorded where it leaves the process (``HTTPAdapter.send``), so the
tests see the 429s Vault's audit device never shows (quotas refuse before auditing).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import hvac
import pytest
import requests
import requests.adapters
from flask import Flask

from flask_vault import FlaskVault, VaultClient, VaultSettings, get_secret
from flask_vault.devserver import OpenBaoServer
from flask_vault.vault.translate import parse_retry_after
from tests.conftest import FLASK_SECRET, PREFIX

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Attempt:
    at: float
    method: str
    path: str
    status: int
    retry_after: str | None


@contextmanager
def attempts_to(server: OpenBaoServer) -> Iterator[list[Attempt]]:
    """Every HTTP request this process sends to ``server`` while the block runs, with its answer."""
    seen: list[Attempt] = []
    original = requests.adapters.HTTPAdapter.send
    port = f":{server.port}/"

    def send(self: Any, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = original(self, request, *args, **kwargs)
        url = request.url or ""
        if port in url:
            path = url.split(port, 1)[1].split("?", 1)[0]
            seen.append(
                Attempt(
                    time.monotonic(),
                    request.method or "",
                    path,
                    response.status_code,
                    response.headers.get("Retry-After"),
                )
            )
        return response

    requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        requests.adapters.HTTPAdapter.send = original  # type: ignore[method-assign]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenBaoServer]:
    with OpenBaoServer() as server:
        root = server.root_client()
        root.adapter.post("/v1/sys/quotas/config", json={"enable_rate_limit_response_headers": True})
        root.sys.enable_auth_method("approle")
        yield server


@pytest.fixture(scope="module")
def root(server: OpenBaoServer) -> hvac.Client:
    return server.root_client()


@pytest.fixture
def env(root: hvac.Client) -> str:
    """A fresh environment holding the flask secret."""
    name = f"rl-{uuid.uuid4().hex[:8]}"
    root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{name}/flask", FLASK_SECRET)
    root.secrets.kv.v2.create_or_update_secret(f"{PREFIX}/{name}/other", {"value": "x"})
    return name


@contextmanager
def quota(root: hvac.Client, path: str, *, rate: float = 1, block: str | None = None) -> Iterator[None]:
    name = f"q-{uuid.uuid4().hex[:8]}"
    body: dict[str, Any] = {"path": path, "rate": rate, "interval": "1s"}
    if block:
        body["block_interval"] = block
    root.adapter.post(f"/v1/sys/quotas/rate-limit/{name}", json=body)
    try:
        yield
    finally:
        root.adapter.delete(f"/v1/sys/quotas/rate-limit/{name}")


def client_for(server: OpenBaoServer, env: str, **config: Any) -> VaultClient:
    settings = VaultSettings.load(
        {
            "VAULT_URL": server.url,
            "VAULT_TOKEN": server.root_token,
            "VAULT_PATH_PREFIX": PREFIX,
            "VAULT_ENVIRONMENT": env,
            **config,
        },
        {},
    )
    return VaultClient(settings=settings)


def test_a_429_is_sent_again_only_after_its_retry_after_and_counted(
    server: OpenBaoServer, root: hvac.Client, env: str
) -> None:
    client = client_for(server, env)
    with quota(root, f"secret/data/{PREFIX}/{env}/*", block="2s"), attempts_to(server) as sent:
        first = client.get_secret("flask", "secret_key", use_cache=False)
        second = client.get_secret("flask", "secret_key", use_cache=False)  # over the quota: 429, then waits
    assert first == second == FLASK_SECRET["secret_key"]
    limited = [a for a in sent if a.status == 429]
    assert limited, "the quota never answered 429: the test proves nothing"
    for refused in limited:
        after = [a for a in sent if a.at > refused.at]
        assert after, "a 429 was never sent again"
        assert refused.retry_after is not None
        assert after[0].at - refused.at >= float(refused.retry_after)  # never before Vault said
    assert sent[-1].status == 200
    assert client.metrics.retries() == {"rate-limited": len(limited)}
    assert client.metrics.count("read", "ok") == 2


def test_other_requests_to_the_same_mount_wait_for_the_same_moment(
    server: OpenBaoServer, root: hvac.Client, env: str
) -> None:
    client = client_for(server, env)
    with quota(root, f"secret/data/{PREFIX}/{env}/*", block="2s"), attempts_to(server) as sent:
        client.get_secret("flask", use_cache=False)
        results: dict[str, Any] = {}
        first_429 = threading.Event()

        def read(name: str) -> None:
            results[name] = client.get_secret(name, use_cache=False)

        def watch() -> None:
            while not any(a.status == 429 for a in sent):
                time.sleep(0.01)
            first_429.set()

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        flask_reader = threading.Thread(target=read, args=("flask",))
        flask_reader.start()
        assert first_429.wait(10), "the quota never answered 429"
        read("other")  # sent while the 429's Retry-After runs: held back, not sent
        flask_reader.join(15)
    assert results == {"flask": FLASK_SECRET, "other": {"value": "x"}}
    refused = next(a for a in sent if a.status == 429)
    assert refused.retry_after is not None
    during = [a for a in sent if refused.at < a.at < refused.at + float(refused.retry_after)]
    assert during == [], "a request reached Vault before the Retry-After of a 429 had passed"


def test_a_login_refused_by_a_quota_is_sent_again_and_succeeds(
    server: OpenBaoServer, root: hvac.Client, env: str
) -> None:
    role = f"role-{uuid.uuid4().hex[:8]}"
    root.auth.approle.create_or_update_approle(role, token_ttl="60s")
    role_id = root.auth.approle.read_role_id(role)["data"]["role_id"]
    secret_id = root.auth.approle.generate_secret_id(role)["data"]["secret_id"]
    clients = [
        client_for(server, env, VAULT_TOKEN=None, VAULT_ROLE_ID=role_id, VAULT_SECRET_ID=secret_id) for _ in range(2)
    ]
    with quota(root, "auth/approle/login", block="1s"), attempts_to(server) as sent:
        for client in clients:
            client.keeper.start()
    logins = [a for a in sent if a.path == "v1/auth/approle/login"]
    assert [a.status for a in logins][-1] == 200
    assert any(a.status == 429 for a in logins), "the login quota never answered 429"
    assert all(client.keeper.stats.logins == 1 and client.token for client in clients)
    assert clients[1].metrics.retries()["rate-limited"] >= 1
    for client in clients:
        client.keeper.close()


def test_while_vault_rate_limits_requests_are_served_from_the_cache(
    server: OpenBaoServer, root: hvac.Client, env: str
) -> None:
    app = Flask("rate_limited")
    app.config.update(
        VAULT_URL=server.url,
        VAULT_TOKEN=server.root_token,
        VAULT_PATH_PREFIX=PREFIX,
        VAULT_ENVIRONMENT=env,
        VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"},
        VAULT_CACHE_TTL=0.5,
        VAULT_MAX_RETRIES=1,
    )

    @app.get("/key")
    def key() -> str:
        value: str = get_secret("flask", "secret_key")
        return value

    vault = FlaskVault(app)
    web = app.test_client()
    statuses: list[tuple[int, str]] = []
    with quota(root, f"secret/data/{PREFIX}/{env}/*", block="2s"), attempts_to(server) as sent:
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            response = web.get("/key")
            statuses.append((response.status_code, response.get_data(as_text=True)))
            time.sleep(0.02)
    with app.app_context():
        stats = vault.stats()
    assert any(a.status == 429 for a in sent), "the quota never answered 429"
    assert set(statuses) == {(200, FLASK_SECRET["secret_key"])}
    assert stats["retries"].get("rate-limited", 0) >= 1
    cache = stats["cache"]
    assert cache["stale_serves"] + cache["served_while_refreshing"] > 0


def test_retry_after_is_read_as_seconds_or_as_an_http_date() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30
    earlier = format_datetime(datetime.now(timezone.utc) - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier) == 0.0
