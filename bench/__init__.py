"""Benchmarks. Their scratch stores seal audit events as the service does: with the key in
CLOSELOOP_AUDIT_KEYS, or else a throwaway one made here (inherited by the workers they start)."""

import os

from worker.ledger.audit_keys import new_key_entry

os.environ.setdefault("CLOSELOOP_AUDIT_KEYS", new_key_entry())
# Their departments' endpoints are receivers on loopback, as in development.
os.environ.setdefault("CLOSELOOP_ENVIRONMENT", "development")
