"""A message that kills every worker that runs it is run `redelivery_cap` times, then kept as
a dead letter with its arguments and never run again."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from tests.support.pipeline import pipeline
from tests.support.poison_worker import POISON
from tests.support.processes import wait_for
from worker.db.models import DeadLetter
from worker.db.session import session_factory
from worker.tasks.app import app

CAP = 2


def test_a_message_that_kills_its_worker_ends_as_a_dead_letter(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    with pipeline(pg_url, redis_url, tmp_path, redelivery_cap=str(CAP)) as p:
        p.start_worker(
            str(runs), "--queues", "pipeline", "--concurrency", "1", "--pool", "prefork",
            module="tests.support.poison_worker",
        )  # fmt: skip
        app.send_task(POISON, kwargs={"case_id": "poisoned"})

        def dead_letters() -> list[DeadLetter]:
            with session_factory(p.engine)() as session:
                return list(session.scalars(select(DeadLetter).where(DeadLetter.kind == "task")))

        wait_for(lambda: dead_letters(), timeout=120, what=lambda: "a dead letter\n" + p.logs())
        p.wait_idle(timeout=60)
        [letter] = dead_letters()
        assert f"{POISON} was started {CAP + 1} times" in letter.reason
        assert '"case_id": "poisoned"' in letter.body
        assert runs.read_text().splitlines() == ["poisoned"] * CAP
