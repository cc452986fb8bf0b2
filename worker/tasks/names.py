"""Task names, importable without importing Celery tasks (stages enqueue by name)."""

MONITOR = "closeloop.pipeline.monitor"
DISPATCH = "closeloop.pipeline.dispatch"
SEND_WEBHOOK = "closeloop.webhooks.send"
SCAN_WEBHOOKS = "closeloop.webhooks.scan_due"

RELAY_OUTBOX = "closeloop.timers.relay_outbox"
SWEEP_STALLED = "closeloop.timers.sweep_stalled"
SCAN_DEADLINES = "closeloop.timers.scan_deadlines"
CLOSE_UNANSWERED = "closeloop.timers.close_unanswered"

# What beat runs every few seconds. Their every run logged at INFO ("Sending due task",
# "received", "succeeded") was most of an idle service's log: they log at DEBUG instead.
ROUTINE = frozenset({SCAN_WEBHOOKS, RELAY_OUTBOX, SWEEP_STALLED, SCAN_DEADLINES, CLOSE_UNANSWERED})
