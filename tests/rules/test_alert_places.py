"""Where an alert is: coordinates and an address from its labels, so that a duplicate policy
can fold alerts from one place; and `rules check` warns when no alert could ever carry one."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from tests.rules.conftest import EXAMPLE_CITY
from worker.cli.main import app
from worker.contracts.incident import Incident
from worker.rules import RulesLoadError, incident_from_alert, load_ruleset
from worker.rules.lint import warnings

CITY = load_ruleset(EXAMPLE_CITY)
BURST = {"alertname": "WaterMainBurst", "district": "gulou"}


def place(**labels: str) -> dict[str, Any]:
    incident = Incident.model_validate(incident_from_alert(CITY, {**BURST, **labels}, {}))
    return incident.location.model_dump(exclude_none=True)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"latitude": "32.0587", "longitude": "118.7965"},
            {"latitude": 32.0587, "longitude": 118.7965},
        ),
        ({"latitude": " -33.9 ", "longitude": "18.4"}, {"latitude": -33.9, "longitude": 18.4}),
        ({"latitude": "32.0587"}, {}),  # one without the other says nowhere
        ({"latitude": "north", "longitude": "118.7"}, {}),
        ({"latitude": "91", "longitude": "118.7"}, {}),
        ({"latitude": "32", "longitude": "-181"}, {}),
        ({"latitude": "nan", "longitude": "118.7"}, {}),
        ({"latitude": "inf", "longitude": "118.7"}, {}),
        ({"address": "  中山路  12号 "}, {"address": "中山路 12号"}),
        ({"address": "   "}, {}),
        ({"address": "x" * 800}, {"address": "x" * 500}),
    ],
)
def test_coordinates_and_address_from_labels(
    labels: dict[str, str], expected: dict[str, Any]
) -> None:
    assert place(**labels) == {"district": "gulou", **expected}


@given(
    latitude=st.one_of(st.none(), st.text(max_size=30), st.floats().map(str)),
    longitude=st.one_of(st.none(), st.text(max_size=30), st.floats().map(str)),
    address=st.one_of(st.none(), st.text(max_size=700)),
)
def test_whatever_the_labels_say_the_alert_is_a_valid_incident(
    latitude: str | None, longitude: str | None, address: str | None
) -> None:
    given_labels = {
        name: value
        for name, value in (("latitude", latitude), ("longitude", longitude), ("address", address))
        if value is not None
    }
    found = place(**given_labels)
    assert ("latitude" in found) == ("longitude" in found)


def test_labels_can_be_named_differently(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(EXAMPLE_CITY, folder)
    path = folder / "monitoring.yaml"
    path.write_text(
        path.read_text(encoding="utf-8")
        .replace("latitude_label: latitude", "latitude_label: lat")
        .replace("longitude_label: longitude", "longitude_label: lon")
    )
    rules = load_ruleset(folder)
    fields = incident_from_alert(rules, {**BURST, "lat": "32.05", "lon": "118.79"}, {})
    assert (fields["location"]["latitude"], fields["location"]["longitude"]) == (32.05, 118.79)


def unmapped(tmp_path: Path, *, address: bool) -> Path:
    folder = tmp_path / "rules"
    shutil.copytree(EXAMPLE_CITY, folder)
    path = folder / "monitoring.yaml"
    text = (
        path.read_text(encoding="utf-8")
        .replace("latitude_label: latitude", "latitude_label: null")
        .replace("longitude_label: longitude", "longitude_label: null")
    )
    if not address:
        text = text.replace("address_label: address", "address_label: null")
    path.write_text(text)
    return folder


def test_rules_check_warns_of_a_duplicate_policy_no_alert_can_meet(tmp_path: Path) -> None:
    folder = unmapped(tmp_path, address=False)
    [warning] = warnings(load_ruleset(folder))
    assert "route utilities/pressure-sensor: its duplicate policy can never apply" in warning
    assert "20-utilities.yaml:" in warning
    result = CliRunner().invoke(app, ["rules", "check", str(folder)])
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output
    assert "set latitude_label and longitude_label, or address_label" in result.output
    assert "ok: 20 departments" in result.output


def test_no_warning_while_alerts_can_carry_a_place(tmp_path: Path) -> None:
    assert warnings(CITY) == []
    assert warnings(load_ruleset(unmapped(tmp_path, address=True))) == []
    result = CliRunner().invoke(app, ["rules", "check", str(EXAMPLE_CITY)])
    # The example city's endpoints are on loopback (warned of outside development); no
    # warning about duplicate policies.
    assert "duplicate" not in result.output


def test_one_coordinate_label_without_the_other_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    shutil.copytree(EXAMPLE_CITY, folder)
    path = folder / "monitoring.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("latitude_label: latitude", "latitude_label: null")
    )
    with pytest.raises(RulesLoadError, match="latitude_label and longitude_label together"):
        load_ruleset(folder)
