"""A flood of incidents over HTTP, as many as the API accepts, from several clients at once:
shared by the fault suite's flood scenario and `bench/flood.py`."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx

from tests.support.incidents import incident


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
    bodies = [incident(n, rng, "flood") for n in range(count)]
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
