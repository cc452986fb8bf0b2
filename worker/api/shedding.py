"""Load shedding: past a bound of requests in flight, answer 503 at once instead of queueing.

A request that waits behind hundreds of others answers after its client gave up, and the
queue grows until connections are reset. Refused at the door with `503` and `Retry-After`,
a client learns in a millisecond to come back, and the requests let in still answer in
time. `/health` is never shed and never touches the database, so that an orchestrator does
not restart a process for being busy.

A request body that is still arriving after `request_body_timeout` seconds is answered
`408` and the connection closed: a client trickling its body would otherwise hold a slot
(and a thread) for as long as it likes.
"""

from __future__ import annotations

import asyncio
import time

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.api.problems import PROBLEM_JSON

NEVER_SHED = frozenset({"/health"})
RETRY_AFTER_SECONDS = 1


class BodyTimedOut(Exception):
    pass


class LoadShedding:
    """Pure ASGI middleware: a bound on requests in flight, and on the time a body takes."""

    def __init__(self, app: ASGIApp, max_in_flight: int, body_timeout: float) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.body_timeout = body_timeout
        self.in_flight = 0  # one event loop per process: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in NEVER_SHED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            await _problem(
                send,
                503,
                "Busy",
                f"The service is at its limit of {self.max_in_flight} requests at once "
                f"(CLOSELOOP_MAX_REQUESTS_IN_FLIGHT); try again in {RETRY_AFTER_SECONDS} s.",
                [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
            )
            return
        self.in_flight += 1
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, self._deadline(receive), tracked)
        except BodyTimedOut:
            if not started:
                await _problem(
                    send,
                    408,
                    "Request timeout",
                    f"The request body did not arrive within {self.body_timeout:g} s "
                    "(CLOSELOOP_REQUEST_BODY_TIMEOUT).",
                    [(b"connection", b"close")],
                )
        finally:
            self.in_flight -= 1

    def _deadline(self, receive: Receive) -> Receive:
        deadline = time.monotonic() + self.body_timeout
        body_done = False

        async def receive_in_time() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()  # after the body: only a disconnect, whenever it comes
            try:
                message = await asyncio.wait_for(receive(), max(deadline - time.monotonic(), 0))
            except TimeoutError as error:
                raise BodyTimedOut from error
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        return receive_in_time


async def _problem(
    send: Send, status: int, title: str, detail: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
