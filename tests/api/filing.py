"""Incident bodies for the API tests."""

from __future__ import annotations

from typing import Any

PHONE = "+86 138 0013 8000"


def incident_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": "hotline",
        "category": "water.pipe_burst",
        "title": "自来水管爆裂",
        "description": "朝阳路12号门前水管爆裂，水流到马路上。",
        "location": {"latitude": 39.92, "longitude": 116.44, "district": "dongcheng"},
        "reporter": {"name": "王女士", "phone": PHONE},
    }
    body.update(overrides)
    return body
