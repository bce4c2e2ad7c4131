"""The OpenAPI document describes every operations endpoint, response, header and error code."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

from operations import errors


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


# 400: every endpoint refuses a bad X-Correlation-Id; 401: every endpoint needs a caller; 403:
# staff may read but not execute or cancel another owner's operation.
# 500: a server fault; 503: the database is unavailable; 411: a chunked body that could not be read.
# 429: every endpoint refuses an address past its failed-credential limit; submit also throttles
# and caps unfinished operations.
EXPECTED = {
    ("/rebalance/analyze/async", "post"): {"202", "200", "400", "401", "429", "403", "404", "409", "411", "413", "415", "500", "503"},
    ("/rebalance/operations", "get"): {"200", "400", "401", "429", "404", "500", "503"},
    ("/rebalance/operations/{operation_id}", "get"): {"200", "304", "400", "401", "429", "404", "500", "503"},
    ("/rebalance/operations/by-correlation/{correlation_id}", "get"): {"200", "304", "400", "401", "429", "404", "500", "503"},
    ("/rebalance/operations/{operation_id}/summary", "get"): {"200", "304", "400", "401", "429", "404", "500", "503"},
    ("/rebalance/operations/{operation_id}/results/{scenario_name}", "get"): {
        "200", "304", "400", "401", "429", "404", "409", "500", "503"},
    ("/rebalance/operations/{operation_id}/execute", "post"): {"200", "400", "401", "429", "403", "404", "409", "500", "503"},
    ("/rebalance/operations/{operation_id}/cancel", "post"): {"200", "400", "401", "429", "403", "404", "409", "500", "503"},
}


def test_every_endpoint_and_status_is_documented(schema):
    for (path, method), statuses in EXPECTED.items():
        responses = schema["paths"][path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status, response in responses.items():
            assert "X-Correlation-Id" in response["headers"]
            if status == "304":
                assert "content" not in response and {"ETag", "Vary"} <= set(response["headers"])
                continue
            media = "application/problem+json" if int(status) >= 400 else "application/json"
            assert list(response["content"]) == [media], (path, method, status)


def test_submit_documents_its_headers(schema):
    responses = schema["paths"]["/rebalance/analyze/async"]["post"]["responses"]
    common = {"X-Correlation-Id", "Location", "Retry-After", "ETag", "Vary", "Content-Encoding"}
    assert set(responses["202"]["headers"]) == common
    assert set(responses["200"]["headers"]) == common | {"Idempotent-Replayed"}
    assert responses["202"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/OperationResource"}


def test_every_problem_code_is_named_in_the_document(schema):
    text = str(schema["paths"])
    for code in (errors.OPERATIONS_DISABLED, errors.MANUAL_EXECUTION_DISABLED, errors.OPERATION_NOT_FOUND,
                 errors.OPERATION_NOT_EXECUTABLE, errors.OPERATION_NOT_CANCELLABLE,
                 errors.OPERATION_CORRELATION_CONFLICT, errors.OPERATION_NOT_OWNED, errors.OPERATION_RESULT_NOT_READY,
                 errors.SCENARIO_RESULT_NOT_FOUND, errors.TOO_MANY_UNFINISHED_OPERATIONS):
        assert f"`{code}`" in text, code
    assert schema["components"]["schemas"]["OperationFailureCode"]["enum"] == list(errors.FAILURE_CODES)


def test_the_resource_fields_are_documented_in_order(schema):
    resource = schema["components"]["schemas"]["OperationResource"]
    assert list(resource["properties"]) == [
        "operation_id", "operation_type", "status", "is_executable", "correlation_id", "created_at", "started_at",
        "finished_at", "expires_at", "attempt", "cancel_requested", "progress", "scenario_statuses", "status_url",
        "execute_url", "result", "error",
    ]
    overview = schema["components"]["schemas"]["OperationOverview"]
    assert list(overview["properties"])[-2:] == ["result_summary", "error"]
    assert list(schema["components"]["schemas"]["OperationProgress"]["properties"]) == [
        "scenarios_total", "scenarios_done", "scenarios_failed", "current_scenario",
    ]
    assert schema["components"]["schemas"]["OperationStatus"]["enum"] == ["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]


def test_the_list_documents_its_query_parameters(schema):
    parameters = schema["paths"]["/rebalance/operations"]["get"]["parameters"]
    assert {p["name"] for p in parameters if p["in"] == "query"} == {
        "status", "operation_type", "correlation_id", "created_from", "created_to", "limit", "cursor",
    }
