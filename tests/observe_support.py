"""What the audit, metrics and health tests share: an audit-record capture, a leak scan over all
they showed, an AppRole login, apps and their health answers.

Each test module keeps one :class:`Shown` (everything it printed: audit records, health
bodies, CLI output, stats, metrics pages) and ends with :meth:`Shown.assert_clean`, which
searches it for every secret value, token, accessor and credential the tests added to
``forbidden``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import hvac
from core_support import logging_to, make_app, read_policy
from flask import Flask

from flask_vault import FlaskVault
from tests.conftest import DATABASE_SECRET, ENVIRONMENT, FLASK_SECRET, PREFIX


class Shown:
    """(kind, text) of everything a module showed, and the strings that must never be in it."""

    def __init__(self) -> None:
        self.forbidden: set[str] = {
            FLASK_SECRET["secret_key"],
            FLASK_SECRET["jwt_secret"],
            str(DATABASE_SECRET["password"]),
        }
        self.seen: list[tuple[str, str]] = []

    def add(self, kind: str, text: str) -> None:
        self.seen.append((kind, text))

    def assert_clean(self, *kinds: str) -> None:
        assert set(kinds) <= {kind for kind, _ in self.seen}, "the scenarios above did not run"
        for kind, text in self.seen:
            for secret in self.forbidden:
                for form in _forms(secret):
                    assert form not in text, f"{kind} output contains a secret or token ({secret[:4]}…)"


def _forms(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote(secret)}


class AuditCapture(logging.Handler):
    """Every ``flask_vault.audit`` record, its ``vault`` fields shown to ``shown``."""

    def __init__(self, shown: Shown) -> None:
        super().__init__(logging.INFO)
        self.shown = shown
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        fields = getattr(record, "vault", None)
        self.shown.add("audit", record.getMessage() + " " + json.dumps(fields, default=str))

    def fields(self, operation: str | None = None) -> list[dict[str, Any]]:
        found = [getattr(r, "vault", {}) for r in self.records]
        return [f for f in found if operation is None or f.get("operation") == operation]


@contextmanager
def capturing_audit(shown: Shown) -> Iterator[AuditCapture]:
    """The audit logger at INFO, its records captured, for the duration."""
    with logging_to(AuditCapture(shown), "flask_vault.audit", logging.INFO) as handler:
        yield handler


def new_app(base_config: dict[str, Any], **config: Any) -> Flask:
    """A fresh app on the test server with the extension applied."""
    app = make_app(base_config, f"observe_{uuid.uuid4().hex[:6]}", **config)
    FlaskVault(app)
    return app


def health_answer(app: Flask, shown: Shown, headers: dict[str, str] | None = None) -> tuple[Any, dict[str, Any]]:
    """GET /health/vault (with ``headers``); the response and its body, shown."""
    response = app.test_client().get("/health/vault", headers=headers or {})
    text = response.get_data(as_text=True)
    shown.add("health", text)
    body: dict[str, Any] = json.loads(text)
    return response, body


def get_health(app: Flask, shown: Shown) -> dict[str, Any]:
    """GET /health/vault; the body, shown."""
    return health_answer(app, shown)[1]


def approle_login(vault_root: hvac.Client, shown: Shown, label: str) -> dict[str, str]:
    """An AppRole on a mount of its own whose renewable tokens (10 minutes, at most 1 hour) may
    read the store-erp test secrets; the app settings that log in with it. Its role_id and
    secret_id are forbidden in what ``shown`` holds."""
    mount = f"approle-{label}-{uuid.uuid4().hex[:6]}"
    policy = f"{label}-app-{uuid.uuid4().hex[:6]}"
    vault_root.sys.create_or_update_policy(policy, read_policy("secret", f"{PREFIX}/{ENVIRONMENT}/*"))
    vault_root.sys.enable_auth_method("approle", path=mount)
    vault_root.write(f"auth/{mount}/role/store", token_ttl="10m", token_max_ttl="1h", token_policies=policy)
    role_id = vault_root.read(f"auth/{mount}/role/store/role-id")["data"]["role_id"]
    secret_id = vault_root.write(f"auth/{mount}/role/store/secret-id")["data"]["secret_id"]
    shown.forbidden.update({role_id, secret_id})
    return {
        "VAULT_AUTH_METHOD": "approle",
        "VAULT_APPROLE_MOUNT": mount,
        "VAULT_ROLE_ID": role_id,
        "VAULT_SECRET_ID": secret_id,
    }
