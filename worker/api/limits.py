"""Input limits in front of the routes: the body's size and its media type, a JSON body read
strictly (see `json_text`), and no NUL characters anywhere (PostgreSQL text cannot hold
them: let through, they would end as a 500).

The size is checked twice: a `Content-Length` over the limit is refused before a byte is
read, and a body without one (chunked) is counted as it arrives and refused the moment it
passes the limit. Bodies within the limit are small (64 KiB by default), so the middleware
holds them and hands them on in one piece; that way the refusal is always a clean 413 and
never a half-read request inside a route.
"""

from __future__ import annotations

import email.message

import orjson
from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.api.json_text import NotJson, read_json
from worker.api.problems import PROBLEM_JSON
from worker.contracts.incident import contains_nul


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Pure ASGI middleware: answer 413 for a request body over `max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_bytes:
            await self._refuse(send)
            return
        try:
            body = await self._read(receive)
        except BodyTooLarge:
            await self._refuse(send)
            return
        if body is None:
            return  # the client went away mid-body: nobody is left to answer
        refusal = _refusal(scope, body)
        if refusal is not None:
            where, why = refusal
            errors = [{"field": where, "problem": why}]
            await _answer(send, 422, "The request is not valid", f"{where}: {why}", errors=errors)
            return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the server refuses a garbled length itself
        return 0

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _refuse(self, send: Send) -> None:
        detail = f"The body is larger than {self.max_bytes} bytes."
        await _answer(send, 413, "Request too large", detail, close=True)


NUL_PROBLEM = "contains a NUL character (\\u0000), which no text field may hold"


def _refusal(scope: Scope, body: bytes) -> tuple[str, str] | None:
    """Where the request is unreadable, and why, if it is: path, query or body."""
    if "\x00" in scope.get("path", ""):
        return "(path)", NUL_PROBLEM
    query = scope.get("query_string", b"")
    if b"\x00" in query or b"%00" in query.lower():
        return "(query)", NUL_PROBLEM
    if body and _is_json(_header(scope, b"content-type")):
        try:
            value = read_json(body)
        except NotJson as error:
            return "(body)", str(error)
        return ("(body)", NUL_PROBLEM) if contains_nul(value) else None
    if b"\x00" in body:
        return "(body)", NUL_PROBLEM
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


async def _answer(
    send: Send,
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, str]] | None = None,
    close: bool = False,
) -> None:
    problem: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    problem["detail"] = detail
    if errors is not None:
        problem["errors"] = errors
    body = orjson.dumps(problem)
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, the app only waits for the client to go away.
        return await receive()

    return replay


async def json_body(request: Request) -> None:
    """A dependency for routes that take a JSON body: anything else is 415. (async: it only
    reads a header, so it runs on the event loop instead of taking a trip to the thread pool)"""
    if not _is_json(request.headers.get("content-type")):
        raise HTTPException(415, "Send the body as JSON, with `Content-Type: application/json`.")


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )
