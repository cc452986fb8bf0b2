"""The broker connection, by URL: production Redis, or the embedded one."""

from __future__ import annotations

import kombu

from worker.config import get_settings


def broker_url() -> str:
    url = get_settings().broker_url
    if not url:
        raise RuntimeError(
            "CLOSELOOP_BROKER_URL is not set; `closeloop up` sets it to its embedded Redis"
        )
    return url


def ping_broker(timeout: float = 2.0) -> None:
    with kombu.Connection(broker_url(), connect_timeout=timeout) as connection:  # type: ignore[attr-defined,no-untyped-call]
        connection.ensure_connection(max_retries=1, timeout=timeout)
