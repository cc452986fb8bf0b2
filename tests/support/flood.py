"""A flood of incidents over HTTP, as many as the API accepts, from several clients at once:
shared by the fault suite's flood scenario and `bench/flood.py`."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

CATEGORIES = ["gas.leak", "water.pipe_burst", "power.outage", "roads.pothole", "heating.no_heat"]


def incident(n: int, rng: random.Random) -> dict[str, object]:
    return {
        "source": "hotline",
        "external_id": f"flood-{n}-{uuid.uuid4().hex[:6]}",
        "category": rng.choice(CATEGORIES),
        "title": f"第{n}号来电",
        # On a grid with 0.05 degrees between neighbours (2.7 km and more below 60 degrees of
        # latitude), wider than any duplicate radius: none is folded into another.
        "location": {"latitude": -60.0 + (n // 400) * 0.05, "longitude": -170.0 + (n % 400) * 0.05},
    }


@dataclass
class Flood:
    external_ids: set[str] = field(default_factory=set)
    answers: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def accepted(self) -> int:
        return self.answers[202]


def flood(api: str, headers: dict[str, str], count: int, clients: int = 16, seed: int = 1) -> Flood:
    """POST `count` incidents to `api` from `clients` threads as fast as it answers."""
    rng = random.Random(seed)
    bodies = [incident(n, rng) for n in range(count)]
    result, lock = Flood(), threading.Lock()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    with httpx.Client(timeout=60, limits=limits) as http, ThreadPoolExecutor(clients) as pool:

        def file(body: dict[str, object]) -> None:
            try:
                answer = http.post(f"{api}/v1/incidents", json=body, headers=headers)
                status, text = answer.status_code, answer.text
            except httpx.HTTPError as error:
                status, text = 0, f"{type(error).__name__}: {error}"
            with lock:
                result.answers[status] += 1
                if status == 202:
                    result.external_ids.add(str(body["external_id"]))
                else:
                    result.failures.append(f"{status} {text[:200]}")

        started = time.perf_counter()
        list(pool.map(file, bodies))
        result.seconds = time.perf_counter() - started
    return result
