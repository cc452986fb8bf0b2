"""The department's side: its tasks, and what it does with them.

A department token sees and acts on its own department's tasks only; any other task answers
404, exactly like one that does not exist, so that ids of others' work do not leak.
Supervisors (and admins) read every task. Each action is idempotent: the same request twice
answers the same and changes nothing the second time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.orm import Session, selectinload

from worker.actions import department
from worker.api import links, problems
from worker.api.attempts import in_transaction
from worker.api.auth import require
from worker.api.cursor import Cursor, decode, encode
from worker.api.incidents import IdempotencyKey
from worker.api.limits import json_body
from worker.auth import Principal, Role
from worker.contracts.enums import TaskState
from worker.contracts.task import ProgressReport, Resolution, TaskPage, TaskReturn, TaskView
from worker.db.models import Task
from worker.idempotency import Key

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])

MAX_PAGE = 200

Reader = Annotated[Principal, Depends(require(Role.department, Role.supervisor))]
Department = Annotated[Principal, Depends(require(Role.department))]
Action = Callable[[Session, Task], Task]


@router.get(
    "",
    summary="Tasks, newest first: a department's own, or every one for supervisors",
    responses=problems.responses(401, 403, 422, 500) | links.task_page(),
)
def list_tasks(
    caller: Reader,
    state: Annotated[list[TaskState] | None, Query(description="One or more states.")] = None,
    department: Annotated[
        str | None, Query(max_length=64, description="Supervisors: one department's tasks.")
    ] = None,
    case_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> TaskPage:
    if caller.role is Role.department:
        department = caller.department
    query = _filtered(_newest_first(limit + 1), state, department, case_id)
    if cursor is not None:
        query = query.where(_after(*decode(cursor)))

    def page(session: Session) -> TaskPage:
        tasks = list(session.scalars(query))
        shown, more = tasks[:limit], len(tasks) > limit
        return TaskPage(
            items=[TaskView.model_validate(task) for task in shown],
            next_cursor=encode(shown[-1].created_at, shown[-1].id) if more else None,
        )

    return in_transaction(page)


@router.get(
    "/{task_id}",
    summary="One task, with a summary of its case",
    responses=problems.responses(401, 403, 404, 422, 500),
)
def read_task(task_id: str, caller: Reader) -> TaskView:
    return in_transaction(lambda session: TaskView.model_validate(_find(session, caller, task_id)))


@router.post(
    "/{task_id}/accept",
    summary="Take the task on (meets the acknowledge deadline)",
    responses=problems.responses(401, 403, 404, 409, 422, 500),
)
def accept(task_id: str, caller: Department) -> TaskView:
    return _act(
        caller, task_id, lambda session, task: department.accept(session, task, caller.actor)
    )


@router.post(
    "/{task_id}/progress",
    summary="Report progress (a note, links to photos); the first report starts the work",
    dependencies=[Depends(json_body)],
    responses=problems.responses(401, 403, 404, 409, 413, 415, 422, 500),
)
def progress(
    task_id: str,
    report: ProgressReport,
    caller: Department,
    idempotency_key: IdempotencyKey = None,
) -> TaskView:
    attachments = [str(url) for url in report.attachments]
    return _act(
        caller,
        task_id,
        lambda session, task: department.report_progress(
            session,
            task,
            caller.actor,
            report.note,
            attachments,
            idempotency_key=Key.of_token(caller.token_id, idempotency_key),
        ),
    )


@router.post(
    "/{task_id}/resolve",
    summary="The work is done: the result",
    dependencies=[Depends(json_body)],
    responses=problems.responses(401, 403, 404, 409, 413, 415, 422, 500),
)
def resolve(task_id: str, resolution: Resolution, caller: Department) -> TaskView:
    return _act(
        caller,
        task_id,
        lambda session, task: department.resolve(session, task, caller.actor, resolution.note),
    )


@router.post(
    "/{task_id}/return",
    summary="Not ours: give the task back, with the reason",
    dependencies=[Depends(json_body)],
    responses=problems.responses(401, 403, 404, 409, 413, 415, 422, 500),
)
def return_task(task_id: str, returned: TaskReturn, caller: Department) -> TaskView:
    return _act(
        caller,
        task_id,
        lambda session, task: department.return_task(session, task, caller.actor, returned.reason),
    )


def _act(caller: Principal, task_id: str, action: Action) -> TaskView:
    def work(session: Session) -> TaskView:
        return TaskView.model_validate(action(session, _find(session, caller, task_id)))

    return in_transaction(work)


def _find(session: Session, caller: Principal, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None or (caller.role is Role.department and task.department != caller.department):
        raise HTTPException(404, f"There is no task {task_id}.")
    return task


def _newest_first(limit: int) -> Select[Task]:
    return (
        select(Task)
        .options(selectinload(Task.case))
        .order_by(Task.created_at.desc(), Task.id.desc())
        .limit(limit)
    )


def _filtered(
    query: Select[Task],
    states: list[TaskState] | None,
    department: str | None,
    case_id: str | None,
) -> Select[Task]:
    if states:
        query = query.where(Task.state.in_([s.value for s in states]))
    if department is not None:
        query = query.where(Task.department == department)
    if case_id is not None:
        query = query.where(Task.case_id == case_id)
    return query


def _after(created_at: datetime, task_id: str) -> ColumnElement[bool]:
    return or_(
        Task.created_at < created_at,
        and_(Task.created_at == created_at, Task.id < task_id),
    )
