"""The one settings object. Every variable is read from the environment, prefixed `CLOSELOOP_`.

The defaults are the embedded default: a SQLite file and an embedded Redis in the data folder,
so that `closeloop up` runs with nothing installed beside Python. Production sets the URLs.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CLOSELOOP_", extra="ignore")

    data_dir: Path = Field(
        default=Path("data"), description="Folder for the embedded SQLite file and embedded Redis."
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+psycopg://user@host/db). Unset: SQLite in data.",
    )
    broker_url: str | None = Field(
        default=None,
        description="Celery broker URL (redis://host:6379/0). Unset: embedded Redis.",
    )
    broker_key_prefix: str = Field(
        default="",
        description="Prefix for every key closeloop's queues use in Redis (to share one Redis).",
    )
    broker_visibility_timeout: int = Field(
        default=600,
        description="Seconds Redis waits for a message's acknowledgement before redelivering it.",
    )
    stalled_after: int = Field(
        default=60,
        description="Seconds a case may wait before dispatch before the sweeper re-drives it.",
    )
    redelivery_cap: int = Field(
        default=5,
        description="Redeliveries after a worker died mid-task before the task is dead-lettered.",
    )
    intake_consumers: int = Field(
        default=2,
        ge=1,
        description="Threads per worker that take incidents off the intake queue.",
    )
    intake_heartbeat_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds without a heartbeat before an intake consumer counts as dead and "
        "another returns the incidents it held to the queue.",
    )
    environment: Literal["development", "production"] = Field(
        default="production",
        description="development: departments' webhook endpoints on loopback, link-local or "
        "private addresses are expected (`closeloop up` sets it unless told otherwise); "
        "production: the rules are warned about when they name one.",
    )
    rules_dir: Path = Field(default=Path("routing_rules"), description="The routing rules folder.")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto", description="auto: readable on a terminal, JSON lines otherwise."
    )
    api_host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on.")
    api_port: int = Field(default=8080, description="Port the HTTP API listens on.")
    max_body_bytes: int = Field(
        default=64 * 1024,
        gt=0,
        description="Largest request body the API reads; a larger one is refused with 413.",
    )
    max_requests_in_flight: int = Field(
        default=64,
        ge=1,
        description="Requests one API process works on at once; past it, 503 with Retry-After "
        "at once (/health is never refused).",
    )
    request_body_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a request body may take to arrive; a slower one gets 408.",
    )
    public_url: str | None = Field(
        default=None,
        description="Base URL departments use to reach the API (links in webhooks). Unset: http://api_host:api_port.",
    )

    webhook_timeout: float = Field(
        default=15.0,
        gt=0,
        description="Seconds a webhook attempt may take in all (connect, send, the whole "
        "answer); past it the attempt is a failure (timeout).",
    )
    webhook_endpoint_concurrency: int = Field(
        default=2,
        ge=1,
        description="Most attempts on one endpoint at once in a worker process; a delivery "
        "over it waits a moment (not an attempt), so a slow endpoint holds only that many "
        "of the worker's threads. Keep it below the webhook worker's --concurrency "
        "(`closeloop up` runs 4 threads) so that other departments keep threads of their own.",
    )
    webhook_schedule: str = Field(
        default="0s,5s,5m,30m,2h,5h,10h,10h",
        description="Delays before each webhook attempt (the first from queueing, each next "
        "from the previous failure); its length is the number of attempts.",
    )
    webhook_jitter: float = Field(
        default=0.15,
        ge=0,
        lt=1,
        description="Each retry delay is moved by up to this fraction, so that retries spread.",
    )
    webhook_circuit_failures: int = Field(
        default=5, ge=1, description="Consecutive failures that open an endpoint's circuit."
    )
    webhook_circuit_cooldown: str = Field(
        default="1m", description="How long an open circuit holds deliveries before one probe."
    )
    webhook_scan_interval: float = Field(
        default=2.0, gt=0, description="Seconds between beat's scans for webhooks due."
    )
    deadline_scan_batch: int = Field(
        default=500,
        ge=1,
        description="Most tasks to remind, and most cases to look at, in one deadline scan.",
    )
    ops_department: str | None = Field(
        default=None,
        description="Department told when an endpoint is disabled. Unset: the catch-all's lead.",
    )
    callback_window: str = Field(
        default="48h",
        description="How long the hotline has to call the citizen back after a case is "
        "resolved; past it, an unanswered case is closed.",
    )
    metrics_time_zone: str = Field(
        default="Asia/Shanghai",
        description="IANA time zone whose midnights start the metrics' days and weeks.",
    )
    metrics_parallel_queries: int = Field(
        default=3,
        ge=1,
        description="Connections a metrics report's queries run on at once (PostgreSQL; all "
        "on one snapshot); 1 runs them one after another.",
    )
    metrics_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        description="How long /metrics reuses the figures it read from the database.",
    )

    audit_keys: str | None = Field(
        default=None,
        description="Keys of the audit store's MACs and anchors: `id:base64key` entries, "
        "comma-separated, the first signs, the others still verify. Unset: "
        "DATA_DIR/audit-keys.env, which `closeloop up` makes once.",
    )
    audit_anchor_dir: Path | None = Field(
        default=None,
        description="Folder `closeloop audit anchor` writes to and `verify` reads the newest "
        "anchor from. Unset: DATA_DIR/anchors.",
    )
    database_app_role: str = Field(
        default="closeloop_app",
        pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL role the migrations create and grant the service's rights to "
        "(no ownership, no TRUNCATE); the service logs in as a member of it.",
    )

    @field_validator("metrics_time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        ZoneInfo(value)  # an unknown zone fails at start-up, naming itself
        return value

    @field_validator("webhook_schedule", "webhook_circuit_cooldown")
    @classmethod
    def _durations_parse(cls, value: str) -> str:
        from worker.webhooks.schedule import parse_schedule

        parse_schedule(value)  # refuse a bad value at start-up, not at the first retry
        return value

    @field_validator("callback_window")
    @classmethod
    def _window_parses(cls, value: str) -> str:
        from worker.rules.durations import parse_duration

        parse_duration(value)
        return value

    def callback_window_delta(self) -> timedelta:
        from worker.rules.durations import parse_duration

        return parse_duration(self.callback_window)

    def sqlite_path(self) -> Path:
        return self.data_dir / "closeloop.sqlite3"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.sqlite_path().resolve()}"

    def resolved_rules_dir(self) -> Path:
        """The rules folder; a relative one missing here is looked for beside the source tree
        (the example city, for `closeloop up` started from another folder)."""
        if self.rules_dir.is_absolute() or self.rules_dir.exists():
            return self.rules_dir.resolve()
        beside_source = Path(__file__).resolve().parent.parent / self.rules_dir
        return beside_source if beside_source.exists() else self.rules_dir

    def anchor_dir(self) -> Path:
        return self.audit_anchor_dir or self.data_dir / "anchors"

    def base_url(self) -> str:
        return self.public_url or f"http://{self.api_host}:{self.api_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The environment's settings; what it leaves unset of the broker, the store and the
    rules folder comes from the `closeloop up` running on the data folder, if one is."""
    from worker.ops.instance import running_instance

    settings = Settings()
    instance = running_instance(settings.data_dir)
    if instance is None:
        return settings
    found = {
        name: value
        for name, value in instance.settings_values().items()
        if name not in settings.model_fields_set
    }
    return settings.model_copy(update=found) if found else settings


def reset_settings_cache() -> None:
    """For tests and for `closeloop up`, which adjust the environment before the first use."""
    get_settings.cache_clear()
