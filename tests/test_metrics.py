"""``vault.stats()`` and the Prometheus collector (flask_vault.observe.metrics), against the real server.

Request counters come from the audit trail; logins and renewals are counted once, by the
token keeper, and both ``stats()`` and Prometheus read them there.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
from flask import Flask
from observe_support import Shown, approle_login, capturing_audit, get_health, new_app

from flask_vault import FlaskVault, VaultClient
from flask_vault.observe.metrics import VaultCollector, track

SHOWN = Shown()


@pytest.fixture(autouse=True)
def _audit_trail_on(openbao_server: Any) -> Iterator[None]:
    """Every test here runs with the audit trail on, as a deployment that keeps it would."""
    SHOWN.forbidden.add(openbao_server.root_token)
    with capturing_audit(SHOWN):
        yield


@pytest.fixture(scope="module")
def approle(vault_root: hvac.Client) -> dict[str, str]:
    return approle_login(vault_root, SHOWN, "metrics")


def test_stats_count_requests_by_operation_cache_use_and_health_probes(app: Flask, vault: FlaskVault) -> None:
    with app.app_context():
        stats = vault.stats()
        assert stats["requests"]["read"]["ok"] >= 2
        assert stats["cache"]["misses"] >= 2 and stats["cache"]["reads"] >= 2
        assert stats["health_probes"] == 0 and stats["health_status"] is None
        hits = stats["cache"]["hits"]
        vault.get_secret("flask", "secret_key")
        vault.get_secret("flask", "jwt_secret")
        assert vault.stats()["cache"]["hits"] == hits + 2

    get_health(app, SHOWN)
    get_health(app, SHOWN)
    with app.app_context():
        stats = vault.stats()
        assert stats["health_probes"] == 1 and stats["health_status"] == "pass"
        assert stats["requests"]["lookup"]["ok"] >= 1
        assert stats["requests_total"] >= 3 and stats["request_errors"] == 0
        assert set(stats) >= {"logins", "renewals", "login_failures", "renewal_failures", "outage_seconds"}
        SHOWN.add("stats", json.dumps(stats))


def test_logins_and_renewals_are_the_keepers_counters_in_stats_and_prometheus(
    base_config: dict[str, Any], approle: dict[str, str], vault_root: hvac.Client
) -> None:
    from prometheus_client import REGISTRY, generate_latest

    without_token = {k: v for k, v in base_config.items() if k != "VAULT_TOKEN"}
    app = new_app(without_token, **approle)
    client: VaultClient = app.extensions["vault"].client
    try:
        token = client.token
        assert token
        SHOWN.forbidden.update({token, vault_root.auth.token.lookup(token)["data"]["accessor"]})
        client.keeper.renew()  # what the renewal spine does at two thirds of the TTL
        keeper = client.keeper.stats
        assert (keeper.logins, keeper.renewals, keeper.login_failures, keeper.renewal_failures) == (1, 1, 0, 0)
        with app.app_context():
            stats = FlaskVault().stats()
        assert (stats["logins"], stats["renewals"], stats["login_failures"], stats["renewal_failures"]) == (1, 1, 0, 0)
        assert stats["requests"]["login"] == {"ok": 1} and stats["requests"]["renew"] == {"ok": 1}
        page = generate_latest(REGISTRY).decode()
        SHOWN.add("metrics", page)
        assert f'flask_vault_logins_total{{app="{app.name}"}} 1.0' in page
        assert f'flask_vault_renewals_total{{app="{app.name}"}} 1.0' in page
    finally:
        client.keeper.close(revoke=False)


def test_prometheus_exports_the_counters_from_one_collector_per_process(base_config: dict[str, Any]) -> None:
    from prometheus_client import REGISTRY, generate_latest

    first, second = new_app(base_config), new_app(base_config)  # both join the one collector
    get_health(first, SHOWN)
    page = generate_latest(REGISTRY).decode()
    SHOWN.add("metrics", page)
    name = first.name
    assert f'flask_vault_requests_total{{app="{name}",operation="read",outcome="ok"}} 2.0' in page
    assert f'flask_vault_requests_total{{app="{second.name}",operation="read",outcome="ok"}} 2.0' in page
    assert f'flask_vault_cache_misses_total{{app="{name}"}}' in page
    assert f'flask_vault_health_probes_total{{app="{name}"}} 1.0' in page
    assert f'flask_vault_health_status{{app="{name}"}} 0.0' in page
    assert f'flask_vault_secret_age_seconds{{app="{name}",key="SECRET_KEY"}}' in page
    assert f'flask_vault_request_duration_seconds_count{{app="{name}",operation="read"}} 2.0' in page
    collectors = [c for c in list(REGISTRY._collector_to_names) if isinstance(c, VaultCollector)]
    assert len(collectors) == 1


def test_prometheus_export_is_skipped_without_prometheus_client(
    app: Flask, vault: FlaskVault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError
    assert track("no_prometheus", app.extensions["vault"]) is False


def test_no_secret_value_or_token_in_any_stats_metrics_page_or_audit_record() -> None:
    SHOWN.assert_clean("stats", "metrics", "audit")
