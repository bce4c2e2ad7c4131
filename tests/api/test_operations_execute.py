"""POST /rebalance/operations/{id}/execute: check order, codes and outcomes (api.md section 3)."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test import override_settings

from operations import execution
from operations.models import Operation, OperationStatus
from tests.factories.bodies import batch_body
from tests.factories.operations import normalised, operation_row, parse, submit

pytestmark = pytest.mark.django_db


def problem(status: int, code: str, detail: str, correlation_id: str, **extra) -> dict:
    titles = {404: "Not Found", 409: "Conflict"}
    return {
        "type": "https://dpm-async.dev/problems/" + code.lower().replace("_", "-"),
        "title": titles[status],
        "status": status,
        "detail": detail,
        "code": code,
        "correlation_id": correlation_id,
        **extra,
    }


DISABLED = ("DPM_ASYNC_OPERATIONS_DISABLED",
            "Async operations are disabled on this service (DPM_ASYNC_OPERATIONS_ENABLED=false).")
MANUAL_DISABLED = ("DPM_ASYNC_MANUAL_EXECUTION_DISABLED",
                   "Manual execution is disabled on this service (DPM_ASYNC_MANUAL_EXECUTION_ENABLED=false).")
NOT_FOUND = ("DPM_ASYNC_OPERATION_NOT_FOUND", "No such operation (it may have expired).")


def execute(client, operation_id: str):
    return client.post(f"/rebalance/operations/{operation_id}/execute", headers={"X-Correlation-Id": "exec-1"})


@pytest.mark.parametrize("mode", ["INLINE", "ACCEPT_ONLY", "WORKER"])
def test_execute_runs_a_pending_operation_in_any_mode(client, mode):
    operation = operation_row(correlation_id="run-1")
    with override_settings(DPM_ASYNC_EXECUTION_MODE=mode):
        response = execute(client, operation.id)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "Retry-After" not in response
    payload = parse(response)
    result = payload["result"]
    assert normalised(payload) == {
        "operation_id": "<id>",
        "operation_type": "ANALYZE_SCENARIOS",
        "status": "SUCCEEDED",
        "is_executable": False,
        "correlation_id": "run-1",
        "created_at": "<instant>",
        "started_at": "<instant>",
        "finished_at": "<instant>",
        "expires_at": "<instant>",
        "attempt": 1,
        "cancel_requested": False,
        "progress": {"scenarios_total": 1, "scenarios_done": 1, "scenarios_failed": 0, "current_scenario": None},
        "scenario_statuses": {"baseline": "READY"},
        "status_url": "/rebalance/operations/<id>",
        "execute_url": "/rebalance/operations/<id>/execute",
        "result": normalised(payload)["result"],
        "error": None,
    }
    assert list(result) == ["batch_run_id", "run_at_utc", "base_snapshot_ids", "results", "comparison_metrics",
                            "failed_scenarios", "warnings"]
    assert result["results"]["baseline"]["correlation_id"] == "run-1:baseline"
    assert parse(client.get(payload["status_url"])) == payload


def test_execute_check_order_disabled_first(client):
    with override_settings(DPM_ASYNC_OPERATIONS_ENABLED=False, DPM_ASYNC_MANUAL_EXECUTION_ENABLED=False):
        response = execute(client, "dop_" + "0" * 32)
    assert response.status_code == 404
    assert parse(response) == problem(404, *DISABLED, "exec-1")


def test_execute_check_order_manual_disabled_before_not_found(client):
    with override_settings(DPM_ASYNC_MANUAL_EXECUTION_ENABLED=False):
        response = execute(client, "dop_" + "0" * 32)
    assert response.status_code == 404
    assert parse(response) == problem(404, *MANUAL_DISABLED, "exec-1")


def test_execute_manual_disabled_leaves_the_operation_pending(client):
    operation = operation_row()
    with override_settings(DPM_ASYNC_MANUAL_EXECUTION_ENABLED=False):
        assert parse(execute(client, operation.id)) == problem(404, *MANUAL_DISABLED, "exec-1")
        assert parse(client.get(f"/rebalance/operations/{operation.id}"))["is_executable"] is False
    assert Operation.objects.get(pk=operation.id).status == OperationStatus.PENDING


def test_execute_unknown_operation_is_404(client):
    response = execute(client, "dop_" + "0" * 32)
    assert response.status_code == 404
    assert parse(response) == problem(404, *NOT_FOUND, "exec-1")


@pytest.mark.parametrize("status", [OperationStatus.RUNNING, OperationStatus.SUCCEEDED, OperationStatus.FAILED])
def test_execute_of_an_operation_that_is_not_pending_is_409(client, status):
    operation = operation_row(status=status)
    response = execute(client, operation.id)
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert parse(response) == problem(
        409,
        "DPM_ASYNC_OPERATION_NOT_EXECUTABLE",
        f"Operation {operation.id} is {status}; only a PENDING operation can be executed.",
        "exec-1",
        operation_id=operation.id,
        operation_status=status,
    )
    assert Operation.objects.get(pk=operation.id).status == status


def test_execute_twice_runs_once(client, monkeypatch):
    calls = []
    real = execution.rebalance_analyze_batch

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(execution, "rebalance_analyze_batch", counting)
    operation = operation_row()
    assert execute(client, operation.id).status_code == 200
    second = execute(client, operation.id)
    assert second.status_code == 409
    assert parse(second)["operation_status"] == "SUCCEEDED"
    assert calls == [1]


def test_execute_of_an_invalid_stored_request_fails_the_operation(client):
    body = batch_body()
    operation = operation_row(body=body)
    broken = body | {"scenarios": {}}
    Operation.objects.filter(pk=operation.id).update(request=json.dumps(broken))
    response = execute(client, operation.id)
    assert response.status_code == 200
    payload = parse(response)
    assert payload["status"] == "FAILED" and payload["result"] is None
    assert payload["error"] == {
        "code": "INVALID_STORED_REQUEST",
        "message": "The stored request no longer passes validation; submit it again.",
        "details": {"errors": [{"field": "scenarios", "message": "at least one scenario is required"}]},
    }


def test_execute_of_a_stored_request_that_is_not_json_fails_the_operation(client):
    if connection.vendor == "postgresql":
        pytest.skip("the json column refuses non-JSON text, so this cannot happen on PostgreSQL")
    operation = operation_row()
    Operation.objects.filter(pk=operation.id).update(request="{not json")
    payload = parse(execute(client, operation.id))
    assert payload["status"] == "FAILED"
    assert payload["error"] == {
        "code": "INVALID_STORED_REQUEST", "message": "The stored request is not a valid JSON document.", "details": {},
    }


def test_execute_answers_200_when_the_run_fails(client, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(execution, "rebalance_analyze_batch", explode)
    operation = operation_row(correlation_id="fails-1")
    response = execute(client, operation.id)
    assert response.status_code == 200
    payload = parse(response)
    assert (payload["status"], payload["attempt"], payload["result"]) == ("FAILED", 1, None)
    assert payload["error"]["code"] == "ENGINE_ERROR"
    assert "disk on fire" not in response.content.decode()


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_a_submitted_operation_runs_its_stored_request(client):
    body = batch_body(alpha={"options": {}}, beta={"options": {"max_turnover_pct": "2"}})
    accepted = parse(submit(client, body, **{"X-Correlation-Id": "stored-1"}))
    payload = parse(execute(client, accepted["operation_id"]))
    assert list(payload["result"]["results"]) == ["alpha"]
    assert list(payload["result"]["failed_scenarios"]) == ["beta"]
    assert payload["result"]["warnings"] == ["PARTIAL_BATCH_FAILURE"]


def test_get_with_the_execute_method_is_405(client):
    operation = operation_row()
    response = client.get(f"/rebalance/operations/{operation.id}/execute")
    assert response.status_code == 405
