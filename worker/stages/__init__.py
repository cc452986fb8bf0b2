"""The pipeline, a module per stage, in the order a case meets them:

intake → triage → dispatch → command → closeloop

`alerts` turns monitoring alerts into intake; `sweep` re-drives cases stuck between stages.
Stage functions take a session, change state only through `worker.ledger`, and never commit:
the Celery tasks in `worker.tasks` and the API wrap them in a transaction. What people do to a
case beside the pipeline (a department's work, a supervisor's steps) is in `worker.actions`.
"""
