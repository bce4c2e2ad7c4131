"""GET /rebalance/operations/{id} and /by-correlation/{correlation_id} (api.md sections 2 and 6)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from operations.models import Operation, OperationStatus
from rebalance.parsing import batch_request_parse
from rebalance.services import rebalance_analyze_batch
from tests.factories.bodies import batch_body
from tests.factories.operations import operation_resource as resource
from tests.factories.operations import operation_row, parse, stored_result

pytestmark = pytest.mark.django_db




def not_found(correlation_id: str) -> dict:
    return {
        "type": "https://dpm-async.dev/problems/dpm-async-operation-not-found",
        "title": "Not Found",
        "status": 404,
        "detail": "No such operation (it may have expired).",
        "code": "DPM_ASYNC_OPERATION_NOT_FOUND",
        "correlation_id": correlation_id,
    }


def test_get_pending_operation_with_retry_after(client):
    operation = operation_row(correlation_id="get-1")
    response = client.get(f"/rebalance/operations/{operation.id}", headers={"X-Correlation-Id": "poll-1"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == "1"
    assert response["X-Correlation-Id"] == "poll-1"
    assert "Location" not in response
    assert parse(response) == resource(operation)


def test_get_running_operation_with_retry_after(client):
    operation = operation_row(status=OperationStatus.RUNNING)
    response = client.get(f"/rebalance/operations/{operation.id}")
    assert response["Retry-After"] == "1"
    assert parse(response) == resource(operation)


def test_get_succeeded_operation_with_its_result(client):
    # Rebuilt from its stored parts, byte for byte the text the batch runner wrote.
    text = stored_result()
    operation = operation_row(status=OperationStatus.SUCCEEDED, result=text)
    response = client.get(f"/rebalance/operations/{operation.id}")
    assert response.status_code == 200
    assert "Retry-After" not in response
    assert parse(response) == resource(operation, result=json.loads(text, parse_float=Decimal))
    assert b'"result":' + text + b',"error":null}' in response.content


def test_get_failed_operation_with_its_error(client):
    error = {"code": "OPERATION_CANCELLED", "message": "The operation was cancelled.",
             "details": {"cancelled_while": "PENDING"}}
    operation = operation_row(status=OperationStatus.FAILED, error=error)
    response = client.get(f"/rebalance/operations/{operation.id}")
    assert "Retry-After" not in response
    assert parse(response) == resource(operation, error=error)


@pytest.mark.parametrize("operation_id", ["dop_" + "0" * 32, "dop_nothex", "unknown", "by-correlation"])
def test_unknown_operation_is_404(client, operation_id):
    response = client.get(f"/rebalance/operations/{operation_id}", headers={"X-Correlation-Id": "nf-1"})
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert parse(response) == not_found("nf-1")


def test_by_correlation_returns_the_operation(client):
    operation = operation_row(correlation_id="orch.77-a_b")
    response = client.get("/rebalance/operations/by-correlation/orch.77-a_b")
    assert response.status_code == 200
    assert response["Retry-After"] == "1"
    assert parse(response) == resource(operation)


def test_by_correlation_is_exact(client):
    operation_row(correlation_id="orch-8")
    response = client.get("/rebalance/operations/by-correlation/ORCH-8", headers={"X-Correlation-Id": "nf-2"})
    assert response.status_code == 404
    assert parse(response) == not_found("nf-2")


def test_unknown_correlation_is_404(client):
    response = client.get("/rebalance/operations/by-correlation/nobody", headers={"X-Correlation-Id": "nf-3"})
    assert parse(response) == not_found("nf-3")


def test_an_expired_operation_is_gone_everywhere_before_it_is_purged(client):
    past = timezone.now() - timedelta(days=2)
    operation = operation_row(correlation_id="expired-1", created_at=past)
    assert Operation.objects.filter(pk=operation.id).exists()
    headers = {"X-Correlation-Id": "nf-4"}
    for response in (
        client.get(f"/rebalance/operations/{operation.id}", headers=headers),
        client.get("/rebalance/operations/by-correlation/expired-1", headers=headers),
        client.post(f"/rebalance/operations/{operation.id}/execute", headers=headers),
        client.post(f"/rebalance/operations/{operation.id}/cancel", headers=headers),
    ):
        assert response.status_code == 404
        assert parse(response) == not_found("nf-4")
    assert parse(client.get("/rebalance/operations"))["items"] == []
    assert Operation.objects.get(pk=operation.id).status == OperationStatus.PENDING  # untouched


def test_an_operation_expires_at_its_instant(client):
    now = timezone.now()
    operation = operation_row(created_at=now - timedelta(hours=1), ttl=timedelta(hours=1, seconds=30))
    assert client.get(f"/rebalance/operations/{operation.id}").status_code == 200
    Operation.objects.filter(pk=operation.id).update(expires_at=timezone.now())
    assert client.get(f"/rebalance/operations/{operation.id}").status_code == 404


# Two queries per request: the caller's token (with its user, one join), then the operation.

def test_get_is_one_query(client, django_assert_num_queries):
    operation = operation_row(status=OperationStatus.RUNNING)
    with django_assert_num_queries(2):
        response = client.get(f"/rebalance/operations/{operation.id}")
    assert response.status_code == 200


def test_get_of_a_finished_operation_reads_each_scenario_once(client, django_assert_num_queries):
    body = batch_body(a={"options": {}}, b={"options": {}}, c={"options": {}})
    operation = operation_row(status=OperationStatus.SUCCEEDED, body=body,
                              result=rebalance_analyze_batch(batch_request_parse(body), correlation_id="q").json())
    # The token, the operation, the list of its scenario results (no bodies), then each body.
    with django_assert_num_queries(2 + 1 + 3):
        response = client.get(f"/rebalance/operations/{operation.id}")
    assert list(parse(response)["result"]["results"]) == ["a", "b", "c"]


def test_by_correlation_is_one_query(client, django_assert_num_queries):
    operation_row(correlation_id="q-1")
    with django_assert_num_queries(2):
        response = client.get("/rebalance/operations/by-correlation/q-1")
    assert response.status_code == 200


def test_get_does_not_load_the_stored_request(client, django_assert_num_queries):
    operation = operation_row()
    with django_assert_num_queries(2) as captured:
        client.get(f"/rebalance/operations/{operation.id}")
    assert "dpm_async_apitoken" in captured.captured_queries[0]["sql"]
    select = captured.captured_queries[1]["sql"]
    assert '"request"' not in select.replace('"request_fingerprint"', "")
