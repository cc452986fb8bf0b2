"""docker-compose.yml and the Dockerfile run console commands that exist and parse.

No Docker engine runs here, so the compose file is checked by reading: every closeloop
command it (or the image) runs is invoked with --help through the real CLI.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from worker.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _closeloop_commands() -> list[tuple[str, list[str]]]:
    commands = []
    for name, service in COMPOSE["services"].items():
        for command in (service.get("command"), service.get("healthcheck", {}).get("test")):
            if command and command[0] == "CMD":
                command = command[1:]
            if command and command[0] == "closeloop":
                commands.append((name, command[1:]))
    cmd = re.search(r"^CMD (.+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    assert cmd, "the Dockerfile has no CMD"
    commands.append(("Dockerfile", json.loads(cmd.group(1))[1:]))
    return commands


@pytest.mark.parametrize(("service", "args"), _closeloop_commands())
def test_command_exists_and_its_options_parse(service: str, args: list[str]) -> None:
    result = CliRunner().invoke(app, [*_without_values(args), "--help"])
    assert result.exit_code == 0, f"{service}: closeloop {' '.join(args)}: {result.output}"
    for option in (a for a in args if a.startswith("--")):
        assert option in result.output, f"{service}: closeloop has no option {option}"


def _without_values(args: list[str]) -> list[str]:
    """The sub-command words only: options and their values are checked against --help."""
    words = []
    for arg in args:
        if arg.startswith("-"):
            break
        words.append(arg)
    return words


def test_services_that_use_the_store_wait_for_the_migration() -> None:
    users = [n for n, s in COMPOSE["services"].items() if n != "migrate" and "environment" in s
             and "CLOSELOOP_DATABASE_URL" in s["environment"]]  # fmt: skip
    assert "api" in users
    for name in users:
        condition = COMPOSE["services"][name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", name


def test_every_service_has_a_health_check_or_is_one_shot() -> None:
    for name, service in COMPOSE["services"].items():
        assert "healthcheck" in service or service.get("restart") == "no", name
