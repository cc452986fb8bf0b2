"""OpenAPI links: where an answer's ids lead next (a filed incident to its case, a case to
its tasks, a page to the next). Clients and fuzzers follow them; the operation ids are
FastAPI's, and a test checks that each names an operation that exists."""

from __future__ import annotations

from typing import Any

Links = dict[int | str, dict[str, Any]]


def _link(operation_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation_id, "parameters": parameters}


def _case_links(case_id: str) -> dict[str, Any]:
    return {
        "ReadCase": _link("read_case_v1_cases__case_id__get", case_id=case_id),
        "CancelCase": _link("cancel_case_v1_cases__case_id__cancel_post", case_id=case_id),
        "EscalateCase": _link("escalate_case_v1_cases__case_id__escalate_post", case_id=case_id),
        "ReassignCase": _link("reassign_case_v1_cases__case_id__reassign_post", case_id=case_id),
        "RecordFeedback": _link("feedback_v1_cases__case_id__feedback_post", case_id=case_id),
        "ReopenCase": _link("reopen_case_v1_cases__case_id__reopen_post", case_id=case_id),
        "ListTasksOfCase": _link("list_tasks_v1_tasks_get", case_id=case_id),
    }


def _task_links(task_id: str) -> dict[str, Any]:
    return {
        "ReadTask": _link("read_task_v1_tasks__task_id__get", task_id=task_id),
        "AcceptTask": _link("accept_v1_tasks__task_id__accept_post", task_id=task_id),
        "ReportProgress": _link("progress_v1_tasks__task_id__progress_post", task_id=task_id),
        "ResolveTask": _link("resolve_v1_tasks__task_id__resolve_post", task_id=task_id),
        "ReturnTask": _link("return_task_v1_tasks__task_id__return_post", task_id=task_id),
    }


def filed(status: int) -> Links:
    return {status: {"links": _case_links("$response.body#/case_id")}}


def case_page() -> Links:
    links = _case_links("$response.body#/items/0/id")
    links["NextPage"] = _link("list_cases_v1_cases_get", cursor="$response.body#/next_cursor")
    return {200: {"links": links}}


def case() -> Links:
    return {200: {"links": _task_links("$response.body#/tasks/0/id")}}


def task_page() -> Links:
    links = _task_links("$response.body#/items/0/id")
    links["NextPage"] = _link("list_tasks_v1_tasks_get", cursor="$response.body#/next_cursor")
    return {200: {"links": links}}


def delivery_page() -> Links:
    delivery_id = "$response.body#/items/0/id"
    return {
        200: {
            "links": {
                "ReadDelivery": _link(
                    "get_delivery_v1_deliveries__delivery_id__get", delivery_id=delivery_id
                ),
                "ReplayDelivery": _link(
                    "replay_one_v1_deliveries__delivery_id__replay_post", delivery_id=delivery_id
                ),
            }
        }
    }
