"""A real prefork worker with `--metrics-port`: its pool processes' counters and stage
timings summed on one scrape (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.pipeline import WORKER_ARGS, pipeline
from tests.support.processes import wait_for
from worker.messaging.broker import publish_raw

FLOOD = {
    "source": "hotline",
    "external_id": "metrics-flood-1",
    "category": "gas.leak",
    "title": "楼道里闻到煤气味",
    "location": {"district": "gulou"},
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    try:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_prefork_worker_serves_all_its_processes_metrics(
    pg_url: str, redis_url: str, tmp_path: Path
) -> None:
    port = _free_port()
    with pipeline(pg_url, redis_url, tmp_path) as p:
        env = {**p.env, "PROMETHEUS_MULTIPROC_DIR": ""}  # the worker makes a fresh folder
        p.env = env
        p.start_worker(*WORKER_ARGS, "--pool", "prefork", "--metrics-port", str(port))
        publish_raw("incidents", json.dumps(FLOOD, ensure_ascii=False), str(uuid.uuid4()))
        received = (
            "closeloop_cases_received_total",
            (("category", "gas.leak"), ("district", "gulou")),
        )
        monitor = (
            "closeloop_stage_duration_seconds_count",
            (("outcome", "success"), ("stage", "pipeline.monitor")),
        )
        dispatch = (
            "closeloop_stage_duration_seconds_count",
            (("outcome", "success"), ("stage", "pipeline.dispatch")),
        )
        delivered = ("closeloop_webhook_deliveries_total", (("outcome", "delivered"),))
        wait_for(
            lambda: _samples(port).get(delivered, 0) >= 2,  # gas leads, fire assists
            timeout=60,
            what=lambda: f"delivered webhooks on the worker's metrics\n{p.logs()[-3000:]}",
        )
        samples = _samples(port)
        assert samples[received] == 1
        assert samples[monitor] == 1
        assert samples[dispatch] == 1
