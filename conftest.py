"""What every test of the repository shares (tests/ and example_app/tests/).

``flask_vault.testing`` gives the session its ``openbao_server``. Each test runs in a clean
process environment, and every keeper or lease that a test, or a module's fixtures,
started is closed when that test, or module, ends.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flask_vault.auth import renewal
from flask_vault.client import _reset_default_client

pytest_plugins = ["flask_vault.testing"]

_ISOLATED_PREFIXES = ("VAULT_", "BAO_")
_ISOLATED_NAMES = ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "XDG_STATE_HOME")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No VAULT_* or secret variables from the developer's shell, and no ~/.vault-token."""
    for name in list(os.environ):
        if name.startswith(_ISOLATED_PREFIXES) or name in _ISOLATED_NAMES:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _reset_default_client()
    yield
    _reset_default_client()


@contextmanager
def closing_new_spines() -> Iterator[None]:
    """Close every renewal spine (a keeper's, a lease's) made inside, newest first, without revoking.

    A keeper left running keeps its background work: a given token's lookup (within
    LOOKUP_SPREAD of init_app, retried while Vault cannot be reached) or a renewal would
    otherwise land in a later test, where a requests_mock counting every request sees it.
    A test that wants a revocation closes its spine itself; the spines alive before are
    only watched weakly, so this never keeps one alive.
    """
    before: weakref.WeakSet[renewal.Renewal[Any]] = weakref.WeakSet(renewal.live())
    try:
        yield
    finally:
        for spine in reversed(renewal.live()):
            if spine not in before:
                spine.close(revoke=False)


@pytest.fixture(scope="module", autouse=True)
def close_module_spines() -> Iterator[None]:
    """What a module-scoped fixture started runs until the module's last test, then is closed."""
    with closing_new_spines():
        yield


@pytest.fixture(autouse=True)
def close_test_spines() -> Iterator[None]:
    """What a test (or its function-scoped fixtures) started ends with the test."""
    with closing_new_spines():
        yield
