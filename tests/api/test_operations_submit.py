"""POST /rebalance/analyze/async in each execution mode, replay and conflict (api.md 2 to 4)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from operations import config, execution, submission
from operations.models import Operation
from rebalance.canonical import request_canonical
from rebalance.parsing import batch_request_parse
from tests.factories.bodies import batch_body
from tests.factories.operations import (
    normalised,
    operation_row,
    parse,
    result_normalised,
    stored_full_result,
    submit,
)

pytestmark = pytest.mark.django_db


def pending_resource(correlation_id: str, *, executable: bool = True) -> dict:
    return {
        "operation_id": "<id>",
        "operation_type": "ANALYZE_SCENARIOS",
        "status": "PENDING",
        "is_executable": executable,
        "correlation_id": correlation_id,
        "created_at": "<instant>",
        "started_at": None,
        "finished_at": None,
        "expires_at": "<instant>",
        "attempt": 0,
        "cancel_requested": False,
        "progress": {"scenarios_total": 1, "scenarios_done": 0, "scenarios_failed": 0, "current_scenario": None},
        "scenario_statuses": {},
        "status_url": "/rebalance/operations/<id>",
        "execute_url": "/rebalance/operations/<id>/execute",
        "result": None,
        "error": None,
    }


def sync_result(client, body: dict, correlation_id: str) -> dict:
    response = client.post("/rebalance/analyze", data=json.dumps(body), content_type="application/json",
                           headers={"X-Correlation-Id": correlation_id})
    assert response.status_code == 200
    return result_normalised(parse(response))


def test_inline_answers_202_with_the_finished_operation(client):
    body = batch_body()
    expected_result = sync_result(client, body, "orch-1")
    response = submit(client, body, **{"X-Correlation-Id": "orch-1"})
    assert response.status_code == 202
    payload = parse(response)
    assert normalised(payload) == {
        **pending_resource("orch-1", executable=False),
        "status": "SUCCEEDED",
        "started_at": "<instant>",
        "finished_at": "<instant>",
        "attempt": 1,
        "progress": {"scenarios_total": 1, "scenarios_done": 1, "scenarios_failed": 0, "current_scenario": None},
        "scenario_statuses": {"baseline": "READY"},
        "result": expected_result,
    }
    assert response["Content-Type"] == "application/json"
    assert response["Location"] == f"/rebalance/operations/{payload['operation_id']}"
    assert response["X-Correlation-Id"] == "orch-1"
    assert "Retry-After" not in response
    assert "Idempotent-Replayed" not in response


def test_inline_expiry_counts_from_the_finish(client):
    with override_settings(DPM_ASYNC_OPERATIONS_TTL_SECONDS=60):
        payload = parse(submit(client))
    operation = Operation.objects.get(pk=payload["operation_id"])
    assert operation.expires_at == operation.finished_at + timedelta(seconds=60)
    assert payload["expires_at"] == operation.expires_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY", DPM_ASYNC_OPERATIONS_TTL_SECONDS=120)
def test_accept_only_stores_pending_and_answers_at_once(client, monkeypatch):
    ran = []
    monkeypatch.setattr(execution, "rebalance_analyze_batch", lambda *a, **k: ran.append(1))
    response = submit(client, **{"X-Correlation-Id": "orch-2"})
    assert response.status_code == 202
    payload = parse(response)
    assert normalised(payload) == pending_resource("orch-2")
    assert response["Location"] == f"/rebalance/operations/{payload['operation_id']}"
    assert response["Retry-After"] == "1"
    assert response["X-Correlation-Id"] == "orch-2"
    assert ran == []
    operation = Operation.objects.get(pk=payload["operation_id"])
    assert operation.expires_at == operation.created_at + timedelta(seconds=120)


@override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER")
def test_worker_mode_stores_pending_and_hands_it_to_the_enqueue_seam_on_commit(
    client, monkeypatch, django_capture_on_commit_callbacks
):
    enqueued = []
    monkeypatch.setattr(submission, "operation_enqueue", enqueued.append)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = submit(client, **{"X-Correlation-Id": "orch-3"})
    assert enqueued == []  # not before the row is committed
    for callback in callbacks:
        callback()
    assert response.status_code == 202
    payload = parse(response)
    assert normalised(payload) == pending_resource("orch-3")
    assert response["Retry-After"] == "1"
    assert enqueued == [payload["operation_id"]]


@pytest.mark.parametrize("raw, expected", [
    ("accept_only", "ACCEPT_ONLY"), (" Worker ", "WORKER"), ("inline", "INLINE"), ("bogus", "INLINE"),
])
def test_execution_mode_is_trimmed_and_case_insensitive(raw, expected):
    with override_settings(DPM_ASYNC_EXECUTION_MODE=raw):
        assert config.execution_mode() == expected


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_accept_then_poll_then_execute_then_poll(client):
    payload = parse(submit(client, **{"X-Correlation-Id": "poll-1"}))
    polled = client.get(payload["status_url"])
    assert polled.status_code == 200 and polled["Retry-After"] == "1"
    assert parse(polled) == payload
    executed = client.post(payload["execute_url"])
    assert executed.status_code == 200
    finished = client.get(payload["status_url"])
    assert finished.status_code == 200
    assert "Retry-After" not in finished
    assert parse(finished) == parse(executed)
    assert parse(finished)["status"] == "SUCCEEDED"


def test_generated_correlation_id_becomes_the_operations(client):
    response = submit(client)
    payload = parse(response)
    assert re.fullmatch(r"corr_[0-9a-f]{32}", payload["correlation_id"])
    assert response["X-Correlation-Id"] == payload["correlation_id"]
    assert payload["result"]["results"]["baseline"]["correlation_id"] == f"{payload['correlation_id']}:baseline"


def test_result_is_what_the_synchronous_endpoint_returns(client):
    body = batch_body(
        baseline={"options": {}},
        capped={"options": {"single_position_max_weight": "0.4"}},
        bad={"options": {"max_turnover_pct": "1.5"}},
    )
    expected = sync_result(client, body, "same-1")
    payload = parse(submit(client, body, **{"X-Correlation-Id": "same-1"}))
    assert result_normalised(payload["result"]) == expected


def test_stored_result_is_served_byte_for_byte(client):
    payload = parse(submit(client, **{"X-Correlation-Id": "bytes-1"}))
    stored = stored_full_result(payload["operation_id"])
    served = client.get(payload["status_url"]).content
    assert b',"result":' + stored + b',"error":null}' in served


def test_a_failed_scenario_does_not_fail_the_operation(client):
    body = batch_body(ok={"options": {}}, bad={"options": {"max_turnover_pct": "1.5"}})
    payload = parse(submit(client, body))
    assert payload["status"] == "SUCCEEDED" and payload["error"] is None
    assert payload["result"]["failed_scenarios"] == {
        "bad": "INVALID_OPTIONS: Value error, max_turnover_pct must be between 0 and 1 inclusive",
    }
    assert payload["result"]["warnings"] == ["PARTIAL_BATCH_FAILURE"]
    assert list(payload["result"]["results"]) == ["ok"]


def test_a_batch_that_cannot_run_fails_with_a_safe_engine_error(client, monkeypatch, caplog):
    def explode(*args, **kwargs):
        raise ValueError("secret internals /etc/passwd")

    monkeypatch.setattr(execution, "rebalance_analyze_batch", explode)
    response = submit(client, **{"X-Correlation-Id": "boom-1"})
    assert response.status_code == 202
    payload = parse(response)
    assert normalised(payload) == {
        **pending_resource("boom-1", executable=False),
        "status": "FAILED",
        "started_at": "<instant>",
        "finished_at": "<instant>",
        "attempt": 1,
        "error": {
            "code": "ENGINE_ERROR",
            "message": "The batch could not be run because of an internal error; the service log has "
                       "the details under correlation id boom-1.",
            "details": {},
        },
    }
    assert "secret" not in response.content.decode()
    assert "secret internals" in caplog.text  # the log keeps the detail


def test_identical_resubmission_replays_the_operation(client):
    first = submit(client, **{"X-Correlation-Id": "replay-1"})
    again = submit(client, **{"X-Correlation-Id": "replay-1"})
    assert first.status_code == 202
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again["Location"] == first["Location"]
    assert again["X-Correlation-Id"] == "replay-1"
    assert parse(again) == parse(first)
    assert Operation.objects.count() == 1


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_replay_of_a_pending_operation_says_retry_after(client):
    first = parse(submit(client, **{"X-Correlation-Id": "replay-2"}))
    again = submit(client, **{"X-Correlation-Id": "replay-2"})
    assert again.status_code == 200
    assert again["Retry-After"] == "1" and again["Idempotent-Replayed"] == "true"
    assert parse(again) == first


def test_a_body_that_validates_to_the_same_request_replays(client):
    body = batch_body()
    first = parse(submit(client, body, **{"X-Correlation-Id": "replay-3"}))
    reordered = dict(reversed(list(body.items())))
    again = submit(client, reordered, **{"X-Correlation-Id": "replay-3"})
    assert again.status_code == 200
    assert parse(again)["operation_id"] == first["operation_id"]


def test_same_correlation_id_with_another_body_is_a_conflict(client):
    first = parse(submit(client, **{"X-Correlation-Id": "conflict-1"}))
    other = batch_body(other={"options": {}})
    response = submit(client, other, **{"X-Correlation-Id": "conflict-1"})
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert parse(response) == {
        "type": "https://dpm-async.dev/problems/dpm-async-operation-correlation-conflict",
        "title": "Conflict",
        "status": 409,
        "detail": f"Correlation id 'conflict-1' already belongs to operation {first['operation_id']}, "
                  "submitted with a different request body.",
        "code": "DPM_ASYNC_OPERATION_CORRELATION_CONFLICT",
        "correlation_id": "conflict-1",
        "operation_id": first["operation_id"],
        "status_url": first["status_url"],
    }
    assert Operation.objects.count() == 1


def test_an_expired_operation_does_not_block_its_correlation_id(client):
    old = operation_row(correlation_id="reuse-1", created_at=timezone.now() - timedelta(days=2))
    response = submit(client, batch_body(other={"options": {}}), **{"X-Correlation-Id": "reuse-1"})
    assert response.status_code == 202
    payload = parse(response)
    assert payload["operation_id"] != old.id
    assert list(Operation.objects.values_list("id", flat=True)) == [payload["operation_id"]]


def test_an_invalid_body_is_a_400_and_stores_nothing(client):
    body = batch_body()
    del body["model_portfolio"]
    response = submit(client, body, **{"X-Correlation-Id": "bad-1"})
    assert response.status_code == 400
    assert parse(response) == {
        "type": "https://dpm-async.dev/problems/validation-error",
        "title": "Bad Request",
        "status": 400,
        "detail": "The request body is invalid.",
        "code": "VALIDATION_ERROR",
        "correlation_id": "bad-1",
        "errors": [{"field": "model_portfolio", "message": "is required"}],
    }
    assert Operation.objects.count() == 0


def test_malformed_json_is_a_400(client):
    response = client.post("/rebalance/analyze/async", data=b"{", content_type="application/json")
    assert response.status_code == 400
    assert parse(response)["code"] == "MALFORMED_JSON"


def test_more_than_twenty_scenarios_is_a_400(client):
    body = batch_body(**{f"s{i:02d}": {"options": {}} for i in range(21)})
    response = submit(client, body)
    assert response.status_code == 400
    assert parse(response)["errors"] == [{"field": "scenarios", "message": "scenario count exceeds maximum of 20"}]


def test_the_stored_request_is_the_canonical_validated_request(client):
    body = batch_body()
    payload = parse(submit(client, body))
    stored = Operation.objects.get(pk=payload["operation_id"])
    batch = batch_request_parse(body)
    assert stored.request == request_canonical(batch).json
    assert stored.request_fingerprint == request_canonical(batch).fingerprint


def test_get_on_the_submit_path_is_405(client):
    response = client.get("/rebalance/analyze/async")
    assert response.status_code == 405
    assert parse(response)["code"] == "METHOD_NOT_ALLOWED"
