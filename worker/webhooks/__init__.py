"""Signed webhooks to departments that survive real departments (Standard Webhooks).

What other stages call:

- `queue_delivery(session, case=, task=, department=, event_type=, payload=, dedupe_key=)`
  in their own transaction, with `build_payload(case, task, share_contact=, details=)`;
- `send_delivery(engine, delivery_id)` (the send task) and `queue_due(session)` (beat's scan);
- `find_deliveries`, `replay_deliveries`, `retry_deliveries_now`, `enable_endpoint` (the API
  and the CLI).
"""

from worker.webhooks.endpoints import (
    Endpoint,
    EndpointUnusable,
    endpoint_for,
    endpoint_from_env,
    ops_department,
)
from worker.webhooks.payloads import build_payload
from worker.webhooks.queue import ENDPOINT_DISABLED, EVENT_TYPES, TASK_EVENTS, queue_delivery
from worker.webhooks.replay import (
    NotReplayable,
    NotRetryable,
    ReplayReport,
    dead_ids,
    enable_endpoint,
    find_deliveries,
    replay_deliveries,
    replay_delivery,
    retry_deliveries_now,
    retry_delivery_now,
)
from worker.webhooks.scan import queue_due
from worker.webhooks.sending import send_delivery

__all__ = [
    "ENDPOINT_DISABLED",
    "EVENT_TYPES",
    "TASK_EVENTS",
    "Endpoint",
    "EndpointUnusable",
    "NotReplayable",
    "NotRetryable",
    "ReplayReport",
    "build_payload",
    "dead_ids",
    "enable_endpoint",
    "endpoint_for",
    "endpoint_from_env",
    "find_deliveries",
    "ops_department",
    "queue_delivery",
    "queue_due",
    "replay_deliveries",
    "replay_delivery",
    "retry_deliveries_now",
    "retry_delivery_now",
    "send_delivery",
]
