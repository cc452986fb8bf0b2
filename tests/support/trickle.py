"""A department endpoint on 127.0.0.1 that answers a byte at a time, a byte every `every`
seconds, for as long as `lasts`: in the status line, in the headers, or in an error's body.
Each byte on its own is quick; only the whole answer is slow."""

from __future__ import annotations

import socket
import socketserver
import threading
import time


class TrickleServer:
    def __init__(self, where: str = "headers", every: float = 0.3, lasts: float = 8.0) -> None:
        self.where, self.every, self.lasts = where, every, lasts
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
        slow = b"x" * int(self.lasts / self.every)
        end = b"\r\ncontent-length: 0\r\n\r\n"
        if self.where == "status line":
            before, trickled, after = b"", b"HTTP/1.1 200 " + slow, end
        elif self.where == "headers":
            before, trickled, after = b"HTTP/1.1 200 OK\r\n", b"x-slow: " + slow, end
        else:  # an error's body, which the sender reads the start of
            head = f"HTTP/1.1 500 Oops\r\ncontent-length: {len(slow)}\r\n\r\n"
            before, trickled, after = head.encode(), slow, b""
        try:
            connection.sendall(before)
            for byte in trickled:
                time.sleep(self.every)
                connection.sendall(bytes([byte]))
            connection.sendall(after)
        except OSError:
            pass  # the sender gave up on us: what a trickling endpoint deserves

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
