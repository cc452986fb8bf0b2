"""At most `CLOSELOOP_WEBHOOK_ENDPOINT_CONCURRENCY` attempts on one endpoint at once in a
worker process, so that one department's slow or dead endpoint can hold only that many of
the worker's threads, and every other department's deliveries go on.

A delivery over the bound is not an attempt: it is put back to be sent shortly.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_busy: dict[str, int] = {}


def take(endpoint: str, most: int) -> bool:
    """One of `endpoint`'s `most` slots, if one is free."""
    with _lock:
        if _busy.get(endpoint, 0) >= most:
            return False
        _busy[endpoint] = _busy.get(endpoint, 0) + 1
        return True


def give_back(endpoint: str) -> None:
    with _lock:
        left = _busy.get(endpoint, 0) - 1
        if left > 0:
            _busy[endpoint] = left
        else:
            _busy.pop(endpoint, None)


def in_use(endpoint: str) -> int:
    with _lock:
        return _busy.get(endpoint, 0)
