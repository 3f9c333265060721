"""What the audit and metrics tests share: an audit-record capture and a leak scan over all they showed.

Each test module keeps one :class:`Shown` (everything it printed: audit records, health
bodies, stats, metrics pages) and ends with :meth:`Shown.assert_clean`, which searches it
for every secret value, token, accessor and credential the tests added to ``forbidden``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from core_support import make_app
from flask import Flask

from flask_vault import FlaskVault
from tests.conftest import DATABASE_SECRET, FLASK_SECRET


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
    logger = logging.getLogger("flask_vault.audit")
    handler = AuditCapture(shown)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def new_app(base_config: dict[str, Any], **config: Any) -> Flask:
    """A fresh app on the test server with the extension applied."""
    app = make_app(base_config, f"observe_{uuid.uuid4().hex[:6]}", **config)
    FlaskVault(app)
    return app


def get_health(app: Flask, shown: Shown) -> dict[str, Any]:
    """GET /health/vault; the body, shown."""
    response = app.test_client().get("/health/vault")
    text = response.get_data(as_text=True)
    shown.add("health", text)
    body: dict[str, Any] = json.loads(text)
    return body
