"""`closeloop receive`: the example city's departments, listening, as a newcomer runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.processes import interruptible, wait_for
from worker.ops.embedded import free_port
from worker.ops.embedded_secrets import new_secret
from worker.webhooks.signing import signed_headers

ROOT = Path(__file__).resolve().parents[2]


def test_it_answers_204_to_a_signed_webhook_and_401_to_a_forged_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    secret = new_secret()
    (data / "webhook-secrets.env").write_text(f"CLOSELOOP_SECRET_GAS={secret}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSELOOP_")}
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "--data-dir", str(data), "receive", "--port", str(port)],
        cwd=tmp_path, env={**env, "CLOSELOOP_RULES_DIR": str(ROOT / "routing_rules")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=interruptible,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/hooks/gas"
    body = json.dumps(
        {"type": "task.assigned", "data": {"case": {"id": "c-1", "title": "煤气味"}}}
    ).encode()

    def answers() -> bool:
        try:
            httpx.get(base, timeout=1)
        except httpx.HTTPError:
            return False
        return True

    try:
        wait_for(answers, timeout=30, what="closeloop receive")
        good = httpx.post(base, content=body, headers=signed_headers("msg_1", body, (secret,)))
        forged = httpx.post(
            base, content=body, headers=signed_headers("msg_2", body, (new_secret(),))
        )
        assert (good.status_code, forged.status_code) == (204, 401)
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    lines = [line for line in out.splitlines() if "hooks" not in line]
    assert "gas" in lines[0]
    assert "verified" in lines[0]
    assert "c-1" in lines[0]
    assert "REFUSED" in lines[1]
    assert "Traceback" not in err
