"""flask_vault.devserver: the dev server's credentials stay off the command line and out of errors."""

from __future__ import annotations

import gc
import secrets
import subprocess
import sys
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


def test_a_server_object_that_is_gone_takes_its_folder_and_its_process_with_it() -> None:
    server = OpenBaoServer().start()
    folder, process = server.workdir, server.process
    assert process is not None
    wait_for(lambda: "Root Token" in (folder / "server.log").read_text(), timeout=10)
    del server
    gc.collect()
    assert not folder.exists()  # the root token it printed is gone with it
    assert process.poll() is not None


def test_a_server_left_running_at_interpreter_exit_is_stopped_and_its_folder_removed() -> None:
    code = (
        "from flask_vault.devserver import OpenBaoServer\n"
        "server = OpenBaoServer().start()\n"
        "print(server.workdir, server.process.pid, flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    folder, pid = done.stdout.split()
    assert not Path(folder).exists()
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2])
