"""Task names, importable without importing Celery tasks (stages enqueue by name)."""

MONITOR = "closeloop.pipeline.monitor"
DISPATCH = "closeloop.pipeline.dispatch"
SEND_WEBHOOK = "closeloop.webhooks.send"
SCAN_WEBHOOKS = "closeloop.webhooks.scan_due"
