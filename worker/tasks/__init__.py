"""Celery tasks: thin wrappers (3-10 lines) around one stage function each.

A task loads what it needs, calls the stage in a transaction, and commits. Each module holds
the tasks of one queue; names are `closeloop.<queue>.<what>` (see `names.py`) so that the
name routes them. `schedule.py` gathers the periodic entries for `closeloop beat`.
"""
