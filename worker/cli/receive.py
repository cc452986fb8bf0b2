"""`closeloop receive`: the example city's departments, listening, for a first look.

Serves `POST /hooks/<department>` (where the example city's rules send every department's
webhooks) and checks each signature with the official `standardwebhooks` library, using the
secrets `closeloop up` keeps in its data folder (or the environment). It prints one line per
webhook and answers 204 for a good signature, 401 for a bad one. A development tool: a real
department runs its own endpoint.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import typer
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from worker.config import get_settings
from worker.ops.embedded_secrets import FILE_NAME, read_env_file
from worker.rules import registry
from worker.webhooks.signing import parse_secrets


def receive(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9900,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Listen as the example city's departments do, verify each webhook, print it."""
    settings = get_settings()
    kept = read_env_file(settings.data_dir / FILE_NAME)
    secrets: dict[str, tuple[str, ...]] = {}
    for department in registry.get().departments.values():
        value = os.environ.get(department.secret_env) or kept.get(department.secret_env)
        if value:
            secrets[department.id] = parse_secrets(value)
    if not secrets:
        typer.echo(
            f"error: no department's secret in the environment or in "
            f"{settings.data_dir / FILE_NAME}: start `closeloop up` first (it makes them), or "
            "say where its data folder is with --data-dir",
            err=True,
        )
        raise typer.Exit(2)
    server = ThreadingHTTPServer((host, port), _handler(secrets))
    typer.echo(f"receiving webhooks at http://{host}:{port}/hooks/<department>; Ctrl-C stops it")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _handler(secrets: dict[str, tuple[str, ...]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            department = self.path.rstrip("/").rsplit("/", 1)[-1]
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            verdict = _verify(secrets.get(department, ()), body, headers)
            self.send_response(204 if verdict is None else 401)
            self.end_headers()
            typer.echo(_line(department, body, headers, verdict))

        def log_message(self, *_: Any) -> None:
            pass  # one line per webhook is printed above

    return Handler


def _verify(secrets: tuple[str, ...], body: bytes, headers: dict[str, str]) -> str | None:
    """None if one of the department's secrets signed it; else why not."""
    if not secrets:
        return "no secret for this department"
    for secret in secrets:
        try:
            Webhook(secret).verify(body, headers)
            return None
        except WebhookVerificationError as error:
            reason = str(error)
    return reason


def _line(department: str, body: bytes, headers: dict[str, str], verdict: str | None) -> str:
    try:
        sent = json.loads(body)
        data = sent.get("data", {})
        case = data.get("case", {})
        what = f"{sent.get('type')}  case {case.get('id')}  {case.get('title', '')}"
    except (ValueError, AttributeError):
        what = f"{len(body)} bytes, not JSON"
    at = datetime.now(UTC).strftime("%H:%M:%S")
    check = "verified" if verdict is None else f"REFUSED ({verdict})"
    return f"{at}  {department:<16} {check}  {headers.get('webhook-id', '')}  {what}"
