"""POST /rebalance/operations/{id}/cancel (api.md section 2: cancellation keeps the four statuses)."""

from __future__ import annotations

import pytest
from django.test import override_settings

from operations import execution, services
from operations.models import Operation, OperationStatus
from tests.factories.operations import normalised, operation_row, parse, submit

pytestmark = pytest.mark.django_db


def cancel(client, operation_id: str):
    return client.post(f"/rebalance/operations/{operation_id}/cancel", headers={"X-Correlation-Id": "cancel-1"})


def test_cancel_of_a_pending_operation_fails_it_at_once(client):
    operation = operation_row(correlation_id="c-1")
    response = cancel(client, operation.id)
    assert response.status_code == 200
    assert "Retry-After" not in response
    assert response["X-Correlation-Id"] == "cancel-1"
    assert normalised(parse(response)) == {
        "operation_id": "<id>",
        "operation_type": "ANALYZE_SCENARIOS",
        "status": "FAILED",
        "is_executable": False,
        "correlation_id": "c-1",
        "created_at": "<instant>",
        "started_at": None,
        "finished_at": "<instant>",
        "expires_at": "<instant>",
        "attempt": 0,
        "cancel_requested": False,
        "progress": {"scenarios_total": 1, "scenarios_done": 0, "scenarios_failed": 0, "current_scenario": None},
        "scenario_statuses": {},
        "status_url": "/rebalance/operations/<id>",
        "execute_url": "/rebalance/operations/<id>/execute",
        "result": None,
        "error": {
            "code": "OPERATION_CANCELLED",
            "message": "The operation was cancelled.",
            "details": {"cancelled_while": "PENDING"},
        },
    }
    stored = Operation.objects.get(pk=operation.id)
    assert stored.expires_at == stored.finished_at + (operation.expires_at - operation.created_at)


def test_cancel_of_a_running_operation_flags_it_and_the_run_ends_cancelled(client):
    operation = operation_row()
    attempt = services.operation_claim(operation)
    response = cancel(client, operation.id)
    assert response.status_code == 200
    assert response["Retry-After"] == "1"
    payload = parse(response)
    assert (payload["status"], payload["error"], payload["attempt"]) == ("RUNNING", None, 1)
    assert Operation.objects.get(pk=operation.id).cancel_requested is True
    # The runner sees the flag before its (next) scenario and stops there.
    execution.operation_run_claimed(operation.id, attempt)
    finished = parse(client.get(payload["status_url"]))
    assert (finished["status"], finished["result"]) == ("FAILED", None)
    assert finished["error"] == {
        "code": "OPERATION_CANCELLED",
        "message": "The operation was cancelled.",
        "details": {"cancelled_while": "RUNNING"},
    }


def test_cancel_twice_while_running_is_fine(client):
    operation = operation_row()
    services.operation_claim(operation)
    assert cancel(client, operation.id).status_code == 200
    assert cancel(client, operation.id).status_code == 200


@pytest.mark.parametrize("status", [OperationStatus.SUCCEEDED, OperationStatus.FAILED])
def test_cancel_of_a_finished_operation_is_409(client, status):
    operation = operation_row(status=status)
    response = cancel(client, operation.id)
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert parse(response) == {
        "type": "https://dpm-async.dev/problems/dpm-async-operation-not-cancellable",
        "title": "Conflict",
        "status": 409,
        "detail": f"Operation {operation.id} is {status}; only a PENDING or RUNNING operation can be cancelled.",
        "code": "DPM_ASYNC_OPERATION_NOT_CANCELLABLE",
        "correlation_id": "cancel-1",
        "operation_id": operation.id,
        "operation_status": status,
    }
    assert Operation.objects.get(pk=operation.id).status == status


def test_cancel_of_an_unknown_operation_is_404(client):
    response = cancel(client, "dop_" + "1" * 32)
    assert response.status_code == 404
    assert parse(response)["code"] == "DPM_ASYNC_OPERATION_NOT_FOUND"


def test_a_cancelled_operation_cannot_be_executed(client):
    operation = operation_row()
    cancel(client, operation.id)
    response = client.post(f"/rebalance/operations/{operation.id}/execute")
    assert response.status_code == 409
    assert parse(response)["operation_status"] == "FAILED"


@override_settings(DPM_ASYNC_MANUAL_EXECUTION_ENABLED=False, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_cancel_does_not_depend_on_manual_execution(client):
    accepted = parse(submit(client))
    assert parse(cancel(client, accepted["operation_id"]))["status"] == "FAILED"
