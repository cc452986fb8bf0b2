"""The Celery application: queues per kind of work, and the settings that keep work safe.

Every choice here protects against a named failure (see the README's "Reliability settings"):

- `task_acks_late` + `task_reject_on_worker_lost`: a message is acknowledged only after its
  task finished, so a worker killed mid-task leaves the message to be delivered again.
- `worker_prefetch_multiplier = 1`: a worker holds one message at a time, so a slow department
  endpoint never sits on messages another worker could run.
- `visibility_timeout` (`CLOSELOOP_BROKER_VISIBILITY_TIMEOUT`): how long Redis waits for an
  acknowledgement before handing the message to another worker; keep it longer than any task
  may run (tasks have a hard time limit of two minutes).
- queues per kind of work (incidents for intake, pipeline, webhooks, timers), each consumable by
  its own workers, so webhooks stuck on a dead endpoint never delay triage of a gas leak.
- a redelivery cap (`worker.tasks.base`): a message that kills its worker every time ends as a
  dead-letter record, never an endless loop and never a silent drop.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu.entity import Exchange, Queue

from worker.config import Settings, get_settings
from worker.messaging.broker_transport import TRANSPORT, UNCONFIGURED_TRANSPORT, UNCONFIGURED_URL
from worker.metrics.counting import install_session_counting, install_task_timing

# `incidents` is the intake queue: raw JSON incidents from any producer, read by a consumer
# step of its own (worker/messaging/intake_queue.py). The others carry Celery tasks.
QUEUES = ("incidents", "pipeline", "webhooks", "timers")
TASK_QUEUES = ("pipeline", "webhooks", "timers")

# Task names are "closeloop.<queue>.<what>": the middle word routes them. Published through
# the default exchange, whose routing key is the queue's name: on Redis that is one LPUSH,
# where a named exchange first reads its bindings (a second round trip per message).
TASK_ROUTES = {
    f"closeloop.{queue}.*": {"queue": queue, "exchange": "", "routing_key": queue}
    for queue in TASK_QUEUES
}

TASK_MODULES = [
    "worker.tasks.pipeline",
    "worker.tasks.timers",
    "worker.tasks.webhooks",
    # not tasks: a remote-control command the workers answer (`closeloop rules reload`)
    "worker.tasks.control",
]

TASK_TIME_LIMIT_S = 120

app = Celery("closeloop")


def celery_config(settings: Settings) -> dict[str, Any]:
    transport: dict[str, Any] = {"visibility_timeout": settings.broker_visibility_timeout}
    if settings.broker_key_prefix:
        transport["global_keyprefix"] = settings.broker_key_prefix
    return {
        "broker_url": settings.broker_url or UNCONFIGURED_URL,
        "broker_transport": _transport_for(settings.broker_url),
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Each queue its own exchange and routing key: left implicit, Celery binds every queue
        # to the default exchange and key, and a message would land in all of them.
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name) for name in TASK_QUEUES
        ],
        "task_default_exchange": "pipeline",
        "task_default_routing_key": "pipeline",
        "task_default_queue": "pipeline",
        "task_routes": TASK_ROUTES,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        "task_time_limit": TASK_TIME_LIMIT_S,
        "task_soft_time_limit": TASK_TIME_LIMIT_S - 10,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "enable_utc": True,
        "imports": TASK_MODULES,
    }


def _transport_for(url: str | None) -> str | None:
    """kombu's Redis transport, sharing one client per channel (see
    `worker.messaging.broker_transport`), for redis:// and rediss:// URLs; any other URL keeps
    the transport its scheme names; no URL, the transport that refuses to connect."""
    if not url:
        return UNCONFIGURED_TRANSPORT
    scheme = url.split("://", 1)[0].lower()
    return TRANSPORT if scheme in ("redis", "rediss") else None


def configure(settings: Settings | None = None) -> Celery:
    """Apply the settings to the app (again, after tests or `closeloop up` change them)."""
    config = celery_config(settings or get_settings())
    keys = ("broker_url", "broker_transport", "broker_transport_options")
    changed = any(app.conf.get(k) != config[k] for k in keys)
    app.conf.update(config)
    if changed:
        _drop_connection_pools()
    return app


def _drop_connection_pools() -> None:
    # Pools keep the broker URL and key prefix they were made with; a reconfigured app (tests,
    # `closeloop up`) must not publish through a pool pointing at the old broker.
    pool = app._pool
    if pool is not None:
        pool.force_close_all()
    app._pool = None
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None


configure()
# Stage timings and the audit-driven counters, in every process that runs tasks.
install_session_counting()
install_task_timing()
