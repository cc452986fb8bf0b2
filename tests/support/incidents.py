"""Many distinct incidents for the fault suite and the flood: random categories, each on a
place of its own so that none is folded into another as a duplicate."""

from __future__ import annotations

import random
import uuid

CATEGORIES = ["gas.leak", "water.pipe_burst", "power.outage", "roads.pothole", "heating.no_heat"]


def incident(n: int, rng: random.Random, tag: str = "fault") -> dict[str, object]:
    return {
        "source": "hotline",
        "external_id": f"{tag}-{n}-{uuid.uuid4().hex[:6]}",
        "category": rng.choice(CATEGORIES),
        "title": f"第{n}号来电",
        # On a grid with 0.05 degrees between neighbours (2.7 km and more below 60 degrees of
        # latitude), wider than any duplicate radius: none is folded into another.
        "location": {"latitude": -60.0 + (n // 400) * 0.05, "longitude": -170.0 + (n % 400) * 0.05},
    }
