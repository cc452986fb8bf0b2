"""Personal data and secrets stay out of logs and error bodies, on a real run: the API and a
worker (at DEBUG) take incidents carrying a citizen's phone number over HTTP and the queue,
refuse bad ones, deliver signed webhooks with known secrets; then every log line they wrote
and every error body they answered is searched for the number and the secrets."""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.support.pipeline import Pipeline, pipeline
from tests.support.processes import wait_for
from tests.support.receiver import department_secrets
from tests.support.service import ROOT
from worker.db.models import DeadLetter, Delivery
from worker.db.session import session_factory
from worker.messaging.broker import publish_raw

PHONE = "13912345678"
# The same number as people write it: any of these in a log is a leak.
PHONE_FORMS = (PHONE, "139-1234-5678", "139 1234 5678", "1391234")
GAS_LEAK = {
    "source": "hotline",
    "category": "gas.leak",
    "title": "楼道里闻到很浓的煤气味",
    "description": f"住户王先生来电，手机 139-1234-5678（{PHONE}），请尽快处理",
    "location": {"district": "gulou", "address": "中山路 18 号"},
    "reporter": {"name": "王先生", "phone": PHONE, "email": "wang@example.cn"},
}


@pytest.fixture
def running(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Pipeline]:
    with pipeline(pg_url, redis_url, tmp_path, log_level="DEBUG") as p:
        p.start_worker()
        yield p


def _secrets() -> list[str]:
    variables = {variable for variable, _ in department_secrets(ROOT / "routing_rules").values()}
    found = []
    for variable in variables:
        for secret in (os.environ.get(variable) or "").split():
            found += [secret, secret.removeprefix("whsec_")]
            found.append(base64.b64decode(secret.removeprefix("whsec_")).hex())
    assert found, "no webhook secrets in the environment: the test would prove nothing"
    return found


def test_phone_numbers_and_webhook_secrets_never_reach_logs_or_error_bodies(
    running: Pipeline,
) -> None:
    api = running.start_api()
    hotline = running.token("hotline")
    errors: list[str] = []

    filed = httpx.post(f"{api}/v1/incidents", json=GAS_LEAK, headers=hotline, timeout=10)
    assert filed.status_code == 202, filed.text
    publish_raw("incidents", json.dumps({**GAS_LEAK, "external_id": "q-1"}), str(uuid.uuid4()))
    # Bad input carrying the number where it does not belong, in every place it could echo.
    bad_bodies = [
        {**GAS_LEAK, "reporter": {"phone": f"call {PHONE} now"}},
        {**GAS_LEAK, "reporter": {"phone": int(PHONE)}},
        {**GAS_LEAK, "priority_hint": PHONE},
        {**GAS_LEAK, "telephone": PHONE},
        {**GAS_LEAK, "title": PHONE * 100},
    ]
    for body in bad_bodies:
        refused = httpx.post(f"{api}/v1/incidents", json=body, headers=hotline, timeout=10)
        assert refused.status_code == 422, refused.text
        errors.append(refused.text)
    for path in (f"/v1/cases/{PHONE}", f"/v1/tasks/{PHONE}", f"/v1/cases?district={PHONE}"):
        errors.append(httpx.get(f"{api}{path}", headers=hotline, timeout=10).text)
    bad_message = {**GAS_LEAK, "reporter": {"phone": int(PHONE)}}
    publish_raw("incidents", json.dumps(bad_message), str(uuid.uuid4()))

    def done() -> bool:
        with session_factory(running.engine)() as session:
            delivered = session.scalars(select(Delivery.state)).all()
            letters = session.scalars(select(DeadLetter.reason)).all()
        return len(letters) == 1 and len(delivered) >= 2 and set(delivered) == {"delivered"}

    wait_for(done, timeout=60, what=lambda: "deliveries and a dead letter\n" + running.logs())
    with session_factory(running.engine)() as session:
        errors += session.scalars(select(DeadLetter.reason)).all()

    logs = running.logs()
    assert "delivery" in logs.lower(), "the worker logged nothing: the search proves nothing"
    for leak in (*PHONE_FORMS, "wang@example.cn", *_secrets()):
        assert leak not in logs, f"{leak!r} is in the logs"
        for body in errors:
            assert leak not in body, f"{leak!r} is in an error body: {body[:300]}"
