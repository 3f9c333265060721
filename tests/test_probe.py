"""The one sys/health probe, shared by ``VaultClient.health_check()`` and ``/health/vault``.

The real dev server for an active node and for an address where nothing listens;
``requests_mock`` for the answers a single dev server won't give (standby, sealed).
"""

from __future__ import annotations

from typing import Any

import requests_mock
from core_support import client_for, unused_url

from flask_vault import VaultClient
from flask_vault.vault.probe import probe_address, probe_addresses
from flask_vault.vault.transport import VaultAdapter


def adapter_of(client: VaultClient) -> VaultAdapter:
    adapter = client.hvac.adapter
    assert isinstance(adapter, VaultAdapter)
    return adapter


def test_an_active_server_is_probed_without_sending_the_token(base_config: dict[str, Any]) -> None:
    client = client_for(base_config)
    url = base_config["VAULT_URL"]
    with requests_mock.Mocker(real_http=True) as mock:
        probe = probe_address(adapter_of(client), url)
        sent = [r for r in mock.request_history if r.path == "/v1/sys/health"]
    assert (probe.state, probe.serving, probe.reachable, probe.status_code) == ("active", True, True, 200)
    assert (probe.initialized, probe.sealed, probe.standby, probe.output) == (True, False, False, None)
    assert probe.version and probe.response_ms is not None and probe.response_ms >= 0
    assert len(sent) == 1 and "X-Vault-Token" not in sent[0].headers and not sent[0].qs


def test_the_next_address_that_answers_is_reported_with_a_note_about_the_first(base_config: dict[str, Any]) -> None:
    down, real = unused_url(), base_config["VAULT_URL"]
    client = client_for(base_config)
    probe = probe_addresses(adapter_of(client), [down, real])
    assert (probe.url, probe.state) == (real, "active")
    assert probe.output == f"Vault at {down} is unreachable (ConnectionError). {real} answered instead."

    alone = probe_addresses(adapter_of(client), [down])
    assert (alone.url, alone.state, alone.reachable, alone.serving) == (down, "unreachable", False, False)


def test_health_check_reads_the_same_probe_and_skips_the_lookup_when_the_server_cannot_serve(
    base_config: dict[str, Any],
) -> None:
    client = client_for(base_config)
    url = base_config["VAULT_URL"]
    lookup = {"data": {"ttl": 0, "renewable": False, "policies": ["root"], "accessor": "mock-accessor"}}
    with requests_mock.Mocker() as mock:
        mock.get(f"{url}/v1/auth/token/lookup-self", json=lookup)
        mock.get(f"{url}/v1/sys/health", status_code=429, json={"initialized": True, "sealed": False, "standby": True})
        standby = client.health_check()
        mock.get(f"{url}/v1/sys/health", status_code=503, json={"initialized": True, "sealed": True})
        sealed = client.health_check()
        probes = [r for r in mock.request_history if r.path == "/v1/sys/health"]
        lookups = [r for r in mock.request_history if r.path == "/v1/auth/token/lookup-self"]
    assert (standby["state"], standby["standby"], standby["authenticated"], standby["policies"]) == (
        "standby",
        True,
        True,
        ["root"],
    )
    assert (sealed["state"], sealed["sealed"], sealed["authenticated"]) == ("sealed", True, False)
    assert sealed["error"] == f"Vault at {url} is sealed."
    assert len(lookups) == 1  # none against the sealed server
    assert len(probes) == 2 and all("X-Vault-Token" not in r.headers for r in probes)
