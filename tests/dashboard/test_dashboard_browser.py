"""The supervisors' dashboard in a real headless Chromium (Debian's `chromium`, driven by
Playwright): sign in with a token, the page's numbers equal the API's, the charts drew, an
overdue case's timeline is one click away, dead letters are listed. Screenshots go to
test-artifacts/ (git-ignored) for a person to look at."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import BrowserContext, Page, sync_playwright
from sqlalchemy import Engine

from tests.support.browser import chromium
from tests.support.factories import filed_case, walk_to
from tests.support.metrics_dataset import seed
from worker.api.app import create_app
from worker.auth import Role, create_token
from worker.contracts.enums import CaseState as C
from worker.db.models import Case, Delivery
from worker.db.session import get_engine, transaction

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OPEN = [("state", s) for s in ("received", "triaged", "dispatched", "accepted", "in_progress")]


@dataclass
class Site:
    url: str
    token: str

    def api(self, path: str, params: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        answer = httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=30)
        answer.raise_for_status()
        return answer.json()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _seed(engine: Engine) -> None:
    # Hour 0 is 50.5 hours ago: every time in the dataset is in the past, none near now.
    seed(engine, datetime.now(UTC) - timedelta(hours=50.5))
    # One overdue case filed through intake, so that its timeline has real audit events.
    case_id = filed_case(engine, title="燃气管道泄漏 gas main leaking")
    walk_to(engine, case_id, [C.triaged, C.dispatched])
    with transaction(engine) as session:
        case = session.get_one(Case, case_id)
        case.lead_department, case.overdue = "gas", True
        case.resolve_due_at = datetime.now(UTC) - timedelta(hours=2)
        session.add(
            Delivery(
                webhook_id="msg_dead_1", dedupe_key="dashboard-test-dead", case_id=case_id,
                department="gas", event_type="task.assigned", state="dead", attempts=8,
                last_status=503, last_error="answered 503: maintenance",
            )
        )  # fmt: skip


@pytest.fixture
def site(service: dict[str, str]) -> Iterator[Site]:
    _seed(get_engine())
    with transaction() as session:
        token = create_token(session, Role.supervisor, name="dashboard-test").token
    port = _free_port()
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the API did not start within 20 s"
        time.sleep(0.05)
    try:
        yield Site(f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    executable = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=str(executable),
            headless=True,
            args=FLAGS,
            viewport={"width": 1360, "height": 1000},
        )
        try:
            yield context
        finally:
            context.close()


def _signed_in(browser: BrowserContext, site: Site) -> Page:
    page = browser.new_page()
    page.goto(f"{site.url}/dashboard")
    page.fill("#token", site.token)
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("body[data-state=ready]", timeout=30_000)
    return page


def _percent(rate: dict[str, Any]) -> str:
    # As the page rounds (JavaScript's Math.round: halves go up).
    return "—" if rate["value"] is None else f"{math.floor(rate['value'] * 100 + 0.5)}%"


def _share(rate: dict[str, Any]) -> str:
    return f"{_percent(rate)} ({rate['numerator']}/{rate['denominator']})"


RATES = [
    "response_rate",
    "closure_rate",
    "on_time_closure_rate",
    "resolution_rate",
    "satisfaction_rate",
]


def test_the_dashboard_shows_the_apis_figures(browser: BrowserContext, site: Site) -> None:
    page = _signed_in(browser, site)
    report = site.api("/v1/metrics", {"by": "department", "since": "30d"})
    total = report["total"]
    assert total["received"] > 0
    assert total["overdue"] > 0

    def tile(field: str) -> str:
        return page.inner_text(f"[data-figure={field}] .value")

    assert tile("received") == str(total["received"])
    assert tile("backlog") == str(total["backlog"])
    assert tile("overdue") == str(total["overdue"])
    for field in RATES:
        assert tile(field) == _percent(total[field])
        detail = f"{total[field]['numerator']} of {total[field]['denominator']}"
        assert page.inner_text(f"[data-figure={field}] .detail") == detail

    shown = page.eval_on_selector_all(
        "#departments tbody tr",
        """rows => rows.map(row => [row.dataset.key,
             Object.fromEntries([...row.querySelectorAll('[data-field]')]
               .map(c => [c.dataset.field, c.textContent]))])""",
    )
    expected = [
        [
            group["key"] or "",
            {
                "received": str(group["received"]),
                "merged": str(group["merged"]),
                "closed": str(group["closed"]),
                **{field: _share(group[field]) for field in RATES},
                "median_close": page.evaluate(
                    "s => duration(s)", group["time_to_close"]["median_seconds"]
                ),
                "p90_close": page.evaluate(
                    "s => duration(s)", group["time_to_close"]["p90_seconds"]
                ),
                "backlog": str(group["backlog"]),
                "overdue": str(group["overdue"]),
            },
        ]
        for group in report["groups"]
    ]
    assert shown == expected
    # The page's own duration formatting, on known values:
    assert page.evaluate("duration(20 * 3600)") == "20h 00m"
    assert page.evaluate("duration(86400 + 7200)") == "1d 2h"
    assert page.evaluate("duration(null)") == "—"
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def _drawn_pixels(page: Page, canvas: str) -> int:
    return int(
        page.evaluate(
            """id => {
                 const canvas = document.getElementById(id);
                 const pixels = canvas.getContext('2d')
                   .getImageData(0, 0, canvas.width, canvas.height).data;
                 let drawn = 0;
                 for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) drawn++;
                 return drawn;
               }""",
            canvas,
        )
    )


def test_the_charts_drew_the_apis_numbers(browser: BrowserContext, site: Site) -> None:
    page = _signed_in(browser, site)
    departments = site.api("/v1/metrics", {"by": "department", "since": "30d"})
    days = site.api("/v1/metrics", {"by": "day", "since": "30d"})
    closure = page.evaluate("Chart.getChart('chart-departments').data.datasets[1].data")
    assert closure == [
        None if g["closure_rate"]["value"] is None else g["closure_rate"]["value"] * 100
        for g in departments["groups"]
    ]
    trend = page.evaluate("Chart.getChart('chart-trend').data")
    assert trend["labels"] == [g["key"] for g in days["groups"]]
    assert trend["datasets"][0]["data"] == [g["received"] for g in days["groups"]]
    assert trend["datasets"][2]["data"] == [g["backlog"] for g in days["groups"]]
    assert len(trend["labels"]) in (30, 31)  # 30 days back from now, in Asia/Shanghai dates
    for canvas in ("chart-departments", "chart-trend"):
        assert _drawn_pixels(page, canvas) > 5_000, f"{canvas} looks empty"


def test_an_overdue_case_timeline_is_one_click_away(browser: BrowserContext, site: Site) -> None:
    page = _signed_in(browser, site)
    overdue = site.api("/v1/cases", [("overdue", "true"), *OPEN, ("limit", "100")])["items"]
    shown = page.eval_on_selector_all(
        "#overdue tbody tr", "rows => rows.map(r => r.dataset.caseId)"
    )
    assert shown == [case["id"] for case in overdue]
    filed = next(case for case in overdue if case["title"].startswith("燃气管道泄漏"))
    page.click(f"#overdue tr[data-case-id='{filed['id']}']")
    page.wait_for_selector("#timeline li")
    timeline = site.api(f"/v1/cases/{filed['id']}")["timeline"]
    items = page.eval_on_selector_all("#timeline li", "items => items.map(i => i.textContent)")
    assert len(items) == len(timeline) == 3
    assert "case.received" in items[0]
    assert "→ dispatched" in items[2]
    dead = site.api("/v1/deliveries", {"state": "dead"})["items"]
    rows = page.eval_on_selector_all(
        "#dead tbody tr", "rows => rows.map(r => r.dataset.deliveryId)"
    )
    assert rows == [delivery["id"] for delivery in dead]
    assert len(rows) == 1
    assert "answered 503: maintenance" in page.inner_text("#dead tbody")
    page.screenshot(path=str(ARTIFACTS / "dashboard-timeline.png"), full_page=True)


def test_a_wrong_token_is_sent_back_to_sign_in(browser: BrowserContext, site: Site) -> None:
    page = browser.new_page()
    page.goto(f"{site.url}/dashboard")
    page.fill("#token", "cl_not_a_token")
    page.click("#sign-in button[type=submit]")
    page.wait_for_selector("body[data-state=signed-out] #sign-in-error:not(:empty)")
    assert "unknown or revoked" in page.inner_text("#sign-in-error")
    assert page.evaluate("sessionStorage.getItem('closeloop.token')") is None


def test_the_page_refuses_framing_and_foreign_scripts(site: Site) -> None:
    answer = httpx.get(f"{site.url}/dashboard")
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
