"""Logs are JSON lines off a terminal, and never carry a citizen's name, phone or e-mail."""

from __future__ import annotations

import io
import json
import logging
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.logging import REDACTED, configure_logging, get_logger, scrub_text


@pytest.fixture
def captured() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    return stream


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_with_bound_ids(captured: io.StringIO) -> None:
    get_logger("t", case_id="c-1", task_id="t-9").info("task assigned", department="water")
    (line,) = _lines(captured)
    assert line["event"] == "task assigned"
    assert (line["case_id"], line["task_id"], line["department"]) == ("c-1", "t-9", "water")
    assert line["level"] == "info"
    assert "timestamp" in line


def test_personal_data_never_reaches_the_log(captured: io.StringIO) -> None:
    log = get_logger("t", case_id="c-2")
    log.info(
        "filed",
        reporter={"name": "王小明", "phone": "13812345678", "email": "xiaoming@example.cn"},
        note="居民来电 138-1234-5678，邮箱 xiaoming@example.cn，回拨 +86 10 6512 3456",
        phone="13812345678",
    )
    logging.getLogger("celery.worker").warning("raw line from a library: 13812345678")
    text = captured.getvalue()
    # Names cannot be told apart from other words in free text: they are redacted by key.
    for secret in ("13812345678", "138-1234-5678", "6512 3456", "xiaoming@example.cn", "王小明"):
        assert secret not in text
    assert text.count(REDACTED) >= 5


def test_dates_and_ids_are_not_mistaken_for_phone_numbers() -> None:
    text = "at 2026-11-24T10:00:00Z case 3f2b9c1e-5a7d-4c3b-9e21-0a1b2c3d4e5f seq 12"
    assert scrub_text(text) == text


def test_readable_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    configure_logging("INFO", "auto", stream=stream)
    get_logger("t").info("hello", case_id="c-3")
    output = stream.getvalue()
    assert "hello" in output
    assert not output.lstrip().startswith("{")


API_TOKENS = st.text(string.ascii_letters + string.digits + "_-", min_size=43, max_size=43).map(
    lambda body: "cl_" + body
)


@given(token=API_TOKENS, key=st.text(string.ascii_letters + string.digits, min_size=8))
def test_tokens_and_keys_in_an_access_log_line_are_redacted(token: str, key: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    access = logging.getLogger("uvicorn.access")
    # uvicorn's own format: the path is written with its query string.
    access.info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5000",
        "GET",
        f"/v1/cases?token={token}&access_token={token}&api_key={key}&limit=5",
        "1.1",
        401,
    )
    get_logger("t").warning("bad token", presented=token, note=f"Bearer {token}")
    text = stream.getvalue()
    assert token not in text
    assert key not in text
    assert "limit=5" in text  # only what could be a credential goes


@given(
    user=st.text(string.ascii_letters, min_size=6, max_size=10),
    password=st.text(string.ascii_letters + string.digits, min_size=8, max_size=20),
    key=st.text(string.ascii_letters + string.digits, min_size=8, max_size=20),
)
def test_urls_in_any_line_lose_their_credentials(user: str, password: str, key: str) -> None:
    stream = io.StringIO()
    configure_logging("INFO", "json", stream=stream)
    url = f"https://{user}:{password}@water.example.cn/hooks?sig={key}&x={key}"
    logging.getLogger("httpx").info('HTTP Request: POST %s "HTTP/1.1 410 Gone"', url)
    get_logger("t").info("sending", url=url, urls=[url])
    text = stream.getvalue()
    assert password not in text
    assert key not in text
    assert text.count("https://water.example.cn/hooks") == 3
