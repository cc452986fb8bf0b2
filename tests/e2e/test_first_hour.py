"""A newcomer's first hour, as a test: the README's own commands on a fresh data folder.

`closeloop up` runs as a process in a folder of the newcomer's (with a copy of the example
city's rules, so that a department's URL can be changed), with no CLOSELOOP_* setting. The
README's first-case block is run by bash as written (only the port differs); departments'
webhooks reach a receiver that verifies them with the official `standardwebhooks` library.
A department's URL changed on disk while everything runs takes the next webhook within
seconds; `closeloop intake send` and `closeloop rules reload`, run from another folder with
--data-dir, reach the running instance; the README's Alertmanager receiver is used as
Alertmanager would use it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.processes import interruptible, wait_for
from tests.support.receiver import Receiver, receiving
from worker.ops.embedded import free_port
from worker.ops.embedded_secrets import read_env_file

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
VENV = Path(sys.executable).parent.parent


def readme_block(heading: str, language: str, number: int = 0) -> str:
    section = README[README.index(f"## {heading}\n") :]
    section = section[: section.find("\n## ", 1)]
    blocks = re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)
    return str(blocks[number])


class Newcomer:
    """A folder of the newcomer's own, with the project's venv and the example city's rules."""

    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.data = home / "data"
        home.mkdir()
        (home / ".venv").symlink_to(VENV)
        shutil.copytree(ROOT / "routing_rules", home / "routing_rules")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CLOSELOOP_")}
        self.env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{self.env.get('PATH', '')}"

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def point_departments_at(self, receiver: Receiver, only: str | None = None) -> None:
        path = self.home / "routing_rules" / "departments.yaml"
        text = path.read_text(encoding="utf-8")
        pattern = rf"url: http://127\.0\.0\.1:\d+/hooks/({only or '[a-z-]+'})\n"
        path.write_text(
            re.sub(pattern, rf"url: {receiver.base_url}/hooks/\1\n", text), encoding="utf-8"
        )

    def closeloop(self, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV / "bin" / "closeloop"), *args],
            cwd=cwd, env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    def bash(self, script: str) -> str:
        script = script.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=self.home, env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture
def newcomer(tmp_path: Path) -> Newcomer:
    return Newcomer(tmp_path / "home", free_port())


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    with receiving({}) as first, receiving({}) as second:
        yield first, second


@pytest.fixture
def up(newcomer: Newcomer, receivers: tuple[Receiver, Receiver]) -> Iterator[list[str]]:
    """`.venv/bin/closeloop up --port P` in the newcomer's folder; yields what it printed."""
    newcomer.point_departments_at(receivers[0])
    process = subprocess.Popen(
        [str(VENV / "bin" / "closeloop"), "up", "--port", str(newcomer.port)],
        cwd=newcomer.home, env=newcomer.env, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, start_new_session=True, preexec_fn=interruptible,
    )  # fmt: skip
    printed: list[str] = []
    ready_when_said: list[int] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            printed.append(line)
            if line.startswith("closeloop is up"):
                ready_when_said.append(httpx.get(f"{newcomer.base}/ready").status_code)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: bool(ready_when_said), timeout=120, every=0.2,
                 what=lambda: "closeloop is up:\n" + "".join(printed))  # fmt: skip
        assert ready_when_said == [200], "it said it was up before /ready answered"
        secrets = read_env_file(newcomer.data / "webhook-secrets.env")
        for receiver in receivers:
            receiver.secrets.update(_by_department(newcomer, secrets))
        yield printed
    finally:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C
        assert process.wait(timeout=60) == 0, "Ctrl-C did not stop closeloop up cleanly"


def _by_department(newcomer: Newcomer, secrets: dict[str, str]) -> dict[str, str]:
    rules = yaml.safe_load((newcomer.home / "routing_rules" / "departments.yaml").read_text())
    return {d["id"]: secrets[d["secret_env"]] for d in rules["departments"]}


def _gas_tasks(receiver: Receiver, case_id: str) -> list[object]:
    return [
        r for r in receiver.for_department("gas")
        if r.verified and r.body["data"]["case"]["id"] == case_id
    ]  # fmt: skip


def test_a_newcomers_first_hour(
    newcomer: Newcomer, receivers: tuple[Receiver, Receiver], up: list[str], tmp_path: Path
) -> None:
    first, second = receivers
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    # The README's first case, as written.
    case = json.loads(newcomer.bash(readme_block("A first case", "sh")))
    assert case["state"] == "dispatched", case
    assert case["category"] == "gas.leak"
    wait_for(lambda: bool(_gas_tasks(first, case["id"])), timeout=30,
             what="the gas company's webhook, verified")  # fmt: skip

    # A department's URL changed on disk while everything runs: the next webhook goes there,
    # with nothing else done (every process watches the rules folder).
    newcomer.point_departments_at(second, only="gas")
    incident = elsewhere / "gas.json"
    incident.write_text(json.dumps({
        "source": "hotline", "category": "gas.leak", "title": "小区门口煤气味很重",
        "external_id": "first-hour-2", "location": {"district": "gulou"},
    }, ensure_ascii=False), encoding="utf-8")  # fmt: skip
    sent = newcomer.closeloop("--data-dir", str(newcomer.data), "intake", "send",
                              str(incident), cwd=elsewhere)  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    started = time.monotonic()
    wait_for(lambda: bool(second.for_department("gas")), timeout=30,
             what="the next gas webhook at the new URL")  # fmt: skip
    assert all(r.verified for r in second.for_department("gas"))
    assert time.monotonic() - started < 30

    # `rules reload` from another folder reaches every worker of the running instance.
    reload = newcomer.closeloop("--data-dir", str(newcomer.data), "rules", "reload", cwd=elsewhere)
    assert reload.returncode == 0, reload.stderr
    assert "webhooks@" in reload.stdout, reload.stdout
    assert "pipeline@" in reload.stdout, reload.stdout

    # The README's Alertmanager receiver, used as Alertmanager uses it.
    token = newcomer.closeloop("token", "create", "--role", "monitor", cwd=newcomer.home)
    assert token.returncode == 0, token.stderr
    credentials = tmp_path / "closeloop-token"
    credentials.write_text(token.stdout)
    config = yaml.safe_load(readme_block("A first case", "yaml"))
    hook = config["receivers"][0]["webhook_configs"][0]
    url = hook["url"].replace("127.0.0.1:8080", f"127.0.0.1:{newcomer.port}")
    bearer = credentials.read_text().strip()  # Alertmanager trims the file, as this does
    answer = httpx.post(url, headers={"Authorization": f"Bearer {bearer}"}, json=_notification())
    assert answer.status_code == 202, answer.text


def _notification() -> dict[str, object]:
    alert = {
        "status": "firing",
        "labels": {"alertname": "GasConcentrationHigh", "district": "gulou", "sensor_id": "G-7"},
        "annotations": {"summary": "燃气浓度超标"},
        "startsAt": "2026-12-01T08:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph", "fingerprint": "a1b2c3d4e5f60718",
    }  # fmt: skip
    return {
        "version": "4", "groupKey": "{}:{alertname=\"GasConcentrationHigh\"}",
        "truncatedAlerts": 0, "status": "firing", "receiver": "closeloop",
        "groupLabels": {"alertname": "GasConcentrationHigh"}, "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"], "externalURL": "http://alertmanager:9093",
        "alerts": [alert],
    }  # fmt: skip
