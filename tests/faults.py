"""A loopback TCP proxy in front of a real server, to make Vault refuse, hang or come back."""

from __future__ import annotations

import select
import socket
import threading
from typing import Any


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target port; ``mode`` switches its behaviour live.

    * ``forward``: relay bytes both ways (the real server answers);
    * ``hang``: accept connections and never answer (existing ones stop relaying too);
    * ``down``: not listening at all (connection refused).
    """

    def __init__(self, target_port: int, *, mode: str = "forward") -> None:
        self.target_port = target_port
        self.mode = mode
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        if mode != "down":
            self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set_mode(self, mode: str) -> None:
        with self._lock:
            self.mode = mode
            if mode == "down":
                self._close_all()
            elif self._listener is None:
                self._listen()

    def _listen(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept_loop, args=(listener,), daemon=True)
        self._acceptor.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stop.is_set() or self._listener is not listener:
                    conn.close()  # accepted while closing: don't leave it to the garbage collector
                    return
                self._held.append(conn)
                mode = self.mode
            if mode == "forward":
                threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        with self._lock:
            self._held.append(upstream)
        pair: dict[Any, socket.socket] = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(pair), [], [], 0.2)
                if self.mode != "forward":
                    continue  # hang: keep the connection open, relay nothing
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)
        except (OSError, ValueError):  # ValueError: select() on a socket that set_mode("down") closed
            return
        finally:
            client.close()
            upstream.close()

    def _close_all(self) -> None:
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() that close() alone would not
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        for sock in self._held:
            try:
                sock.close()
            except OSError:
                pass
        self._held.clear()

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            self._close_all()
        acceptor = getattr(self, "_acceptor", None)
        if acceptor is not None:
            acceptor.join(timeout=5)
