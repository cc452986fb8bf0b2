"""Generate the JSON Schemas in `schemas/` from the pydantic models.

Each entry maps a file name to a function returning its schema. The files are written with
sorted keys and a trailing newline so that a regenerated file diffs cleanly.
"""

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from worker.contracts.incident import Incident

Schema = dict[str, Any]


def _of(model: type[BaseModel], title: str | None = None) -> Callable[[], Schema]:
    def build() -> Schema:
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        if title:
            schema["title"] = title
        return schema

    return build


def schema_builders() -> dict[str, Callable[[], Schema]]:
    # Imported here so that a contract module may itself import from worker.contracts freely.
    from worker.contracts.alertmanager import AlertmanagerWebhook
    from worker.contracts.audit import AuditEventOut
    from worker.contracts.callback import CallbackOut, Feedback, Reopen
    from worker.contracts.case import CaseOut
    from worker.contracts.supervision import CancelRequest, EscalateRequest, ReassignRequest
    from worker.contracts.task import ProgressReport, Resolution, TaskReturn, TaskView
    from worker.rules.model import RulesFile

    return {
        "incident.schema.json": _of(Incident),
        "case.schema.json": _of(CaseOut),
        "audit-event.schema.json": _of(AuditEventOut),
        "alertmanager-webhook.schema.json": _of(AlertmanagerWebhook),
        "routing-rules.schema.json": _of(RulesFile, "closeloop routing rules file"),
        "case-reassign.schema.json": _of(ReassignRequest),
        "case-escalate.schema.json": _of(EscalateRequest),
        "case-cancel.schema.json": _of(CancelRequest),
        "task.schema.json": _of(TaskView),
        "task-progress.schema.json": _of(ProgressReport),
        "task-resolution.schema.json": _of(Resolution),
        "task-return.schema.json": _of(TaskReturn),
        "callback-feedback.schema.json": _of(Feedback),
        "callback.schema.json": _of(CallbackOut),
        "case-reopen.schema.json": _of(Reopen),
    }


def render(schema: Schema) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered_schemas() -> dict[str, str]:
    return {name: render(build()) for name, build in schema_builders().items()}


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = folder / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
