"""Watching and fetching an operation (docs/operations.md): progress, the summary, one scenario's
result, ETags and 304s, Retry-After, content codings, and the streamed full result."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import orjson
import pytest
from django.test import override_settings
from django.utils import timezone

from dpm_async.correlation import correlation_id_current
from operations import results, services, views
from operations.models import Operation, OperationStatus
from operations.resource import retry_after_seconds
from rebalance.services import BatchProgress
from tests.contract import contract, decoded
from tests.factories.bodies import batch_body, big_batch, lots_batch_body
from tests.factories.operations import (
    ASYNC_URL,
    api_user,
    operation_resource,
    operation_row,
    parse,
    stored_full_result,
)

pytestmark = pytest.mark.django_db

# What differs between two runs of one batch: the run ids (and the ids derived from them) and the time.
_RUN_IDS = re.compile(rb"(rr_[0-9a-f]{8}|batch_[0-9a-f]{8})")
_RUN_AT = re.compile(rb'"run_at_utc":"[^"]*"')


def ids_aside(text: bytes) -> bytes:
    return _RUN_AT.sub(b'"run_at_utc":"<t>"', _RUN_IDS.sub(b"<run>", text))


def body(response) -> bytes:
    """The answer's bytes without their coding, streamed or not."""
    raw = b"".join(response.streaming_content) if response.streaming else response.content
    return decoded(response.get("Content-Encoding"), raw)


def finished(client, request_body=None, correlation_id="res-1") -> dict:
    with override_settings(DPM_ASYNC_EXECUTION_MODE="INLINE"):
        response = client.post(ASYNC_URL, data=json.dumps(request_body or lots_batch_body()),
                               content_type="application/json", headers={"X-Correlation-Id": correlation_id})
    assert response.status_code == 202
    resource = parse(response)
    assert resource["status"] == "SUCCEEDED"
    return resource


def synchronous(client, request_body=None, correlation_id="res-1") -> bytes:
    response = client.post("/rebalance/analyze", data=json.dumps(request_body or lots_batch_body()),
                           content_type="application/json", headers={"X-Correlation-Id": correlation_id})
    assert response.status_code == 200
    return response.content


# --- the summary, one scenario, the full result: the synchronous endpoint's bytes ----------------

def test_full_result_summary_and_each_scenario_are_the_synchronous_answer_byte_for_byte(client):
    expected = ids_aside(synchronous(client))
    resource = finished(client)
    full = body(client.get(resource["status_url"]))
    # The result is spliced in as text: cut it out of the resource by its known neighbours.
    result = full[full.index(b',"result":') + len(b',"result":'):full.rindex(b',"error":null}')]
    assert ids_aside(result) == expected

    document = orjson.loads(expected)
    summary = client.get(f"{resource['status_url']}/summary")
    assert summary.status_code == 200
    summary_bytes = body(summary)
    envelope = summary_bytes[summary_bytes.index(b',"result_summary":') + 18:summary_bytes.rindex(b',"error":null}')]
    without_results = {key: value for key, value in document.items() if key != "results"}
    assert ids_aside(envelope) == ids_aside(orjson.dumps(without_results))
    for name, scenario in document["results"].items():
        answer = client.get(f"{resource['status_url']}/results/{name}")
        assert answer.status_code == 200
        assert ids_aside(body(answer)) == ids_aside(orjson.dumps(scenario))  # orjson: the engine's own encoder
        assert ids_aside(body(answer)) in expected


def test_the_summary_is_the_resource_with_the_envelope_and_reads_no_result(client, django_assert_num_queries):
    body_ = batch_body(ok={"options": {}}, bad={"options": {"max_turnover_pct": "1.5"}})
    resource = finished(client, body_)
    with django_assert_num_queries(2):  # the token, the operation: no scenario result row
        response = client.get(f"{resource['status_url']}/summary")
    operation = Operation.objects.get(pk=resource["operation_id"])
    summary = parse(response)
    result = resource["result"]
    expected = operation_resource(operation)
    del expected["result"]
    expected["result_summary"] = {key: value for key, value in result.items() if key != "results"}
    assert summary == expected
    assert expected["progress"] == {"scenarios_total": 2, "scenarios_done": 2, "scenarios_failed": 1,
                                    "current_scenario": None}
    assert summary["result_summary"]["failed_scenarios"] == {
        "bad": "INVALID_OPTIONS: Value error, max_turnover_pct must be between 0 and 1 inclusive"
    }
    assert summary["result_summary"]["warnings"] == ["PARTIAL_BATCH_FAILURE"]
    assert summary["scenario_statuses"] == {"bad": "FAILED", "ok": result["comparison_metrics"]["ok"]["status"]}
    assert summary["error"] is None


def test_summary_of_an_unfinished_or_failed_operation_has_no_envelope(client):
    for status in (OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.FAILED):
        operation = operation_row(status=status)
        summary = parse(client.get(f"/rebalance/operations/{operation.id}/summary"))
        assert summary["result_summary"] is None
        assert summary["progress"]["scenarios_total"] == 1


def test_one_scenario_reads_one_row(client, django_assert_num_queries):
    resource = finished(client)
    with django_assert_num_queries(3):  # the token, the operation, that scenario's row
        response = client.get(f"{resource['status_url']}/results/with-cap")
    assert json.loads(body(response), parse_float=Decimal) == resource["result"]["results"]["with-cap"]


def test_an_unknown_scenario_is_a_404_problem(client):
    resource = finished(client)
    response = client.get(f"{resource['status_url']}/results/nope", headers={"X-Correlation-Id": "sc-1"})
    assert response.status_code == 404
    assert parse(response) == {
        "type": "https://dpm-async.dev/problems/dpm-async-scenario-result-not-found",
        "title": "Not Found",
        "status": 404,
        "detail": f"Operation {resource['operation_id']} has no scenario named 'nope'.",
        "code": "DPM_ASYNC_SCENARIO_RESULT_NOT_FOUND",
        "correlation_id": "sc-1",
        "operation_id": resource["operation_id"],
        "scenario_name": "nope",
    }
    # Not even a scenario name: not echoed back.
    response = client.get(f"{resource['status_url']}/results/NOT%20A%20NAME")
    assert (response.status_code, "scenario_name" in parse(response)) == (404, False)


def test_a_failed_scenario_is_a_404_that_says_why(client):
    resource = finished(client, batch_body(ok={"options": {}}, bad={"options": {"max_turnover_pct": "1.5"}}))
    response = client.get(f"{resource['status_url']}/results/bad")
    assert response.status_code == 404
    assert parse(response)["detail"] == (
        f"Scenario 'bad' of operation {resource['operation_id']} failed and has no result: INVALID_OPTIONS: "
        "Value error, max_turnover_pct must be between 0 and 1 inclusive"
    )


@pytest.mark.parametrize("status", [OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.FAILED])
def test_a_scenario_of_an_operation_that_has_not_succeeded_is_a_409(client, status):
    operation = operation_row(status=status)
    response = client.get(f"/rebalance/operations/{operation.id}/results/baseline")
    assert response.status_code == 409
    problem = parse(response)
    assert (problem["code"], problem["operation_status"]) == ("DPM_ASYNC_OPERATION_RESULT_NOT_READY", status)


def test_another_owner_s_operation_has_no_summary_nor_results(client):
    other = operation_row(status=OperationStatus.SUCCEEDED, owner=api_user("someone-else"))
    assert client.get(f"/rebalance/operations/{other.id}/summary").status_code == 404
    assert client.get(f"/rebalance/operations/{other.id}/results/baseline").status_code == 404


# --- progress ----------------------------------------------------------------------------------

def test_progress_and_statuses_are_in_every_resource_and_list_item(client):
    operation = operation_row(body=batch_body(a={"options": {}}, b={"options": {}}, c={"options": {}}))
    attempt = services.operation_claim(operation)
    assert services.operation_lease_renew(operation.id, attempt, unless_cancelled=True,
                                          progress=BatchProgress(3, "c", {"a": "READY", "b": "FAILED"}))
    expected_progress = {"scenarios_total": 3, "scenarios_done": 2, "scenarios_failed": 1, "current_scenario": "c"}
    resource = parse(client.get(f"/rebalance/operations/{operation.id}"))
    assert (resource["status"], resource["progress"]) == ("RUNNING", expected_progress)
    assert resource["scenario_statuses"] == {"a": "READY", "b": "FAILED"}
    [item] = parse(client.get("/rebalance/operations"))["items"]
    assert (item["progress"], item["scenario_statuses"]) == (expected_progress, {"a": "READY", "b": "FAILED"})


def test_a_cancel_of_a_running_operation_says_so_at_once(client):
    operation = operation_row(status=OperationStatus.RUNNING)
    response = client.post(f"/rebalance/operations/{operation.id}/cancel")
    resource = parse(response)
    assert (resource["status"], resource["cancel_requested"]) == ("RUNNING", True)
    assert parse(client.get(f"/rebalance/operations/{operation.id}"))["cancel_requested"] is True


def test_statuses_are_listed_in_run_order_whatever_order_the_database_keeps(client):
    names = {"b": "READY", "a-1": "BLOCKED", "a": "PENDING_REVIEW", "_x": "READY", "0": "FAILED"}
    operation = operation_row(status=OperationStatus.RUNNING, scenario_statuses=names)
    resource = client.get(f"/rebalance/operations/{operation.id}").content
    assert b'"scenario_statuses":{"0":"FAILED","_x":"READY","a":"PENDING_REVIEW","a-1":"BLOCKED","b":"READY"}' \
        in resource


# --- ETag, 304, Retry-After ----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["", "/summary", "/results/baseline", "by-correlation"])
def test_if_none_match_with_the_current_etag_is_a_304_without_a_body(client, suffix):
    operation = operation_row(status=OperationStatus.SUCCEEDED, correlation_id="etag-1")
    url = ("/rebalance/operations/by-correlation/etag-1" if suffix == "by-correlation"
           else f"/rebalance/operations/{operation.id}{suffix}")
    first = client.get(url)
    etag = first["ETag"]
    assert re.fullmatch(r'W/"[0-9a-f]{32}"', etag)
    again = client.get(url, headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again["ETag"], again["Vary"]) == (304, b"", etag, "Accept-Encoding")
    assert "Content-Type" not in again
    assert client.get(url, headers={"If-None-Match": f'"other", {etag}'}).status_code == 304
    assert client.get(url, headers={"If-None-Match": etag[2:]}).status_code == 304  # weak comparison
    assert client.get(url, headers={"If-None-Match": "*"}).status_code == 304
    assert client.get(url, headers={"If-None-Match": 'W/"stale"'}).status_code == 200


def test_the_etag_changes_as_the_run_advances_and_304s_stop(client):
    operation = operation_row(body=batch_body(a={"options": {}}, b={"options": {}}))
    url = f"/rebalance/operations/{operation.id}"
    pending = client.get(url)["ETag"]
    attempt = services.operation_claim(operation)
    running = client.get(url, headers={"If-None-Match": pending})
    assert running.status_code == 200 and running["ETag"] != pending
    assert services.operation_lease_renew(operation.id, attempt, unless_cancelled=True,
                                          progress=BatchProgress(2, "b", {"a": "READY"}))
    advanced = client.get(url, headers={"If-None-Match": running["ETag"]})
    assert advanced.status_code == 200 and parse(advanced)["progress"]["scenarios_done"] == 1


def test_retry_after_comes_from_the_progress_and_stays_between_1_and_30_seconds():
    now = timezone.now()

    def running(elapsed: float, done: int, total: int = 20) -> Operation:
        return Operation(status=OperationStatus.RUNNING, started_at=now - timedelta(seconds=elapsed),
                         scenarios_done=done, scenarios_total=total)

    assert retry_after_seconds(running(10, 5), now) == 30  # 2 s a scenario, 15 left: capped
    assert retry_after_seconds(running(10, 10), now) == 10  # 1 s a scenario, 10 left
    assert retry_after_seconds(running(3, 15), now) == 1  # 0.2 s x 5 = 1
    assert retry_after_seconds(running(0.5, 19), now) == 1  # rounded up to the minimum
    assert retry_after_seconds(running(4.2, 0), now) == 5  # none done yet: as long again as so far
    assert retry_after_seconds(running(100, 0), now) == 30
    assert retry_after_seconds(Operation(status=OperationStatus.PENDING, scenarios_total=20), now) == 1
    assert retry_after_seconds(Operation(status=OperationStatus.SUCCEEDED), now) is None


def test_the_answer_carries_the_retry_after_of_its_progress(client, monkeypatch):
    now = timezone.now()
    monkeypatch.setattr(views, "clock", lambda: now)
    started = now - timedelta(seconds=8)
    operation = operation_row(status=OperationStatus.RUNNING, started_at=started, scenarios_done=0,
                              body=batch_body(**{f"s{n}": {"options": {}} for n in range(5)}))
    Operation.objects.filter(pk=operation.id).update(scenarios_done=4, scenario_statuses={
        f"s{n}": "READY" for n in range(4)})
    response = client.get(f"/rebalance/operations/{operation.id}")
    assert response["Retry-After"] == "2"  # 8 s for 4 scenarios, 1 left: 2 s
    assert client.get(f"/rebalance/operations/{operation.id}/summary")["Retry-After"] == "2"


# --- content codings -----------------------------------------------------------------------------

ENCODINGS = {
    None: None,
    "gzip": "gzip",
    "zstd": "zstd",
    "zstd, gzip": "zstd",
    "gzip, zstd;q=0.5": "gzip",
    "gzip;q=0, zstd;q=0": None,
    "br, *;q=0.1": "zstd",
    "identity": None,
    "x-gzip": "gzip",
}


@pytest.mark.parametrize(("accept", "coding"), ENCODINGS.items(), ids=[str(k) for k in ENCODINGS])
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_every_accept_encoding_gets_the_same_bytes(client, monkeypatch, accept, coding, stream):
    if stream:
        monkeypatch.setattr(views, "STREAM_ABOVE_BYTES", 0)
    resource = finished(client)
    headers = {} if accept is None else {"Accept-Encoding": accept}
    for url in (resource["status_url"], f"{resource['status_url']}/summary",
                f"{resource['status_url']}/results/with-cap", "/rebalance/operations/by-correlation/res-1"):
        identity = body(client.get(url))
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        assert response.get("Content-Encoding") == coding
        assert response["Vary"] == "Accept-Encoding"
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        if "Content-Length" in response:
            assert int(response["Content-Length"]) == len(raw)
        assert decoded(coding, raw) == identity, url
        # Streamed answers are not checked by the suite's hook: check them here.
        contract().check("GET", url, 200, response["Content-Type"], decoded(coding, raw))


def test_the_synchronous_answer_is_compressed_as_asked(client):
    identity = synchronous(client)
    for accept, coding in (("zstd, gzip", "zstd"), ("gzip", "gzip"), ("deflate", None)):
        response = client.post("/rebalance/analyze", data=json.dumps(lots_batch_body()),
                               content_type="application/json",
                               headers={"X-Correlation-Id": "res-1", "Accept-Encoding": accept})
        assert response.status_code == 200
        assert (response.get("Content-Encoding"), response["Vary"]) == (coding, "Accept-Encoding")
        assert ids_aside(decoded(coding, response.content)) == ids_aside(identity)


def test_a_zstd_client_gets_the_stored_frames_as_they_are(client, monkeypatch):
    monkeypatch.setattr(views, "STREAM_ABOVE_BYTES", 0)
    resource = finished(client, big_batch(lines=200, scenarios=3), correlation_id="frames-1")
    response = client.get(resource["status_url"], headers={"Accept-Encoding": "zstd"})
    raw = b"".join(response.streaming_content)
    rows = Operation.objects.get(pk=resource["operation_id"]).scenario_results.order_by("position")
    for row in rows:
        assert bytes(row.body) in raw  # not decompressed and compressed again
    assert decoded("zstd", raw).endswith(b',"error":null}')
    assert stored_full_result(resource["operation_id"]) in decoded("zstd", raw)


def test_a_streamed_answer_reads_its_rows_under_the_request_s_correlation_id(client, monkeypatch):
    monkeypatch.setattr(views, "STREAM_ABOVE_BYTES", 0)
    resource = finished(client, batch_body(a={"options": {}}, b={"options": {}}), correlation_id="stream-1")
    seen = []
    real = results._body_of

    def observed(result_id):
        seen.append(correlation_id_current())
        return real(result_id)

    monkeypatch.setattr(results, "_body_of", observed)
    response = client.get(resource["status_url"], headers={"X-Correlation-Id": "poll-9"})
    assert response.streaming and seen == []  # nothing read before the server sends the body
    body(response)
    assert seen == ["poll-9", "poll-9"]  # one row per scenario, each read with the id bound
    assert correlation_id_current() is None


def test_a_row_purged_while_it_is_being_sent_ends_the_answer_short(client, monkeypatch):
    monkeypatch.setattr(views, "STREAM_ABOVE_BYTES", 0)
    resource = finished(client, batch_body(a={"options": {}}, b={"options": {}}), correlation_id="purged-1")
    response = client.get(resource["status_url"])
    chunks = iter(response.streaming_content)
    next(chunks)
    Operation.objects.filter(pk=resource["operation_id"]).delete()
    with pytest.raises(LookupError):
        list(chunks)  # the server closes the connection short of Content-Length: the client sees an error
