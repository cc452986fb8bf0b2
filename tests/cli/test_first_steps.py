"""A newcomer's first commands, run as a newcomer runs them: from a shell with no CLOSELOOP_*
settings, in a folder of their choosing. Each answer is one line they can act on; nothing
is sent where nobody reads it; stdout carries the command's answer alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.config import Settings
from worker.db.migrate import upgrade
from worker.messaging.broker_transport import BrokerNotConfigured
from worker.tasks.app import celery_config, configure

ROOT = Path(__file__).resolve().parents[2]
GAS_LEAK = {
    "source": "hotline",
    "category": "gas.leak",
    "title": "楼道里有煤气味",
    "location": {"district": "gulou"},
}


def newcomer_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSELOOP_")}
    return {**env, **settings}


def closeloop(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        cwd=cwd,
        env=env if env is not None else newcomer_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_intake_send_without_a_broker_says_what_to_set_and_sends_nothing(tmp_path: Path) -> None:
    # On this machine RabbitMQ answers at amqp://guest@localhost//: Celery's own default
    # broker would take the message and report success, and nobody would ever read it.
    incident = tmp_path / "gas.json"
    incident.write_text(json.dumps(GAS_LEAK, ensure_ascii=False), encoding="utf-8")
    done = closeloop("intake", "send", str(incident), cwd=tmp_path)
    line = one_line_error(done)
    assert "sent" not in done.stdout
    assert "CLOSELOOP_BROKER_URL" in line
    assert "--data-dir" in line


def test_the_celery_app_never_falls_back_to_a_default_broker() -> None:
    settings = Settings(broker_url=None)
    assert "amqp" not in str(celery_config(settings)["broker_url"])
    app = configure(settings)
    try:
        with (
            pytest.raises(BrokerNotConfigured, match="CLOSELOOP_BROKER_URL"),
            app.connection_for_write() as connection,
        ):
            connection.ensure_connection(max_retries=1)
    finally:
        configure()


@pytest.mark.parametrize(
    "command",
    [
        ["token", "list"],
        ["token", "create", "--role", "hotline"],
        ["reconcile"],
        ["audit", "verify"],
        ["metrics"],
        ["deliveries", "dead"],
    ],
)
def test_a_command_run_outside_the_data_folder_says_so_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    line = one_line_error(closeloop(*command, cwd=tmp_path))
    assert "no closeloop store" in line
    assert "--data-dir" in line
    assert "CLOSELOOP_DATA_DIR" in line


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    done = closeloop("token", "list", cwd=tmp_path, env=newcomer_env(CLOSELOOP_API_PORT="eighty"))
    assert "CLOSELOOP_API_PORT" in one_line_error(done)


def test_token_create_prints_the_token_alone_on_stdout(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    upgrade(f"sqlite:///{data / 'closeloop.sqlite3'}")
    done = closeloop("token", "create", "--role", "department", "--department", "gas", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1, done.stdout
    assert done.stdout.startswith("cl_"), done.stdout
    # --data-dir from anywhere finds the same store
    elsewhere = closeloop("--data-dir", str(data), "token", "list", cwd=tmp_path.parent)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert "gas" in elsewhere.stdout


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_up_on_a_taken_port_fails_at_once_in_one_line(tmp_path: Path, taken_port: int) -> None:
    started = time.monotonic()
    done = closeloop("up", "--port", str(taken_port), cwd=tmp_path, timeout=30)
    assert time.monotonic() - started < 15
    line = one_line_error(done)
    assert f"port {taken_port}" in line
    assert "--port" in line
    assert "closeloop is up" not in done.stdout


def test_demo_on_a_taken_port_says_so_before_simulating(tmp_path: Path, taken_port: int) -> None:
    done = closeloop("demo", "--data-dir", str(tmp_path / "demo"), "--port", str(taken_port),
                     cwd=tmp_path, timeout=30)  # fmt: skip
    line = one_line_error(done)
    assert f"port {taken_port} is taken" in line
    assert "A day of the example city" not in done.stdout
    assert "Dashboard" not in done.stdout


def test_the_demo_folder_is_not_committed_by_mistake() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "closeloop-demo/closeloop.sqlite3"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0
