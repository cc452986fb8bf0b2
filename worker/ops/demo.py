"""`closeloop demo`: a day of the example city, simulated on the embedded default.

The day is the 24 hours that end now, so the dashboard's windows show it. Time is simulated:
a clock is set to each moment in turn, and everything closeloop does at that moment runs
through its own code, in the order the worker and beat would run it:

- citizens call: incidents arrive over the day (quiet at night, busy in the morning and the
  evening), across the city's categories and districts; now and then a neighbour reports the
  same burst pipe again, and it is folded into the open case;
- the pipeline triages and dispatches each case and sends its departments signed webhooks,
  over HTTP, to a receiver that checks every signature;
- departments that got a `task.assigned` webhook accept and resolve it, mostly in time,
  sometimes late, now and then returning it as not theirs;
- every simulated minute, beat's work: the deadline scan (reminders, escalations), webhook
  retries, and closing cases whose callback window passed;
- citizens answer the callback (most are satisfied; the unhappy ones reopen their case) or
  never pick up, and the case closes by itself.

Nothing here writes to the store by itself: every change goes through the stage functions
the API and the worker call.
"""

from __future__ import annotations

import heapq
import hmac
import http.server
import itertools
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook

from worker.actions.department import accept, resolve, return_task
from worker.clock import FrozenClock, use_clock
from worker.contracts.audit import Actor
from worker.contracts.enums import ActorKind
from worker.contracts.incident import Incident
from worker.db.guard import ConcurrentChange
from worker.db.models import Case, Delivery, Task
from worker.db.session import transaction
from worker.ledger.deliveries import WAITING
from worker.ledger.lifecycle import TransitionRefused
from worker.rules import Ruleset
from worker.stages.closeloop import NotNow, auto_close, record_feedback
from worker.stages.dispatch import dispatch
from worker.stages.intake import accept_incident
from worker.stages.triage import triage
from worker.tasks.timers import scan_deadlines_once
from worker.webhooks.endpoints import Endpoint
from worker.webhooks.sending import send_delivery

# How busy each hour of the day is, relative: quiet at night, peaks at 9 and 18.
HOURLY = [2, 1, 1, 1, 1, 2, 4, 7, 10, 9, 8, 7, 7, 7, 7, 8, 9, 10, 10, 9, 7, 5, 4, 3]
# What citizens call about, relative; a group the table does not name counts 2.
GROUPS = {"water": 16, "roads": 14, "power": 10, "sanitation": 10, "heating": 8, "traffic": 8}
HOTLINE = Actor(kind=ActorKind.hotline, id="demo-hotline")
CALLER = Actor(kind=ActorKind.hotline, id="demo-callback")
CENTRE = (32.05, 118.78)  # the example city's middle, for coordinates


@dataclass(frozen=True)
class Behaviour:
    """How people behave, as chances; drawn from a seeded generator so a day replays."""

    duplicate: float = 0.06  # a caller reports what a neighbour just reported
    accept_late: float = 0.08  # a department acknowledges after its deadline
    resolve_late: float = 0.12  # ... or resolves after its deadline
    returns: float = 0.04  # a department returns the task as not its own
    answers_callback: float = 0.75  # the citizen picks up the callback
    satisfied: float = 0.85  # ... and is satisfied (else the case reopens)


def arrival_times(start: datetime, hours: float, count: int, rng: random.Random) -> list[datetime]:
    """`count` moments in [start, start + hours), denser in the busy hours of the day."""
    span = timedelta(hours=hours)
    slots = [start + timedelta(minutes=m) for m in range(int(hours * 60))] or [start]
    weights = [HOURLY[slot.astimezone(UTC).hour] for slot in slots]
    chosen = rng.choices(slots, weights=weights, k=count)
    moments = [slot + timedelta(seconds=rng.uniform(0, 59)) for slot in chosen]
    return sorted(min(moment, start + span - timedelta(seconds=1)) for moment in moments)


def incident_mix(ruleset: Ruleset, rng: random.Random) -> Callable[[int], dict[str, Any]]:
    """A maker of plausible incidents: categories by how often people call about them,
    districts and coordinates spread over the city."""
    codes = sorted(ruleset.categories)
    weights = [GROUPS.get(code.split(".")[0], 2) for code in codes]
    districts = sorted(ruleset.districts)

    def make(n: int) -> dict[str, Any]:
        code = rng.choices(codes, weights=weights)[0]
        name = ruleset.categories[code].name
        title = name.zh if getattr(name, "zh", None) else code
        return {
            "source": "hotline",
            "external_id": f"demo-{n}",
            "category": code,
            "title": f"{title}（市民来电）",
            "location": {
                "district": rng.choice(districts),
                "latitude": round(CENTRE[0] + rng.uniform(-0.12, 0.12), 5),
                "longitude": round(CENTRE[1] + rng.uniform(-0.12, 0.12), 5),
            },
        }

    return make


class Receiver:
    """The departments' webhook endpoints: one loopback server, a path per department. It
    checks each signature with the `standardwebhooks` library's HMAC. The freshness check
    is left out on purpose: a simulated day's timestamps are hours old by design."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def endpoint(self, department: str) -> Endpoint:
        return Endpoint(
            department=department, url=f"{self.url}/{department}", secrets=(self.secret,)
        )

    def take(self) -> list[dict[str, Any]]:
        with self._lock:
            taken, self.received = self.received, []
        return taken

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if receiver.signed(self.headers, body):
                    with receiver._lock:
                        receiver.received.append(json.loads(body))
                    self.send_response(204)
                else:
                    receiver.bad_signatures += 1
                    self.send_response(401)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        return Handler

    def signed(self, headers: Any, body: bytes) -> bool:
        try:
            at = datetime.fromtimestamp(int(headers["webhook-timestamp"]), UTC)
            expected = Webhook(self.secret).sign(headers["webhook-id"], at, body.decode())
        except (KeyError, ValueError):
            return False
        offered = headers.get("webhook-signature", "").split()
        return any(hmac.compare_digest(expected, sig) for sig in offered)


@dataclass
class Tally:
    filed: int = 0
    merged: int = 0
    accepted: int = 0
    resolved: int = 0
    returned: int = 0
    callbacks: int = 0
    webhooks: Counter[str] = field(default_factory=Counter)


class DemoDay:
    """The simulation: a queue of moments, each with what happens then."""

    def __init__(
        self,
        engine: Engine,
        ruleset: Ruleset,
        receiver: Receiver,
        start: datetime,
        hours: float,
        incidents: int,
        seed: int,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.engine, self.ruleset, self.receiver = engine, ruleset, receiver
        self.start, self.end = start, start + timedelta(hours=hours)
        self.rng = random.Random(seed)  # noqa: S311 - a replayable simulation, not secrecy
        self.behaviour = behaviour or Behaviour()
        self.tally = Tally()
        self.clock = FrozenClock(start)
        self._queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self._order = itertools.count()
        make = incident_mix(ruleset, self.rng)
        self._recent: list[dict[str, Any]] = []
        for n, moment in enumerate(arrival_times(start, hours, incidents, self.rng)):
            self._at(moment, partial(self._call_with, make, n))
        minute = start
        while minute < self.end:
            self._at(minute, self._beat)
            minute += timedelta(minutes=1)

    def run(self, on_step: Callable[[datetime, Tally], None] | None = None) -> Tally:
        previous = use_clock(self.clock)
        try:
            while self._queue and self._queue[0][0] < self.end:
                moment, _, happen = heapq.heappop(self._queue)
                if moment > self.clock.now():
                    self.clock.advance(moment - self.clock.now())
                happen()
                if on_step is not None:
                    on_step(moment, self.tally)
        finally:
            use_clock(previous)
        return self.tally

    # what happens

    def _call_with(self, make: Callable[[int], dict[str, Any]], n: int) -> None:
        self._call(make(n))

    def _call(self, body: dict[str, Any]) -> None:
        if self._recent and self.rng.random() < self.behaviour.duplicate:
            earlier = self.rng.choice(self._recent[-20:])
            body = {**body, **{k: earlier[k] for k in ("category", "title", "location")}}
        self._recent.append(body)
        with transaction(self.engine) as session:
            case = accept_incident(session, Incident.model_validate(body), actor=HOTLINE).case
            case_id = case.id
        self.tally.filed += 1
        with transaction(self.engine) as session:
            triage(session, case_id, self.ruleset)
            merged = session.get_one(Case, case_id).state == "merged"
        if merged:
            self.tally.merged += 1
            return
        with transaction(self.engine) as session:
            dispatch(session, case_id, self.ruleset)
        self._deliver()

    def _beat(self) -> None:
        scan_deadlines_once(self.engine)
        with transaction(self.engine) as session:
            auto_close(session, self.clock.now())
        self._deliver()

    def _deliver(self) -> None:
        """Send every delivery that is due, then let departments react to what arrived."""
        with transaction(self.engine) as session:
            due = session.scalars(select(Delivery.id).where(Delivery.state.in_(WAITING))).all()
        for delivery_id in due:
            send_delivery(self.engine, delivery_id, endpoints=self.receiver.endpoint)
        for webhook in self.receiver.take():
            self.tally.webhooks[webhook["type"]] += 1
            if webhook["type"] in ("task.assigned", "case.reopened"):
                self._plan_department(webhook["data"]["task"]["id"])

    def _plan_department(self, task_id: str) -> None:
        """A department got a task: when it will acknowledge it, and resolve or return it."""
        b, rng, now = self.behaviour, self.rng, self.clock.now()
        with transaction(self.engine) as session:
            task = session.get_one(Task, task_id)
            ack_due, resolve_due = task.acknowledge_due_at, task.resolve_due_at
        ack_in = _within(rng, now, ack_due, late=rng.random() < b.accept_late)
        self._at(now + ack_in, lambda: self._department(task_id, "accept"))
        if rng.random() < b.returns:
            self._at(now + ack_in + timedelta(minutes=rng.uniform(5, 40)),
                     lambda: self._department(task_id, "return"))  # fmt: skip
            return
        done_in = _within(rng, now + ack_in, resolve_due, late=rng.random() < b.resolve_late)
        self._at(now + ack_in + done_in, lambda: self._department(task_id, "resolve"))

    def _department(self, task_id: str, action: str) -> None:
        with self._acting() as session:
            task = session.get_one(Task, task_id)
            actor = Actor(kind=ActorKind.department, id=task.department)
            if action == "accept":
                accept(session, task, actor)
                self.tally.accepted += 1
            elif action == "return":
                return_task(session, task, actor, "不属于本部门职责 / not ours to handle")
                self.tally.returned += 1
            else:
                resolve(session, task, actor, "已处理完毕 / done")
                self.tally.resolved += 1
                case_id = task.case_id
                if session.get_one(Case, case_id).state == "resolved":
                    self._plan_callback(case_id)
        if action == "return":
            with transaction(self.engine) as session:
                case_id = session.get_one(Task, task_id).case_id
            with self._acting() as session:
                dispatch(session, case_id, self.ruleset)
        self._deliver()

    def _plan_callback(self, case_id: str) -> None:
        b, rng = self.behaviour, self.rng
        if rng.random() >= b.answers_callback:
            return  # never picks up: the case closes when the window passes
        satisfied = rng.random() < b.satisfied
        self._at(self.clock.now() + timedelta(minutes=rng.uniform(20, 180)),
                 lambda: self._callback(case_id, satisfied))  # fmt: skip

    def _callback(self, case_id: str, satisfied: bool) -> None:
        with self._acting() as session:
            case = session.get_one(Case, case_id)
            comment = "处理得很好" if satisfied else "问题还在 / still not fixed"
            record_feedback(
                session, case, CALLER, satisfied, satisfied, comment, ruleset=self.ruleset
            )
            self.tally.callbacks += 1
        self._deliver()

    # plumbing

    def _at(self, moment: datetime, happen: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (moment, next(self._order), happen))

    @contextmanager
    def _acting(self) -> Iterator[Session]:
        """A department's or citizen's step; one that the case has moved past meanwhile (the
        task released, reassigned, the case closed) is simply not taken, as the API would
        refuse it."""
        try:
            with transaction(self.engine) as session:
                yield session
        except (TransitionRefused, ConcurrentChange, NotNow):
            pass


def _within(rng: random.Random, now: datetime, due: datetime | None, late: bool) -> timedelta:
    """How long until a step is taken: past `due` if `late`, else in the time left, and then
    mostly within a few hours (crews do not wait for a three-day deadline to run out)."""
    left = (due - now) if due is not None else timedelta(hours=4)
    left = max(left, timedelta(minutes=2))
    if late:
        return left + timedelta(minutes=rng.uniform(5, 90))
    return min(left, timedelta(hours=rng.uniform(0.5, 6))) * rng.uniform(0.2, 0.95)
