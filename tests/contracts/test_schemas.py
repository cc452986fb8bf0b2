"""`schemas/` is generated from the models; this fails when someone forgets to regenerate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.contracts.export import rendered_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


@pytest.mark.parametrize("name", sorted(rendered_schemas()))
def test_checked_in_schema_matches_the_model(name: str) -> None:
    path = SCHEMAS / name
    assert path.exists(), f"{path} is missing: run `closeloop schemas export`"
    assert path.read_text(encoding="utf-8") == rendered_schemas()[name], (
        f"{path} drifted from the models: run `closeloop schemas export` and commit the result"
    )


def test_no_stale_schema_files() -> None:
    stale = {p.name for p in SCHEMAS.glob("*.json")} - set(rendered_schemas())
    assert not stale, f"schemas/ has files no model produces: {sorted(stale)}"


def test_incident_schema_limits_description() -> None:
    schema = json.loads(rendered_schemas()["incident.schema.json"])
    assert schema["properties"]["description"]["maxLength"] == 4000
    assert schema["additionalProperties"] is False
