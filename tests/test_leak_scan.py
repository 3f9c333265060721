"""The session-wide leak scan catches a planted leak on every channel, as is and base64-encoded."""

from __future__ import annotations

import base64
import logging
import secrets

import click
from flask import Flask

from flask_vault import VaultError
from tests.leak_scan import LeakScan, encodings


def test_a_planted_marker_is_caught_on_every_channel_raw_and_base64(leak_scan: LeakScan) -> None:
    marker = f"planted-marker-{secrets.token_hex(12)}"
    wrapped = base64.b64encode(f"x{marker}yz".encode()).decode()  # the marker off the 3-byte alignment
    urlsafe = base64.urlsafe_b64encode(f"ab{marker}".encode()).decode()
    app = Flask("planted_leak")

    @app.get("/health/planted")
    def health() -> str:
        return f"status ok {marker}"

    @app.get("/metrics")
    def metrics() -> str:
        return f"vault_token_b64 {wrapped}"

    @app.cli.command("plant")
    def plant() -> None:
        click.echo(urlsafe)

    assert marker not in " ".join(text for _, text in leak_scan.texts)
    app.test_cli_runner().invoke(args=["plant"])
    app.test_client().get("/health/planted")
    app.test_client().get("/metrics")
    VaultError(f"Vault answered {wrapped}")
    logging.getLogger("flask_vault.planted").warning("leaked %s", marker)

    found = leak_scan.leaks([marker])
    assert {channel for channel, _ in found} == {"cli", "http", "error", "log"}
    assert {channel for channel, form in found if form != marker} == {"cli", "http", "error"}  # base64 forms


def test_the_scan_does_not_cry_wolf() -> None:
    scan = LeakScan()
    scan.record("cli", "secret/store-erp/test/flask (secret_key): version 3 -> 4")
    scan.record("error", base64.b64encode(b"something else entirely, no marker").decode())
    assert scan.leaks(["test-secret-key-5f1c9e2a7b"]) == []


def test_each_alignment_of_a_base64_encoded_marker_is_matched() -> None:
    marker = "test-jwt-secret-8d3b6a0c4e"
    forms = encodings(marker)
    for prefix in ("", "a", "ab", "abc", '{"k": "'):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(f"{prefix}{marker} and more".encode()).decode()
            assert any(form in text for form in forms), (prefix, encode.__name__)
