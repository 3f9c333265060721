"""Small helpers shared by the core test files (not fixtures: plain functions).

The fixtures they build on (``openbao_server``, ``vault_root``, ``seeded``, ``base_config``)
live in ``conftest.py``; these helpers only assemble clients, apps and tokens from them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import hvac
import requests
from flask import Flask

from flask_vault import FlaskVault, VaultClient, VaultSettings
from flask_vault.devserver import PersistentOpenBaoServer, free_port_pair

H = TypeVar("H", bound=logging.Handler)


@contextmanager
def logging_to(handler: H, logger: str, level: int) -> Iterator[H]:
    """``handler`` on the logger named ``logger``, set to ``level``, while inside; then as it was."""
    target = logging.getLogger(logger)
    previous = target.level
    target.addHandler(handler)
    target.setLevel(level)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(previous)


def client_for(base_config: dict[str, Any], **overrides: Any) -> VaultClient:
    """A VaultClient on the test server, settings from ``base_config`` only (no environment).

    Retries are off unless asked for, so an expected failure does not back off.
    """
    config = {"VAULT_MAX_RETRIES": 0, **base_config, **overrides}
    return VaultClient(settings=VaultSettings.load(config, {}))


def make_app(base_config: dict[str, Any], name: str = "store_erp_extra", **config: Any) -> Flask:
    """A fresh Flask app configured from ``base_config`` plus ``config`` (extension not applied)."""
    app = Flask(name)
    app.config.update(base_config)
    app.config.update(config)
    return app


def init_vault(base_config: dict[str, Any], name: str = "store_erp_extra", **config: Any) -> tuple[Flask, FlaskVault]:
    app = make_app(base_config, name, **config)
    return app, FlaskVault(app)


def write_secret(vault_root: hvac.Client, path: str, data: dict[str, Any], mount: str = "secret") -> None:
    vault_root.secrets.kv.v2.create_or_update_secret(path, data, mount_point=mount)


def token_with_policy(
    vault_root: hvac.Client, policy_hcl: str | None, *, ttl: str = "10m", default_policy: bool = True
) -> str:
    """A new token (with a recognisable id) holding ``policy_hcl`` and, unless told, ``default``."""
    policies = []
    if policy_hcl is not None:
        name = f"core-test-{uuid.uuid4().hex[:8]}"
        vault_root.sys.create_or_update_policy(name, policy_hcl)
        policies.append(name)
    token_id = f"canary-token-{uuid.uuid4().hex}"
    vault_root.auth.token.create(id=token_id, policies=policies, no_default_policy=not default_policy, ttl=ttl)
    return token_id


def read_policy(mount: str, path_glob: str) -> str:
    return f'path "{mount}/data/{path_glob}" {{\n  capabilities = ["read"]\n}}\n'


def app_process_env(home: Path | str, **settings: str) -> dict[str, str]:
    """The environment of an app process a test starts: this one's without any VAULT_ or BAO_
    variable (nothing from the developer's shell), HOME=``home`` (no ~/.vault-token), and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env.update(HOME=str(home), **settings)
    return env


def unused_url() -> str:
    """An http:// address on loopback where nothing listens."""
    return f"http://127.0.0.1:{free_port_pair()}"


def running(server: PersistentOpenBaoServer) -> PersistentOpenBaoServer:
    """A module's disk-backed ``server``, started again if an earlier test stopped it, and active."""
    if server.process is None or server.process.poll() is not None:
        server.start()
    server.wait_active()
    return server


def assert_no_leak(text: str, secrets: Iterable[Any]) -> None:
    for secret in secrets:
        assert str(secret) not in text, f"a secret or token leaked: {str(secret)[:4]}…"


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it is true or ``timeout`` passes (then fail)."""
    poll(predicate, timeout=timeout, interval=interval)


def poll(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.05, message: str | None = None) -> Any:
    """Call ``predicate`` until it returns something true (returned), or fail after ``timeout``
    (saying ``message``, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s: {message}" if message else f"condition not met within {timeout}s"
            )
        time.sleep(interval)


def wait_until_answering(
    process: subprocess.Popen[bytes],
    url: str,
    log: Path,
    accepts: Callable[[requests.Response], bool] = lambda response: response.status_code == 200,
    *,
    interval: float = 0.1,
) -> None:
    """Poll ``url`` (up to 30 s) until ``accepts`` its answer; fail with ``log``'s tail as soon as ``process`` exits."""

    def answering() -> bool:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            return accepts(requests.get(url, timeout=2))
        except (requests.RequestException, ValueError):  # not listening yet; ValueError: a body not JSON yet
            return False

    poll(answering, timeout=30, interval=interval)


class FakeClock:
    """A monotonic clock the test moves by hand (for cache TTLs)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
