"""A department's URL changed in the rules folder reaches every delivery sent after the
change: deliveries already queued included, and in a webhook worker that reads the rules for
nothing else (`closeloop up` runs it as a process of its own)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from tests.support.receiver import receiving, rules_pointing_at
from tests.support.scripted_receiver import Receiver, Reply, new_secret
from tests.support.service import ROOT
from tests.webhooks.conftest import case_with_task, delivery, queue
from worker.messaging.broker import publish_raw
from worker.webhooks import send_delivery


def test_a_queued_delivery_goes_to_the_url_in_force_when_it_is_sent(
    settings: Callable[..., None],
    pg_engine: Engine,
    tmp_path: Path,
    rules_at: Callable[[Path], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings(webhook_schedule="0s,0s,0s")
    old, new = Receiver(), Receiver()
    try:
        folder = rules_pointing_at(ROOT / "routing_rules", tmp_path / "rules", _base(old))
        rules_at(folder)
        monkeypatch.setenv("CLOSELOOP_SECRET_WATER", new_secret())
        old.script(Reply(503))
        case_id, task_id = case_with_task(pg_engine)
        delivery_id = queue(pg_engine, case_id, task_id)
        assert send_delivery(pg_engine, delivery_id) == "retry"

        rules_pointing_at(ROOT / "routing_rules", folder, _base(new))
        assert send_delivery(pg_engine, delivery_id) == "delivered"
        assert [r.path for r in old.received] == ["/hooks/water"]
        assert [r.path for r in new.received] == ["/hooks/water"]
        assert new.received[0].webhook_id == old.received[0].webhook_id
        assert delivery(pg_engine, delivery_id).attempts == 2
    finally:
        old.close()
        new.close()


def _base(receiver: Receiver) -> str:
    return receiver.url.removesuffix("/hooks")


GAS_LEAK = {
    "source": "hotline",
    "category": "gas.leak",
    "title": "楼道里闻到煤气味",
    "location": {"district": "gulou", "address": "鼓楼区中山路12号"},
}
# Another kind of case (one like the first would be folded into it as a duplicate).
BURST_MAIN = {
    "source": "hotline",
    "category": "water.pipe_burst",
    "title": "路面水管爆裂",
    "location": {"district": "xincheng", "address": "新城区长江路3号"},
}


@pytest.fixture
def split(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    """The pipeline and the webhooks in two worker processes, as `closeloop up` runs them."""
    with pipeline(pg_url, redis_url, tmp_path) as p:
        p.start_worker("worker", "--queues", "incidents,pipeline,timers", "--pool", "threads")
        p.start_worker("worker", "--queues", "webhooks", "--pool", "threads")
        yield p


def test_a_running_webhook_worker_sends_to_a_url_changed_on_disk_within_seconds(
    split: Pipeline,
) -> None:
    publish_raw("incidents", json.dumps({**GAS_LEAK, "external_id": "before"}), str(uuid.uuid4()))
    wait_for(
        lambda: bool(split.receiver.for_department("gas")),
        timeout=60,
        what=lambda: "the first webhook\n" + split.logs()[-3000:],
    )
    with receiving(split.receiver.secrets) as moved:
        rules = Path(split.env["CLOSELOOP_RULES_DIR"])
        rules_pointing_at(ROOT / "routing_rules", rules, moved.base_url)
        changed_at = time.time()
        before = len(split.receiver.all())
        publish_raw(
            "incidents", json.dumps({**BURST_MAIN, "external_id": "after"}), str(uuid.uuid4())
        )
        wait_for(
            lambda: bool(moved.for_department("water")),
            timeout=30,
            what=lambda: "the webhook at the new URL\n" + split.logs()[-3000:],
        )
        arrived = moved.for_department("water")[0]
        assert arrived.verified
        assert arrived.at - changed_at < 10
        assert len(split.receiver.all()) == before  # nothing more went to the old URL
