"""A department's webhook endpoint, for real: an HTTP server on loopback that checks every
signature with the `standardwebhooks` library and remembers what it received."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.support.trickle import Trickle

# For each request's webhook-id: (status, how to be slow about answering it): seconds to hang
# before the whole answer, or a Trickle to send the answer a byte at a time.
Behaviour = Callable[[str], tuple[int, float | Trickle]]


@dataclass
class Received:
    department: str
    webhook_id: str
    body: dict[str, Any]
    verified: bool
    at: float = field(default_factory=time.time)


@dataclass
class Receiver:
    secrets: dict[str, str]
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    port: int = 0
    # None: 204 at once.
    behaviour: Behaviour | None = None
    # One department's own behaviour, over `behaviour`.
    behaviour_of: dict[str, Behaviour] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def for_department(self, department: str) -> list[Received]:
        with self.lock:
            return [r for r in self.received if r.department == department]

    def all(self) -> list[Received]:
        with self.lock:
            return list(self.received)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            department = self.path.rstrip("/").rsplit("/", 1)[-1]
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                Webhook(receiver.secrets[department]).verify(body, headers)
                verified = True
            except (WebhookVerificationError, KeyError):
                verified = False
            webhook_id = headers.get("webhook-id", "")
            behaviour = receiver.behaviour_of.get(department, receiver.behaviour)
            status, slow = (204, 0.0) if behaviour is None else behaviour(webhook_id)
            with receiver.lock:
                receiver.received.append(
                    Received(department, webhook_id, json.loads(body), verified)
                )
            if isinstance(slow, Trickle):
                self.close_connection = True
                slow.send(self.wfile.write, status if verified else 401)
                return
            if slow:
                time.sleep(slow)
            try:
                self.send_response(status if verified else 401)
                self.end_headers()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the sender gave up waiting: exactly what a hang is for

        def log_message(self, *_: Any) -> None:
            pass

    return Handler


@contextmanager
def receiving(secrets: dict[str, str]) -> Iterator[Receiver]:
    receiver = Receiver(secrets)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def rules_pointing_at(source: Path, target: Path, base_url: str) -> Path:
    """A copy of a rules folder whose department webhooks go to `base_url`."""
    for path in source.rglob("*"):
        if path.is_file():
            copy = target / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            text = path.read_text(encoding="utf-8")
            copy.write_text(re.sub(r"http://127\.0\.0\.1:9900", base_url, text), encoding="utf-8")
    return target


def department_secrets(rules: Path) -> dict[str, tuple[str, str]]:
    """department id -> (secret env variable, a fresh whsec_ secret) for every department."""
    import base64
    import secrets

    import yaml

    found = {}
    for path in rules.rglob("*.yaml"):
        for department in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get(
            "departments", []
        ):
            key = base64.b64encode(secrets.token_bytes(24)).decode()
            found[department["id"]] = (department["secret_env"], f"whsec_{key}")
    return found
