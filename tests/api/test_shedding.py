"""Load shedding on a real uvicorn server on loopback: past the bound of requests in flight
the answer is 503 with Retry-After at once, /health stays fast whatever the load, and a body
that trickles in is cut off with 408."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from worker.api.app import create_app
from worker.auth import Role, create_token
from worker.config import reset_settings_cache
from worker.db.session import transaction

BOUND = 3
BODY_TIMEOUT = 1.0


@contextmanager
def serving() -> Iterator[str]:
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_config=None, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def api(service: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("CLOSELOOP_MAX_REQUESTS_IN_FLIGHT", str(BOUND))
    monkeypatch.setenv("CLOSELOOP_REQUEST_BODY_TIMEOUT", str(BODY_TIMEOUT))
    reset_settings_cache()
    try:
        with serving() as address:
            yield address
    finally:
        monkeypatch.delenv("CLOSELOOP_MAX_REQUESTS_IN_FLIGHT")
        monkeypatch.delenv("CLOSELOOP_REQUEST_BODY_TIMEOUT")
        reset_settings_cache()


def _trickler(address: str, token: str) -> socket.socket:
    """A client with a valid token (one without is refused before its body is read) that
    sends its headers and the start of its body, then nothing."""
    host, port = address.split(":")
    connection = socket.create_connection((host, int(port)), timeout=10)
    connection.sendall(
        b"POST /v1/incidents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {token}\r\n".encode()
        + b'Content-Length: 100\r\n\r\n{"source": '
    )
    return connection


def _status_of(connection: socket.socket) -> tuple[int, float]:
    started = time.monotonic()
    answer = connection.recv(4096)
    return int(answer.split()[1]), time.monotonic() - started


def test_past_the_bound_503_at_once_health_fast_and_slow_bodies_408(api: str) -> None:
    with transaction() as session:
        token = create_token(session, Role.hotline).token
    slow = [_trickler(api, token) for _ in range(BOUND)]
    time.sleep(0.2)  # every one of them is in flight
    with httpx.Client(base_url=f"http://{api}", timeout=5) as client:
        started = time.monotonic()
        shed = client.get("/v1/cases")
        assert time.monotonic() - started < 0.5
        assert shed.status_code == 503
        assert shed.headers["retry-after"] == "1"
        assert shed.headers["content-type"] == "application/problem+json"
        assert "CLOSELOOP_MAX_REQUESTS_IN_FLIGHT" in shed.json()["detail"]
        health = client.get("/health")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        # The tricklers are cut off after the body timeout, not left holding their slots.
        for connection in slow:
            status, waited = _status_of(connection)
            assert status == 408
            assert waited < BODY_TIMEOUT + 1
            connection.close()
        assert client.get("/v1/cases").status_code == 401  # let in again: asks for a token


def test_a_burst_of_concurrent_clients_gets_answers_not_resets(api: str) -> None:
    with transaction() as session:
        token = create_token(session, Role.supervisor).token
    auth = {"Authorization": f"Bearer {token}"}

    async def burst() -> tuple[list[int], list[float]]:
        limits = httpx.Limits(max_connections=60)
        async with httpx.AsyncClient(base_url=f"http://{api}", timeout=20, limits=limits) as c:

            async def health_times() -> list[float]:
                times = []
                for _ in range(10):
                    started = time.monotonic()
                    assert (await c.get("/health")).status_code == 200
                    times.append(time.monotonic() - started)
                    await asyncio.sleep(0.05)
                return times

            requests = [c.get("/v1/cases", headers=auth) for _ in range(60)]
            *answers, times = await asyncio.gather(*requests, health_times())
            return [a.status_code for a in answers], times

    statuses, health_times = asyncio.run(asyncio.wait_for(burst(), 60))
    assert set(statuses) <= {200, 503}
    assert statuses.count(503) > 0
    assert statuses.count(200) >= BOUND
    assert max(health_times) < 1.0
