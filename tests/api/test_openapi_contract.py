"""The OpenAPI document matches what the service answers (tests/contract.py).

Every answer of every test is checked against the document (tests/conftest.py); here each
endpoint is called for its successes and its ordinary problems in one place, so that no endpoint
can be left unchecked, and the examples the document shows are held to it too.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from rebalance.batch import BatchRebalanceRequest, BatchRebalanceResult
from rebalance.examples import REQUEST_EXAMPLE, RESULT_EXAMPLE
from rebalance.parsing import batch_request_parse
from tests.contract import Contract, ContractViolation, contract
from tests.factories.bodies import batch_body, lots_batch_body
from tests.factories.operations import ASYNC_URL, LIST_URL, api_headers, api_user, operation_row, parse

pytestmark = pytest.mark.django_db


class Recorder:
    """Remembers which (method, documented path, status) the calls below produced."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: set[tuple[str, str, int]] = set()

    def call(self, method: str, path: str, body: Any = None, **headers: str) -> Any:
        data = None if body is None else json.dumps(body)
        response = self.client.generic(method, path, data or "", content_type="application/json", headers=headers)
        operation = contract().operation_for(method, path.split("?")[0])
        assert operation is not None, path
        self.seen.add((method, operation.path, response.status_code))
        return response


def test_every_endpoint_answers_as_documented_in_success_and_failure(
    client, anonymous_client, readiness_on_the_test_connection
):
    calls = Recorder(client)
    anonymous = Recorder(anonymous_client)

    assert calls.call("POST", "/rebalance/analyze", lots_batch_body()).status_code == 200
    assert calls.call("POST", "/rebalance/analyze", {"scenarios": {"BAD NAME": {}}}).status_code == 400
    assert anonymous.call("POST", "/rebalance/analyze", batch_body()).status_code == 401

    with override_settings(DPM_ASYNC_EXECUTION_MODE="INLINE"):
        finished = parse(calls.call("POST", ASYNC_URL, lots_batch_body(), **{"X-Correlation-Id": "contract-1"}))
        assert finished["status"] == "SUCCEEDED"
        assert calls.call("POST", ASYNC_URL, lots_batch_body(), **{"X-Correlation-Id": "contract-1"}).status_code == 200
        assert calls.call("POST", ASYNC_URL, batch_body(), **{"X-Correlation-Id": "contract-1"}).status_code == 409
    with override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY"):
        pending = parse(calls.call("POST", ASYNC_URL, batch_body(), **{"X-Correlation-Id": "contract-2"}))
        assert pending["status"] == "PENDING"
    assert calls.call("POST", ASYNC_URL, [], **{"X-Correlation-Id": "contract-3"}).status_code == 400
    with override_settings(DPM_ASYNC_OPERATIONS_ENABLED=False):
        assert calls.call("POST", ASYNC_URL, batch_body()).status_code == 404

    assert calls.call("GET", LIST_URL + "?limit=1").status_code == 200
    assert calls.call("GET", LIST_URL + "?colour=blue").status_code == 400
    assert calls.call("GET", finished["status_url"]).status_code == 200
    assert calls.call("GET", pending["status_url"]).status_code == 200
    assert calls.call("GET", "/rebalance/operations/dop_" + "0" * 32).status_code == 404
    assert calls.call("GET", "/rebalance/operations/by-correlation/contract-1").status_code == 200
    assert calls.call("GET", "/rebalance/operations/by-correlation/nobody").status_code == 404
    assert calls.call("POST", pending["execute_url"]).status_code == 200
    assert calls.call("POST", pending["execute_url"]).status_code == 409
    assert calls.call("POST", f"{finished['status_url']}/cancel").status_code == 409
    failed = operation_row(status="FAILED")
    assert calls.call("GET", f"/rebalance/operations/{failed.id}").status_code == 200
    assert calls.call("GET", f"{finished['status_url']}/summary").status_code == 200
    assert calls.call("GET", f"/rebalance/operations/{failed.id}/summary").status_code == 200
    assert calls.call("GET", "/rebalance/operations/dop_" + "0" * 32 + "/summary").status_code == 404
    assert calls.call("GET", f"{finished['status_url']}/results/baseline").status_code == 200
    assert calls.call("GET", f"{finished['status_url']}/results/nothing").status_code == 404
    assert calls.call("GET", f"/rebalance/operations/{failed.id}/results/baseline").status_code == 409
    cancellable = operation_row()
    assert calls.call("POST", f"/rebalance/operations/{cancellable.id}/cancel").status_code == 200
    assert calls.call("POST", "/rebalance/operations/dop_" + "1" * 32 + "/cancel").status_code == 404
    assert anonymous.call("GET", LIST_URL).status_code == 401
    assert calls.call("GET", "/health/live").status_code == 200
    assert calls.call("GET", "/health/ready").status_code == 200
    assert calls.call("GET", "/health/live", **{"X-Correlation-Id": "not valid"}).status_code == 400
    assert calls.call("GET", "/health/ready", **{"X-Correlation-Id": "not valid"}).status_code == 400
    with override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER", DPM_READY_MAX_PENDING_AGE_SECONDS=1):
        operation_row(created_at=timezone.now() - timedelta(seconds=5))
        assert calls.call("GET", "/health/ready").status_code == 503
    staff = Recorder(Client(headers=api_headers(api_user("metrics-reader", is_staff=True))))
    assert staff.call("GET", "/metrics").status_code == 200
    assert calls.call("GET", "/metrics").status_code == 403
    assert anonymous.call("GET", "/metrics").status_code == 401

    # Each documented path was called, and answered both a success and a problem.
    seen = calls.seen | anonymous.seen | staff.seen
    documented = {(operation.method, operation.path) for operation in contract().operations}
    assert documented == {(method, path) for method, path, _ in seen}
    for method, path in documented:
        statuses = {status for m, p, status in seen if (m, p) == (method, path)}
        assert any(status < 300 for status in statuses) and any(status >= 400 for status in statuses), (
            method, path, statuses
        )


def test_an_unknown_property_in_an_answer_is_a_violation():
    # The check itself: an answer with a field the document does not declare fails.
    health = {"status": "ok", "checks": {}, "uptime": 3}
    with pytest.raises(ContractViolation, match="uptime"):
        contract().check("GET", "/health/live", 200, "application/json", json.dumps(health).encode())
    with pytest.raises(ContractViolation, match="status not documented"):
        contract().check("GET", "/health/live", 418, "application/json", b"{}")


def test_the_examples_of_the_document_match_it():
    # The request example validates and parses; the result example validates as a result.
    document = contract().document
    schemas = document["components"]["schemas"]
    assert schemas[BatchRebalanceRequest.__name__]["example"] == REQUEST_EXAMPLE
    batch_request_parse(REQUEST_EXAMPLE)
    result_only = Contract(
        {"components": document["components"], "paths": {"/x": {"get": {"responses": {"200": {
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{BatchRebalanceResult.__name__}"}}}
        }}}}}}
    )
    result_only.check("GET", "/x", 200, "application/json", json.dumps(RESULT_EXAMPLE).encode())
