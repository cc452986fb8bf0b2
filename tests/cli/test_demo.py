"""`closeloop demo`: a short simulated day, for real, then its figures; and the pieces that
decide what happens in it."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from tests.support.processes import wait_for
from worker.db.models import Callback, Case
from worker.db.session import make_engine, session_factory
from worker.ledger.audit import verify
from worker.ledger.audit_keys import keyring_in
from worker.ops.demo import HOURLY, Receiver, _within, arrival_times
from worker.ops.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_a_short_day_runs_end_to_end_then_serves_its_dashboard(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSELOOP_")}
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "worker", "demo", "--incidents", "60", "--hours", "12",
         "--data-dir", str(tmp_path / "demo"), "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        printed = _until_dashboard(demo)
        assert "closeloop metrics by department" in printed
        # The day's two ends, each with its date (a day's ends share the time of day).
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d to \d{4}-\d\d-\d\d \d\d:\d\d UTC", printed)
        assert "(0 with a bad signature)" in printed
        total = next(line for line in printed.splitlines() if "total" in line)
        received = int(total.split("│")[2])
        token = re.search(r"sign in with (\S+)\)", printed)
        assert token, printed[-500:]
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/health"), timeout=30, what="the dashboard")
        assert httpx.get(f"{base}/dashboard").status_code == 200
        figures = httpx.get(
            f"{base}/v1/metrics",
            params={"since": "2d"},
            headers={"Authorization": f"Bearer {token.group(1)}"},
        )
        assert figures.status_code == 200, figures.text
        assert figures.json()["total"]["received"] == received
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=30)
    engine = make_engine(f"sqlite:///{tmp_path / 'demo' / 'closeloop.sqlite3'}")
    with session_factory(engine)() as session:
        states = dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
        callbacks = session.scalar(select(func.count()).select_from(Callback))
    assert sum(states.values()) == 60
    assert states.get("closed", 0) > 0, states
    assert callbacks
    # The demo ran without CLOSELOOP_AUDIT_KEYS: it sealed with the key it keeps in its folder.
    assert verify(engine, keys=keyring_in(tmp_path / "demo")).ok


def _until_dashboard(demo: subprocess.Popen[str]) -> str:
    assert demo.stdout is not None
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = demo.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Dashboard:"):
            return "".join(lines)
    raise AssertionError("the demo never offered its dashboard:\n" + "".join(lines)[-3000:])


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_calls_come_in_the_day_s_busy_hours() -> None:
    start = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    moments = arrival_times(start, 24, 5000, random.Random(1))
    assert len(moments) == 5000
    assert moments == sorted(moments)
    assert start <= moments[0]
    assert moments[-1] < start + timedelta(hours=24)
    by_hour = [sum(1 for m in moments if m.hour == h) for h in range(24)]
    busiest, quietest = HOURLY.index(max(HOURLY)), HOURLY.index(min(HOURLY))
    assert by_hour[busiest] > 3 * by_hour[quietest]


def test_a_late_step_comes_after_its_deadline_an_early_one_before() -> None:
    rng, now = random.Random(3), datetime(2026, 11, 24, 8, tzinfo=UTC)
    due = now + timedelta(minutes=30)
    for _ in range(200):
        assert now + _within(rng, now, due, late=True) > due
        assert now + _within(rng, now, due, late=False) <= due


def test_the_departments_receiver_checks_signatures() -> None:
    from standardwebhooks import Webhook

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = json.dumps({"type": "task.assigned", "data": {}})
    at = datetime.now(UTC) - timedelta(hours=5)  # a simulated moment, hours old
    with Receiver(secret) as receiver:
        good = {
            "webhook-id": "msg_1",
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign("msg_1", at, body),
        }
        forged = {**good, "webhook-signature": Webhook("whsec_" + "A" * 32).sign("msg_1", at, body)}
        url = receiver.endpoint("water").url
        assert httpx.post(url, content=body, headers=good).status_code == 204
        assert httpx.post(url, content=body, headers=forged).status_code == 401
        assert [r["type"] for r in receiver.take()] == ["task.assigned"]
        assert receiver.bad_signatures == 1
