"""The session-wide leak scan: everything flask-vault says, checked for secrets.

Channels recorded for the whole test session:

* ``log``: every ``flask_vault`` log record (audit trail included) at DEBUG;
* ``cli``: stdout and stderr of every ``flask vault`` command run with click's test runner
  (except ``get --reveal``, whose job is to print values);
* ``http``: the body of every answer the Flask test client gets from a flask-vault route
  (``/health/...``, ``/metrics``);
* ``error``: the message of every :class:`flask_vault.VaultError` created.

A marker matches as is, and base64-encoded (standard and URL-safe alphabets, at any of
the three alignments it can have inside a longer encoded text).
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click.testing
import flask.testing
import pytest

from flask_vault.errors import VaultError

#: Paths whose answers come from flask-vault itself (not from a test's own routes).
VAULT_ROUTES = ("/health", "/metrics")


def encodings(marker: str) -> set[str]:
    """``marker`` and the parts of its base64 encodings that do not depend on what surrounds it."""
    raw = marker.encode()
    found = {marker}
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode().rstrip("=")
        start = {0: 0, 1: 2, 2: 3}[offset]  # characters that mix in the bytes before the marker
        tail = (offset + len(raw)) % 3
        end = len(encoded) - (1 if tail else 0)  # the last character mixes in the bytes after it
        core = encoded[start:end]
        if len(core) >= 12:
            found |= {core, core.replace("+", "-").replace("/", "_")}
    return found


@dataclass
class LeakScan:
    texts: list[tuple[str, str]] = field(default_factory=list)

    def record(self, channel: str, text: str) -> None:
        if text:
            self.texts.append((channel, text))

    def channels(self) -> set[str]:
        return {channel for channel, _ in self.texts}

    def leaks(self, markers: Iterable[str]) -> list[tuple[str, str]]:
        """(channel, the form that matched) for every recorded text holding a marker."""
        forms = {form: marker for marker in markers if marker for form in encodings(marker)}
        found = []
        for channel, text in self.texts:
            for form in forms:
                if form in text:
                    found.append((channel, form))
        return found


@contextmanager
def recording(scan: LeakScan) -> Iterator[None]:
    """Record the cli, http and error channels into ``scan`` while the context lasts."""
    with pytest.MonkeyPatch.context() as patch:
        invoke = click.testing.CliRunner.invoke

        def recorded_invoke(self: click.testing.CliRunner, cli: Any, args: Any = None, *a: Any, **kw: Any) -> Any:
            result = invoke(self, cli, args, *a, **kw)
            words = list(args) if isinstance(args, (list, tuple)) else str(args or "").split()
            if "--reveal" not in words:
                scan.record("cli", result.output)
                scan.record("cli", _stderr(result))
            return result

        patch.setattr(click.testing.CliRunner, "invoke", recorded_invoke)

        open_ = flask.testing.FlaskClient.open

        def recorded_open(self: flask.testing.FlaskClient, *a: Any, **kw: Any) -> Any:
            response = open_(self, *a, **kw)
            request = getattr(response, "request", None)
            path = str(request.path) if request is not None else ""
            if path.startswith(VAULT_ROUTES):
                scan.record("http", response.get_data(as_text=True))
            return response

        patch.setattr(flask.testing.FlaskClient, "open", recorded_open)

        init = VaultError.__init__

        def recorded_init(self: VaultError, message: str, *a: Any, **kw: Any) -> None:
            scan.record("error", str(message))
            init(self, message, *a, **kw)

        patch.setattr(VaultError, "__init__", recorded_init)
        yield


def _stderr(result: click.testing.Result) -> str:
    try:
        return result.stderr
    except ValueError:  # stderr was not captured separately
        return ""
