"""Everything an end-to-end test needs: a fresh database, Redis under a prefix of its own,
the example city's rules pointed at a local receiver that verifies signatures, the
departments' secrets, and real worker processes started as production starts them."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from subprocess import Popen

from sqlalchemy import Engine

from tests.support import processes
from tests.support.receiver import Receiver, department_secrets, receiving, rules_pointing_at
from tests.support.service import ROOT, service_environment
from worker.db.session import make_engine

TASK_AND_INTAKE_QUEUES = ("incidents", "pipeline", "webhooks", "timers")
WORKER_ARGS = ["worker", "--queues", "incidents,pipeline,webhooks,timers", "--concurrency", "4"]


@dataclass
class Pipeline:
    env: dict[str, str]
    receiver: Receiver
    engine: Engine
    folder: Path
    workers: list[Popen[bytes]] = field(default_factory=list)
    restarts: int = 0
    _stops: list[threading.Event] = field(default_factory=list)

    def start_worker(self, *args: str, module: str = "worker") -> Popen[bytes]:
        command = list(args) or [*WORKER_ARGS, "--pool", "threads"]
        log = self.folder / f"worker-{len(self.workers)}.log"
        process = processes.spawn(command, self.env, log, module)
        self.workers.append(process)
        return process

    def supervise(self, *args: str) -> None:
        """Run `args` as a worker the way docker-compose's `restart: unless-stopped` does:
        started again whenever it exits, until the test ends."""
        stopping = threading.Event()
        self._stops.append(stopping)

        def keep_running() -> None:
            process = self.start_worker(*args)
            while not stopping.wait(0.5):
                if process.poll() is not None:
                    self.restarts += 1
                    process = self.start_worker(*args)

        threading.Thread(target=keep_running, daemon=True).start()

    def start_api(self) -> str:
        """`closeloop api` on a free loopback port; returns its base URL once it answers."""
        import httpx

        from worker.ops.embedded import free_port

        port = free_port()
        log = self.folder / f"api-{port}.log"
        self.workers.append(processes.spawn(["api", "--port", str(port)], self.env, log))
        base = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        processes.wait_for(answers, timeout=30, what=lambda: "the API\n" + log.read_text()[-2000:])
        return base

    def token(self, role: str, department: str | None = None) -> dict[str, str]:
        """Authorization headers for a new token of `role`."""
        from worker.auth import Role, create_token
        from worker.db.session import session_factory

        with session_factory(self.engine)() as session, session.begin():
            made = create_token(session, Role(role), department=department)
        return {"Authorization": f"Bearer {made.token}"}

    def wait_idle(self, timeout: float = 60) -> None:
        """Until every queue is empty and no message is out unacknowledged."""
        import redis

        prefix = self.env["CLOSELOOP_BROKER_KEY_PREFIX"]
        client = redis.Redis.from_url(self.env["CLOSELOOP_BROKER_URL"])

        def idle() -> bool:
            queued = sum(int(client.llen(f"{prefix}{q}")) for q in TASK_AND_INTAKE_QUEUES)
            return queued == 0 and int(client.hlen(f"{prefix}unacked")) == 0

        try:
            processes.wait_for(
                idle, timeout=timeout, what=lambda: "idle queues\n" + self.logs()[-3000:]
            )
        finally:
            client.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("*.log")))


@contextmanager
def pipeline(pg_url: str, redis_url: str, folder: Path, **settings: str) -> Iterator[Pipeline]:
    secrets = department_secrets(ROOT / "routing_rules")
    with ExitStack() as stack:
        receiver = stack.enter_context(receiving({d: s for d, (_, s) in secrets.items()}))
        rules = rules_pointing_at(ROOT / "routing_rules", folder / "rules", receiver.base_url)
        env = stack.enter_context(
            service_environment(pg_url, redis_url, rules_dir=str(rules), **settings)
        )
        variables = {variable: secret for variable, secret in secrets.values()}
        saved = {name: os.environ.get(name) for name in variables}
        os.environ.update(variables)
        env = {**env, **variables}
        engine = make_engine(pg_url)
        running = Pipeline(env, receiver, engine, folder)
        try:
            yield running
        finally:
            for stopping in running._stops:
                stopping.set()
            for process in running.workers:
                processes.stop(process)
            engine.dispose()
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
