"""The pipeline, a module per stage, in the order a case meets them:

intake → monitor → dispatch → command → closeloop

Stage functions take a session, change state only through `worker.lifecycle`, and never
commit: the Celery tasks in `worker.tasks` and the API wrap them in a transaction.
"""
