"""The base of every closeloop Celery task: retry what is transient, cap redeliveries, and
turn what can never succeed into a dead-letter record.

- A transient failure (database or broker unreachable, a concurrent change to the same case)
  is retried with exponential backoff and jitter.
- A message whose worker died while running it is delivered again (acks_late); if that keeps
  happening (a poison message that crashes the worker), the `redelivery_cap`-th start records
  a dead letter and acknowledges the message instead of running it again.
- A task that ran out of retries, or failed for a reason no retry fixes, leaves a dead letter
  with its arguments and the error.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Task
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import InterfaceError, OperationalError

from worker.config import get_settings
from worker.db.guard import ConcurrentChange
from worker.db.session import get_engine
from worker.logging import get_logger
from worker.messaging.broker import key, redis_client
from worker.messaging.dead_letters import record_dead_letter
from worker.rules.loader import RulesLoadError

log = get_logger("closeloop.tasks")

# RulesLoadError: no usable rules yet (a missing or broken folder at start-up). Waiting is
# right: the operator fixes the folder, the registry reloads, the case goes on.
TRANSIENT = (
    RulesLoadError,
    OperationalError,
    InterfaceError,
    ConcurrentChange,
    RedisConnectionError,
    ConnectionError,
)

_STARTS_TTL_S = 7 * 24 * 3600


class ClosedLoopTask(Task):  # type: ignore[misc]
    autoretry_for = TRANSIENT
    retry_backoff = 1
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 12
    acks_late = True
    reject_on_worker_lost = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # Only a redelivered message can have had a start whose worker died (the broker marks
        # every message it puts back), so only those are counted: a first delivery costs no
        # round trip to Redis.
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        starts_key = key(f"starts:{self.request.id}") if redelivered and self.request.id else None
        if starts_key and self._too_many_starts(starts_key, args, kwargs):
            return None
        try:
            return self.run(*args, **kwargs)
        finally:
            if starts_key:
                self._forget(starts_key)

    def _too_many_starts(self, starts_key: str, args: Any, kwargs: Any) -> bool:
        try:
            with redis_client().pipeline(transaction=False) as pipe:  # one round trip
                pipe.incr(starts_key)
                pipe.expire(starts_key, _STARTS_TTL_S)
                # The first start, which died and was not counted, plus the ones since.
                starts = 1 + int(pipe.execute()[0])
        except RedisConnectionError:
            return False  # cannot count: run it; idempotence makes an extra run harmless
        cap = get_settings().redelivery_cap
        if starts <= cap:
            return False
        record_dead_letter(
            get_engine(),
            kind="task",
            reason=(
                f"{self.name} was started {starts} times and its worker died each time "
                f"(cap {cap}); not running it again"
            ),
            body=json.dumps(
                {"args": list(args), "kwargs": kwargs}, ensure_ascii=False, default=str
            ),
            details={"task": self.name, "task_id": self.request.id},
        )
        self._forget(starts_key)
        return True

    def _forget(self, starts_key: str) -> None:
        try:
            redis_client().delete(starts_key)
        except RedisConnectionError:
            log.warning("could not clear the start counter", key=starts_key)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        try:
            record_dead_letter(
                get_engine(),
                kind="task",
                reason=f"{self.name} failed: {type(exc).__name__}: {exc}",
                body=json.dumps(
                    {"args": list(args), "kwargs": kwargs}, ensure_ascii=False, default=str
                ),
                details={"task": self.name, "task_id": task_id},
            )
        except Exception as error:
            # The database is what failed: the sweeper re-drives the case from its state later.
            log.error("could not record dead letter", task=self.name, error=str(error))
