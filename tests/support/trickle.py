"""A department endpoint on 127.0.0.1 that answers a byte at a time, a byte every `every`
seconds, for as long as `lasts`: in the status line, in the headers, or in an error's body.
Each byte on its own is quick; only the whole answer is slow."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WHERE = ("status line", "headers", "error body")


@dataclass(frozen=True)
class Trickle:
    """How to answer slowly: which part of the answer comes a byte every `every` seconds, for
    `lasts` seconds; after it, the answer is whole (`status`, or a 500 for an error's body)."""

    where: str = "headers"
    every: float = 0.3
    lasts: float = 8.0

    def __post_init__(self) -> None:
        if self.where not in WHERE:
            raise ValueError(f"trickle where={self.where!r}: say one of {', '.join(WHERE)}")

    def parts(self, status: int) -> tuple[bytes, bytes, bytes]:
        """The answer as (sent at once, sent a byte at a time, sent at the end)."""
        slow = b"x" * int(self.lasts / self.every)
        end = b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        if self.where == "status line":
            return b"", f"HTTP/1.1 {status} ".encode() + slow, end
        if self.where == "headers":
            return f"HTTP/1.1 {status} OK\r\n".encode(), b"x-slow: " + slow, end
        # an error's body, which the sender reads the start of
        head = f"HTTP/1.1 500 Oops\r\ncontent-length: {len(slow)}\r\nconnection: close\r\n\r\n"
        return head.encode(), slow, b""

    def send(self, write: Callable[[bytes], object], status: int) -> bool:
        """Write the answer; False if the other side stopped listening on the way."""
        before, trickled, after = self.parts(status)
        try:
            write(before)
            for byte in trickled:
                time.sleep(self.every)
                write(bytes([byte]))
            write(after)
        except OSError:
            return False  # the sender gave up on us: what a trickling endpoint deserves
        return True


class TrickleServer:
    def __init__(self, where: str = "headers", every: float = 0.3, lasts: float = 8.0) -> None:
        self.trickle = Trickle(where, every, lasts)
        self.requests = 0
        self._lock = threading.Lock()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._answer(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def _answer(self, connection: socket.socket) -> None:
        with self._lock:
            self.requests += 1
        connection.settimeout(5)
        request = b""
        while b"\r\n\r\n" not in request:
            request += connection.recv(65536)
        self.trickle.send(connection.sendall, 200)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
