"""Running a stage from the API: in a transaction of its own, again if it lost a race.

A department acting on its task and a webhook worker noting a delivery on the same case
write the same audit chain; the loser of that race sees `ConcurrentChange`. Stages are
idempotent, so running the work again in a fresh transaction is safe and usually succeeds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.orm import Session

from worker.db.guard import ConcurrentChange
from worker.db.session import transaction

ATTEMPTS = 3
Result = TypeVar("Result")


def in_transaction(work: Callable[[Session], Result], attempts: int = ATTEMPTS) -> Result:
    left = attempts
    while True:
        try:
            with transaction() as session:
                return work(session)
        except ConcurrentChange:
            left -= 1
            if not left:
                raise
