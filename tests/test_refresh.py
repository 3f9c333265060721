"""Live refresh before each request (flask_vault.refresh), against the real server: while the
mapped secrets are before their refresh-ahead point a request costs no cache lookup; past
it, the request starts the refresh, and a new version reaches app.config."""

from __future__ import annotations

import time
from typing import Any

import hvac
from core_support import init_vault, poll, write_secret
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import FLASK_SECRET, PREFIX
from tests.faults import TcpProxy


def ping_client(app: Flask) -> FlaskClient:
    """A test client of ``app``, which gets a route GET /ping that does nothing but answer."""

    @app.get("/ping")
    def ping() -> str:
        return "pong"

    return app.test_client()


def test_while_the_mapped_secrets_are_fresh_a_request_looks_up_no_cache_entry(base_config: dict[str, Any]) -> None:
    # No SECRET_KEY: the session interface that follows its versions reads it per request, on purpose.
    secrets = {"JWT_SECRET_KEY": "flask#jwt_secret", "SQLALCHEMY_DATABASE_URI": "database"}
    app, vault = init_vault(base_config, "refresh_quiet", VAULT_CACHE_TTL=300, VAULT_SECRETS=secrets)

    web = ping_client(app)
    with app.app_context():
        stats = vault.client.cache.stats
    assert web.get("/ping").status_code == 200  # the first request touches every mapped secret once
    hits, misses = stats.hits, stats.misses
    for _ in range(50):
        assert web.get("/ping").status_code == 200
    assert (stats.hits, stats.misses) == (hits, misses)


def test_past_the_refresh_point_a_request_refreshes_and_the_new_version_is_applied(
    base_config: dict[str, Any], vault_root: hvac.Client, unique_env: str
) -> None:
    write_secret(vault_root, f"{PREFIX}/{unique_env}/flask", FLASK_SECRET)
    app, vault = init_vault(
        base_config,
        "refresh_due",
        VAULT_ENVIRONMENT=unique_env,
        VAULT_CACHE_TTL=1,
        VAULT_SECRETS={"SECRET_KEY": "flask#secret_key"},
    )

    web = ping_client(app)
    with app.app_context():
        stats = vault.client.cache.stats
    reads = stats.reads
    new_key = "rotated-" + FLASK_SECRET["secret_key"]
    write_secret(vault_root, f"{PREFIX}/{unique_env}/flask", {**FLASK_SECRET, "secret_key": new_key})

    def refreshed() -> bool:
        assert web.get("/ping").status_code == 200
        time.sleep(0.05)
        return app.config["SECRET_KEY"] == new_key

    assert poll(refreshed, timeout=10)
    assert stats.reads > reads


def test_after_clear_cache_the_next_request_reads_the_mapped_secrets(base_config: dict[str, Any]) -> None:
    app, vault = init_vault(base_config, "refresh_cleared", VAULT_CACHE_TTL=300)

    web = ping_client(app)
    assert web.get("/ping").status_code == 200
    with app.app_context():
        stats = vault.client.cache.stats
        reads = stats.reads
        vault.client.clear_cache()
    assert web.get("/ping").status_code == 200
    assert stats.reads == reads + 2  # flask and database, read again before the request ran


def test_during_an_outage_a_request_touches_the_cache_only_when_a_probe_of_vault_is_due(
    base_config: dict[str, Any],
) -> None:
    proxy = TcpProxy(int(base_config["VAULT_URL"].rsplit(":", 1)[1]))
    secrets = {"JWT_SECRET_KEY": "flask#jwt_secret", "SQLALCHEMY_DATABASE_URI": "database"}  # no session reads
    app, vault = init_vault(
        base_config,
        "refresh_outage",
        VAULT_URL=proxy.url,
        VAULT_CACHE_TTL=0.5,
        VAULT_MAX_RETRIES=0,
        VAULT_TIMEOUT=1,
        VAULT_SECRETS=secrets,
    )

    web = ping_client(app)
    with app.app_context():
        cache = vault.client.cache
    proxy.set_mode("down")
    poll(lambda: web.get("/ping").status_code == 200 and cache.outage_since is not None, timeout=10)
    served = cache.stats.stale_serves
    started = time.monotonic()
    for _ in range(50):  # a few milliseconds on a quiet machine: within one or two probe intervals
        assert web.get("/ping").status_code == 200
    spanned = int((time.monotonic() - started) / 0.5) + 2  # probe intervals (0.5 to 1 s) the loop reached into
    allowed = 2 * (spanned + 1)  # two mapped paths, one touch per probe due (+1: a probe under way)
    assert allowed < 50 * 2, "the loop was too slow for the count to tell anything"
    assert cache.stats.stale_serves - served <= allowed  # not 50 x 2: the hook waits for the next probe
    proxy.set_mode("forward")
    proxy.close()
