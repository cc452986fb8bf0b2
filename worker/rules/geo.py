"""Point in polygon for named areas: even-odd ray casting over every ring, so holes just work.

A bounding box is checked first: most incidents are nowhere near most areas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]
Ring = tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Shape:
    """One polygon: its outer ring and holes, positions as (longitude, latitude)."""

    rings: tuple[Ring, ...]
    west: float
    south: float
    east: float
    north: float

    def contains(self, lon: float, lat: float) -> bool:
        if not (self.west <= lon <= self.east and self.south <= lat <= self.north):
            return False
        inside = False
        for ring in self.rings:
            if _crossings_odd(ring, lon, lat):
                inside = not inside
        return inside


def _crossings_odd(ring: Ring, x: float, y: float) -> bool:
    odd = False
    x1, y1 = ring[-1]
    for x2, y2 in ring:
        # Count edges straddling the horizontal line through the point, right of the point.
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            odd = not odd
        x1, y1 = x2, y2
    return odd


def shape(rings: Sequence[Sequence[Sequence[float]]]) -> Shape:
    clean = tuple(tuple((float(p[0]), float(p[1])) for p in ring) for ring in rings)
    outer = clean[0]
    return Shape(
        rings=clean,
        west=min(p[0] for p in outer),
        south=min(p[1] for p in outer),
        east=max(p[0] for p in outer),
        north=max(p[1] for p in outer),
    )


def ring_problem(ring: Sequence[Sequence[float]]) -> str | None:
    """Why a GeoJSON linear ring is unusable, or None when it is fine."""
    if len(ring) < 4:
        return (
            f"a ring needs at least 4 positions (3 corners and the first again), it has {len(ring)}"
        )
    if list(ring[0][:2]) != list(ring[-1][:2]):
        return "a ring must end where it starts: repeat the first position as the last"
    for lon, lat, *_ in ring:
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            return (
                f"position [{lon}, {lat}] is off the globe; GeoJSON order is [longitude, latitude]"
            )
    if len({(p[0], p[1]) for p in ring}) < 3:
        return "a ring needs at least 3 distinct corners"
    return None
