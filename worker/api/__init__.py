"""The HTTP API (FastAPI): intake, cases, department tasks, supervisors, health."""
