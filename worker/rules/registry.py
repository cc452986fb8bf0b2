"""The ruleset in force, swapped whole and atomically when the rules folder changes.

A load that fails leaves the ruleset in force untouched: a typo in one file never stops
routing. `get()` is what every decision uses; `reload()` is `closeloop rules reload`;
`maybe_reload()` is cheap enough to call before every decision, and the module's `get()`
calls it, so whoever reads the rules in force sees a changed folder within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from worker.config import get_settings
from worker.rules.compiled import Ruleset
from worker.rules.loader import RulesLoadError, fingerprint, load_ruleset
from worker.rules.targets import endpoint_warnings

log = structlog.get_logger(__name__)

CHECK_EVERY_SECONDS = 2.0


def rules_dir() -> Path:
    """The rules folder of the settings: $CLOSELOOP_RULES_DIR, else ./routing_rules."""
    return get_settings().resolved_rules_dir()


class Registry:
    def __init__(
        self,
        directory: Path | str,
        *,
        check_every: float = CHECK_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = Path(directory)
        self._check_every = check_every
        self._clock = clock
        self._lock = threading.Lock()
        self._current: Ruleset | None = None
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self._checked_at = float("-inf")

    @property
    def loaded(self) -> bool:
        return self._current is not None

    def get(self) -> Ruleset:
        """The ruleset in force; loads it on first use (raising RulesLoadError if it is bad)."""
        current = self._current
        if current is None:
            return self.reload()
        return current

    def reload(self) -> Ruleset:
        """Load the folder and put it in force; on RulesLoadError the old ruleset stays."""
        with self._lock:
            seen = fingerprint(self.directory)
            ruleset = load_ruleset(self.directory)
            self._fingerprint = seen
            self._checked_at = self._clock()
            previous, self._current = self._current, ruleset
        if previous is None or previous.version != ruleset.version:
            log.info("rules.loaded", version=ruleset.version, directory=str(self.directory))
            for warning in endpoint_warnings(ruleset):
                log.warning("rules.endpoint_inside_network", warning=warning)
        return ruleset

    def maybe_reload(self, *, look_now: bool = False) -> bool:
        """Reload if the folder changed since the last look (looks at most every few seconds,
        or at once with `look_now`).

        True when a new ruleset was put in force. A refused load is logged, not raised, and
        not retried until the files change again.
        """
        now = self._clock()
        recently = now - self._checked_at < self._check_every
        if self._current is not None and recently and not look_now:
            return False
        self._checked_at = now
        seen = fingerprint(self.directory)
        if self._current is not None and seen == self._fingerprint:
            return False
        before = self._current
        try:
            self.reload()
        except RulesLoadError as exc:
            self._fingerprint = seen
            log.error(
                "rules.refused",
                directory=str(self.directory),
                errors=[str(e) for e in exc.errors],
                in_force=before.version if before else None,
            )
            return False
        return self._current is not before


_default: Registry | None = None
_default_lock = threading.Lock()


def default() -> Registry:
    """The process-wide registry, on `rules_dir()`."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry(rules_dir())
        return _default


def configure(directory: Path | str, *, check_every: float = CHECK_EVERY_SECONDS) -> Registry:
    """Point the process-wide registry at another folder (settings, tests)."""
    global _default
    with _default_lock:
        _default = Registry(directory, check_every=check_every)
        return _default


def get(*, look_now: bool = False) -> Ruleset:
    """The ruleset in force in this process, having looked for a changed folder first.

    Every reader goes through here (the pipeline, the API, the webhook sender looking up a
    department's URL), so each process picks up an edited folder by itself within
    `CHECK_EVERY_SECONDS`, or at once with `look_now` (a fraction of a millisecond: a stat
    of each rule file); a Celery worker that only sends webhooks has no other trigger."""
    registry = default()
    if registry.loaded:
        registry.maybe_reload(look_now=look_now)
    return registry.get()


def reload() -> Ruleset:
    return default().reload()


def maybe_reload() -> bool:
    return default().maybe_reload()
