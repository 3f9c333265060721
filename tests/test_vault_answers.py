"""Odd answers from a server (requests_mock: a real one won't give them): text is escaped and
bounded, listed names are checked before use, and a listing has a bound."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests_mock as rm
from core_support import client_for

from flask_vault import VaultClient, VaultError
from flask_vault.vault import kv

#: The bound on listed folders (a literal for code that has none, so the test can fail there).
MAX_LISTED_FOLDERS: int = getattr(kv, "MAX_LISTED_FOLDERS", 1000)
MOCK_URL = "http://127.0.0.1:1"  # never reached: requests_mock answers
ROOT = f"{MOCK_URL}/v1/secret/metadata/store-erp/test"


@pytest.fixture
def client(requests_mock: rm.Mocker) -> VaultClient:
    requests_mock.get(f"{MOCK_URL}/v1/sys/internal/ui/mounts/secret", json={"data": {"options": {"version": "2"}}})
    return client_for(
        {"VAULT_URL": MOCK_URL, "VAULT_TOKEN": "canary-mock-token", "VAULT_PATH_PREFIX": "store-erp"},
        VAULT_ENVIRONMENT="test",
        VAULT_MAX_RETRIES=0,
    )


def listing(requests_mock: rm.Mocker, folder: str, keys: Any) -> None:
    url = f"{ROOT}/{folder}" if folder else ROOT
    requests_mock.register_uri("LIST", url, json={"data": {"keys": keys}})


def test_vaults_error_text_is_escaped_and_bounded(client: VaultClient, requests_mock: rm.Mocker) -> None:
    noise = "\x1b[2J\x1b]0;pwned\x07\r\n" + "A" * 10_000
    requests_mock.get(
        f"{MOCK_URL}/v1/secret/data/store-erp/test/flask",
        status_code=400,
        json={"errors": [noise]},
        headers={"Content-Type": "application/json"},  # as Vault sends it: hvac reads errors only then
    )
    with pytest.raises(VaultError) as caught:
        client.get_secret("flask")
    message = str(caught.value)
    assert "\x1b" not in message and "\x07" not in message and "\r" not in message and "\n" not in message
    assert "\\x1b[2J" in message
    assert len(message) < 800


def test_listed_names_that_break_the_rules_are_skipped_and_never_requested(
    client: VaultClient, requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    listing(requests_mock, "", ["flask", "../../../sys/", "bad\x1bname", "nested/", 42, "a/b", ".."])
    listing(requests_mock, "nested", ["inner"])
    with caplog.at_level(logging.WARNING, logger="flask_vault"):
        names = client.list_secrets()
    assert names == ["flask", "nested/inner"]
    requested = [request.path for request in requests_mock.request_history]
    assert not any(".." in path or "sys" in path.split("/")[3:] for path in requested), requested
    warning = " ".join(r.getMessage() for r in caplog.records if "not valid secret names" in r.getMessage())
    assert "Skipped 5 name(s)" in warning and "\x1b" not in warning


def test_a_listing_that_never_ends_is_stopped(client: VaultClient, requests_mock: rm.Mocker) -> None:
    calls = []

    def endless(request: Any, context: Any) -> dict[str, Any]:
        calls.append(request.path)
        if len(calls) > 5 * MAX_LISTED_FOLDERS:  # a safety net for code without a bound
            raise RuntimeError("listing went on without a bound")
        return {"data": {"keys": ["deeper/", "wider/"]}}

    requests_mock.register_uri("LIST", rm.ANY, json=endless)
    with pytest.raises(VaultError, match="stopped: it holds more than"):
        client.list_secrets()
    assert len(calls) <= MAX_LISTED_FOLDERS


@pytest.mark.parametrize("answer", [{}, {"data": None}, {"data": {"keys": "flask"}}, {"data": {"keys": None}}, []])
def test_a_listing_answer_without_keys_is_a_vault_error(
    client: VaultClient, requests_mock: rm.Mocker, answer: Any
) -> None:
    requests_mock.register_uri("LIST", ROOT, json=answer)
    with pytest.raises(VaultError):
        client.list_secrets()
