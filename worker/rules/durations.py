"""Human durations as rule authors write them: `30m`, `2h`, `7d`, `1d12h`."""

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+)([smhdw])")
_WHOLE = re.compile(r"^(?:\d+[smhdw])+$")
PATTERN = r"^([0-9]+[smhdw])+$"
HINT = "write a number and a unit, like 30m, 2h, 7d or 1d12h (units: s, m, h, d, w)"


def parse_duration(text: str) -> timedelta:
    """`2h` -> 2 hours. Raises ValueError with a message a rule author can act on."""
    compact = text.strip().lower()
    if not _WHOLE.match(compact):
        raise ValueError(f"bad duration {text!r}: {HINT}")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(compact))
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration: `30m`, `2h`, `24h`, `36h`, `7d`, `1h30m`."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    # Hotline practice speaks of 2 hours, 24 hours, 7 days: days only from 2 whole days up.
    units = ("d",) if seconds % 86400 == 0 and seconds >= 2 * 86400 else ("h", "m", "s")
    parts = []
    for unit in units:
        count, seconds = divmod(seconds, _UNITS[unit])
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
