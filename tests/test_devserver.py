"""flask_vault.devserver: the dev server's credentials stay off the command line and out of errors."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from core_support import wait_for

from flask_vault.devserver import OpenBaoServer, PersistentOpenBaoServer


def test_the_root_token_is_not_on_the_command_line_and_still_works() -> None:
    token = "dev-" + secrets.token_hex(8)
    with OpenBaoServer(root_token=token) as server:
        assert server.process is not None
        argv = Path(f"/proc/{server.process.pid}/cmdline").read_bytes().decode(errors="replace")
        assert token not in argv
        assert server.root_client().auth.token.lookup_self()["data"]["policies"] == ["root"]


def test_the_log_shown_in_errors_hides_the_root_token_and_unseal_key() -> None:
    token = "dev-" + secrets.token_hex(8)
    with OpenBaoServer(root_token=token) as server:
        wait_for(lambda: "Root Token:" in server.log_path.read_text(), timeout=10)
        raw = server.log_path.read_text()
        assert token in raw and "Unseal Key:" in raw  # what the server itself prints
        shown = server.log_text()
    assert token not in shown
    assert "Root Token: <hidden>" in shown and "Unseal Key: <hidden>" in shown


@pytest.mark.slow
def test_a_persistent_server_log_hides_the_keys_it_was_initialized_with() -> None:
    with PersistentOpenBaoServer() as server:
        server.log_path.write_text(f"{server.log_path.read_text()}\nsomething echoed {server.unseal_key}\n")
        shown = server.log_text()
        assert server.unseal_key and server.unseal_key not in shown
        assert server.root_token not in shown
