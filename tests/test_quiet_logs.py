"""What `closeloop up` logs: not beat's routine every few seconds, but every failed webhook
attempt with why and when the next one goes, and no error when it is told to stop."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import beat
from celery.app import trace
from celery.worker import state as worker_state
from structlog.testing import capture_logs

from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import interruptible, wait_for
from worker.logging import configure_logging
from worker.messaging.intake_queue import IncidentIntake
from worker.tasks.names import (
    CLOSE_UNANSWERED,
    MONITOR,
    RELAY_OUTBOX,
    ROUTINE,
    SCAN_DEADLINES,
    SCAN_WEBHOOKS,
    SEND_WEBHOOK,
    SWEEP_STALLED,
)


def celery_lines(level: str, task: str) -> list[dict[str, object]]:
    """What Celery's own code logs for one run of `task` from beat, through our logging."""
    stream = io.StringIO()
    configure_logging(level, "json", stream=stream)
    beat.info("Scheduler: Sending due task %s (%s)", "an-entry", task)
    context = {"id": "t-1", "name": task, "args": "()", "kwargs": "{}", "eta": None}
    trace.info(trace.LOG_RECEIVED, context)
    trace.info(trace.LOG_SUCCESS, {**context, "return_value": "0", "runtime": 0.01})
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    "task", [SCAN_WEBHOOKS, RELAY_OUTBOX, SWEEP_STALLED, SCAN_DEADLINES, CLOSE_UNANSWERED]
)
def test_beats_routine_is_quiet_at_info_and_shown_at_debug(task: str) -> None:
    assert task in ROUTINE
    assert celery_lines("INFO", task) == []
    shown = celery_lines("DEBUG", task)
    assert [line["level"] for line in shown] == ["debug"] * 3
    assert "Sending due task" in str(shown[0]["event"])


@pytest.mark.parametrize("task", [SEND_WEBHOOK, MONITOR])
def test_the_work_itself_is_still_logged_at_info(task: str) -> None:
    lines = celery_lines("INFO", task)
    assert [line["level"] for line in lines] == ["info"] * 3


@pytest.fixture
def idle(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(
        pg_url, redis_url, tmp_path, webhook_scan_interval="0.5", data_dir=str(tmp_path / "data")
    ) as p:
        yield p


def test_an_idle_service_logs_no_routine(idle: Pipeline) -> None:
    idle.start_worker("worker", "--queues", "timers,webhooks", "--pool", "threads")
    idle.start_worker("beat")
    wait_for(lambda: "beat: Starting" in idle.logs(), timeout=60, what=idle.logs)
    time.sleep(4)  # eight webhook scans, a relay or so
    logs = idle.logs()
    assert "Sending due task" not in logs
    assert not [name for name in ROUTINE if f"{name}[" in logs]


def test_ctrl_c_of_a_worker_logs_no_error(idle: Pipeline) -> None:
    worker = idle.start_worker(
        "worker", "--queues", "incidents,pipeline,timers", "--concurrency", "2"
    )
    wait_for(
        lambda: "intake consumers started" in idle.logs() and "ready." in idle.logs(),
        timeout=60,
        what=idle.logs,
    )
    os.killpg(worker.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground group
    worker.wait(timeout=60)
    logs = idle.logs()
    assert "intake consumers stopped" in logs
    errors = [line for line in logs.splitlines() if '"level": "error"' in line]
    assert errors == []
    assert "intake consumer process exited" not in logs


def test_a_superseded_scan_is_discarded_quietly() -> None:
    from celery.worker import request

    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    request.info("Discarding revoked task: %s[%s]", SCAN_WEBHOOKS, "t-2")
    request.info("Discarding revoked task: %s[%s]", SEND_WEBHOOK, "t-3")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == [f"Discarding revoked task: {SEND_WEBHOOK}[t-3]"]


def exited(code: int) -> subprocess.Popen[bytes]:
    """A real process that has ended as the intake consumer ends: by itself with `code`, or
    (negative) killed by that signal."""
    if code >= 0:
        process = subprocess.Popen([sys.executable, "-c", f"raise SystemExit({code})"])
    else:
        process = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=interruptible
        )
        process.send_signal(-code)
    process.wait(timeout=30)
    return process


@pytest.fixture
def intake() -> Iterator[IncidentIntake]:
    step = IncidentIntake(parent=None)
    spawned: list[subprocess.Popen[bytes]] = []
    step._spawn = lambda: spawned.append(exited(0))  # type: ignore[method-assign]
    yield step
    worker_state.should_stop = None
    assert all(process.poll() is not None for process in spawned)


@pytest.mark.parametrize("code", [0, -signal.SIGINT, -signal.SIGTERM, 1])
def test_a_worker_shutting_down_neither_complains_nor_restarts_its_consumer(
    intake: IncidentIntake, code: int
) -> None:
    intake.process = exited(code)
    worker_state.should_stop = 0  # what Celery's Ctrl-C handler sets
    with capture_logs() as logs:
        intake._keep_running()
    assert logs == []


@pytest.mark.parametrize("code", [0, -signal.SIGINT, -signal.SIGTERM])
def test_a_consumer_stopped_by_someone_is_started_again_without_an_error(
    intake: IncidentIntake, code: int
) -> None:
    intake.process = exited(code)
    with capture_logs() as logs:
        intake._keep_running()
    assert [(line["log_level"], line["event"]) for line in logs] == [
        ("info", "intake consumer process was stopped; starting it again")
    ]


def test_a_consumer_that_crashed_is_an_error(intake: IncidentIntake) -> None:
    intake.process = exited(1)
    with capture_logs() as logs:
        intake._keep_running()
    assert [(line["log_level"], line["code"]) for line in logs] == [("error", 1)]
