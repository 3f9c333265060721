"""Module-level ``get_secret`` / ``get_vault_client``: the app's client inside an app context,
a process-wide client from ``VAULT_*`` outside one, reaching the same paths.

These tests avoid the ``app`` fixture on purpose: pytest-flask pushes a request context
for it, and most of them need to be outside any app context.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from core_support import init_vault, unused_url
from flask import Flask

import flask_vault
from flask_vault import SecretNotFoundError, VaultClient, get_secret, get_vault_client


@pytest.fixture
def vault_env(base_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """VAULT_* variables naming the same server, prefix and environment as ``base_config``."""
    env = {
        "VAULT_ADDR": base_config["VAULT_URL"],
        "VAULT_TOKEN": base_config["VAULT_TOKEN"],
        "VAULT_PATH_PREFIX": base_config["VAULT_PATH_PREFIX"],
        "VAULT_ENVIRONMENT": base_config["VAULT_ENVIRONMENT"],
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_public_names_are_exported() -> None:
    for name in (
        "FlaskVault",
        "VaultClient",
        "get_secret",
        "get_vault_client",
        "VaultError",
        "VaultConfigError",
        "VaultUnavailableError",
        "VaultAuthError",
        "VaultPermissionError",
        "SecretNotFoundError",
    ):
        assert name in flask_vault.__all__
        assert getattr(flask_vault, name) is not None


def test_outside_an_app_get_secret_uses_a_client_from_vault_environment(vault_env: dict, seeded: dict) -> None:
    assert get_secret("flask", "secret_key") == seeded["flask"]["secret_key"]
    assert get_secret("flask") == seeded["flask"]
    client = get_vault_client()
    assert client.url == vault_env["VAULT_ADDR"]
    assert client.full_path("flask") == "secret/store-erp/test/flask"


def test_process_wide_client_is_built_once_and_reused(vault_env: dict, seeded: dict) -> None:
    first = get_vault_client()
    get_secret("flask", "secret_key")
    get_secret("flask", "jwt_secret")
    assert get_vault_client() is first
    assert first.cache.stats.reads == 1


def test_concurrent_first_calls_share_one_process_wide_client(vault_env: dict) -> None:
    clients: list[VaultClient] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait(timeout=5)
        clients.append(get_vault_client())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(clients) == 6
    assert all(client is clients[0] for client in clients)


def test_process_wide_client_defaults_without_environment() -> None:
    client = get_vault_client()  # builds only; no request is sent
    assert client.url == "http://127.0.0.1:8200"
    assert client.path_prefix is None
    assert client.full_path("flask") == "secret/development/flask"


def test_inside_an_app_context_get_secret_uses_the_apps_client(
    base_config: dict[str, Any], seeded: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment points at a dead server: only the app's own client can answer.
    monkeypatch.setenv("VAULT_ADDR", unused_url())
    monkeypatch.setenv("VAULT_MAX_RETRIES", "0")
    app, vault = init_vault(base_config)
    with app.app_context():
        assert get_vault_client() is vault.client
        reads_before = vault.client.cache.stats.reads
        assert get_secret("flask", "jwt_secret") == seeded["flask"]["jwt_secret"]
        assert vault.client.cache.stats.reads == reads_before  # served by the start-up read
    assert get_vault_client() is not app.extensions["vault"].client


def test_each_app_context_gets_its_own_apps_client(base_config: dict[str, Any], unique_env: str) -> None:
    first, _ = init_vault(base_config, "first_app")
    second, _ = init_vault(base_config, "second_app", VAULT_FAIL_FAST=False, VAULT_ENVIRONMENT=unique_env)
    with first.app_context():
        assert get_secret("flask", "secret_key") == first.config["SECRET_KEY"]
    with second.app_context(), pytest.raises(SecretNotFoundError, match=unique_env):
        get_secret("flask", "secret_key")


def test_app_without_the_extension_uses_the_process_wide_client(vault_env: dict, seeded: dict) -> None:
    plain = Flask("no_vault_here")
    with plain.app_context():
        assert get_secret("flask", "secret_key") == seeded["flask"]["secret_key"]
        assert get_vault_client() is get_vault_client()


def test_environment_client_reaches_the_same_paths_as_the_app(vault_env: dict, seeded: dict) -> None:
    app = Flask("env_configured_app")
    app.config["VAULT_STARTUP_TIMEOUT"] = 0
    init_app_vault = flask_vault.FlaskVault(app)
    outside = get_vault_client()
    with app.app_context():
        inside = init_app_vault.client
        assert inside is not outside
        assert inside.full_path("flask") == outside.full_path("flask") == "secret/store-erp/test/flask"
        assert inside.full_path("database") == outside.full_path("database")
    assert get_secret("flask", "secret_key") == app.config["SECRET_KEY"]


def test_module_get_secret_falls_back_to_environment_variable(
    vault_env: dict, unique_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ENVIRONMENT", unique_env)
    monkeypatch.setenv("STRIPE_API_KEY", "sk_from_env")
    assert get_secret("payments", "stripe", fallback_env="STRIPE_API_KEY") == "sk_from_env"


def test_module_get_secret_raises_when_secret_and_fallback_are_missing(
    vault_env: dict, unique_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULT_ENVIRONMENT", unique_env)
    with pytest.raises(SecretNotFoundError, match=f"secret/store-erp/{unique_env}/payments"):
        get_secret("payments", "stripe", fallback_env="NOT_SET_ANYWHERE")
