"""Named daily time windows in a time zone, such as the night 22:00-06:00 in Asia/Shanghai."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class Window:
    id: str
    zone: ZoneInfo
    start: int  # minutes after local midnight
    end: int
    weekdays: frozenset[int] | None  # Monday = 0; the day the window opens

    def holds(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            return self.start <= minute < self.end and self._on(local.weekday())
        # Crosses midnight: the early-morning part belongs to the previous day's window.
        if minute >= self.start:
            return self._on(local.weekday())
        if minute < self.end:
            return self._on((local - timedelta(days=1)).weekday())
        return False

    def _on(self, weekday: int) -> bool:
        return self.weekdays is None or weekday in self.weekdays

    def describe(self) -> str:
        days = (
            ""
            if self.weekdays is None
            else " on " + ",".join(_DAY[d] for d in sorted(self.weekdays))
        )
        return f"{_clock(self.start)}-{_clock(self.end)} {self.zone.key}{days}"


_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
