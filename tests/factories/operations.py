"""Users and tokens, stored operations, and the expected operation resource, shared by every test folder."""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from dpm_async.encoding import IDENTITY, body_encode, frame_text, zstd_compress
from dpm_async.models import ApiToken
from dpm_async.tokens import api_token_digest
from operations.models import (
    Operation,
    OperationScenarioResult,
    OperationStatus,
    OperationType,
    operation_id_generate,
)
from operations.results import operation_result_pieces
from operations.submission import operation_submit
from rebalance.canonical import request_canonical
from rebalance.parsing import batch_request_parse
from rebalance.services import batch_result_pieces, rebalance_analyze_batch
from tests.factories.bodies import batch_body

ASYNC_URL = "/rebalance/analyze/async"
LIST_URL = "/rebalance/operations"

OPERATION_ID_RE = re.compile(r"dop_[0-9a-f]{32}")
INSTANT_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")


# The user the `client` fixture (tests/conftest.py) authenticates as, and the default owner of the
# rows `operation_row` stores: so a test that stores a row and reads it back sees it.
API_USERNAME = "api-user"


def api_user(username: str = API_USERNAME, **fields: Any) -> Any:
    """The user `username`, created on first use (without a password: it calls with a token)."""
    user, _ = get_user_model().objects.get_or_create(username=username, defaults=fields)
    return user


def api_token(user: Any = None) -> str:
    """An API key of `user` (default: the `client` fixture's user), stored on first use.

    The key is derived from the user name, so every call (and every test) gets the same one back
    although only its digest is stored.
    """
    user = user or api_user()
    key = f"dpm_test00000000_{user.get_username()}-not-a-secret"
    ApiToken.objects.get_or_create(digest=api_token_digest(key), defaults={
        "user": user, "name": "tests", "prefix": "dpm_test00000000", "created_at": timezone.now(),
        # Used just now: a request does not rewrite it (tests count a request's queries).
        "last_used_at": timezone.now()})
    return key


def api_headers(user: Any = None) -> dict[str, str]:
    """`Authorization: Token …` headers of `user` (default: the `client` fixture's user)."""
    return {"Authorization": f"Token {api_token(user)}"}


_DEFAULT_OWNER: Any = object()


def submit(client: Any, body: Any = None, **headers: str) -> Any:
    data = json.dumps(batch_body() if body is None else body)
    return client.post(ASYNC_URL, data=data, content_type="application/json", headers=headers)


def parse(response: Any) -> Any:
    """The answer's JSON (a streamed answer is read to its end)."""
    content = b"".join(response.streaming_content) if getattr(response, "streaming", False) else response.content
    return json.loads(content, parse_float=Decimal)


def operation_row(
    *,
    status: str = OperationStatus.PENDING,
    correlation_id: str | None = None,
    created_at: datetime | None = None,
    ttl: timedelta = timedelta(days=1),
    body: dict[str, Any] | None = None,
    owner: Any = _DEFAULT_OWNER,
    **fields: Any,
) -> Operation:
    """Stores an operation directly (a fixture for tests that need a row in a given state).

    Fills in what the constraints require for `status`: a result when SUCCEEDED (`result`: the
    whole BatchRebalanceResult text, stored in parts as a run stores it; default `stored_result()`),
    an error when FAILED, started/finished/lease timestamps as the status implies. `owner` defaults
    to the `client` fixture's user; None stores an anonymous (DPM_API_AUTH_REQUIRED=false) operation.
    """
    now = created_at or timezone.now()
    batch = batch_request_parse(body or batch_body())
    result = fields.pop("result", None)
    canonical = request_canonical(batch)
    values: dict[str, Any] = {
        "id": operation_id_generate(),
        "operation_type": OperationType.ANALYZE_SCENARIOS,
        "status": status,
        "owner": api_user() if owner is _DEFAULT_OWNER else owner,
        "correlation_id": correlation_id or f"corr-{operation_id_generate()[4:]}",
        "request": canonical.json,
        "request_fingerprint": canonical.fingerprint,
        "scenarios_total": len(batch.scenarios),
        "created_at": now,
        "expires_at": now + ttl,
    }
    if status in (OperationStatus.RUNNING, OperationStatus.SUCCEEDED):
        values.update(started_at=now, attempt=1)
    if status == OperationStatus.RUNNING:
        values.update(lease_expires_at=now + timedelta(minutes=5))
    if status in (OperationStatus.SUCCEEDED, OperationStatus.FAILED):
        values.update(finished_at=now)
    rows: list[OperationScenarioResult] = []
    if status == OperationStatus.SUCCEEDED:
        envelope, statuses, failed, rows = result_parts(result or stored_result())
        values.update(result_envelope=envelope, scenarios_total=len(statuses), scenarios_done=len(statuses),
                      scenarios_failed=failed, scenario_statuses=statuses)
    if status == OperationStatus.FAILED:
        values.update(error={"code": "ENGINE_ERROR", "message": "stored failure", "details": {}})
    values.update(fields)
    operation = Operation.objects.create(**values)
    for row in rows:
        row.operation = operation
    OperationScenarioResult.objects.bulk_create(rows)
    return operation


def result_parts(text: bytes | str) -> tuple[bytes, dict[str, str], int, list[OperationScenarioResult]]:
    """A whole BatchRebalanceResult text in its stored parts: the envelope, the statuses, the count
    of failed scenarios, and one unsaved row per scenario (the scenario's text, re-encoded compactly)."""
    document = orjson.loads(text)
    results = document.pop("results")
    rows = []
    for position, (name, value) in enumerate(results.items()):
        body = orjson.dumps(value)
        rows.append(OperationScenarioResult(position=position, name=name, status=value["status"],
                                            size=len(body), body=zstd_compress(body)))
    head = {key: document[key] for key in ("batch_run_id", "run_at_utc", "base_snapshot_ids")}
    tail = {key: document[key] for key in ("comparison_metrics", "failed_scenarios", "warnings")}
    envelope = orjson.dumps(head)[:-1] + b"," + orjson.dumps(tail)[1:]
    statuses = {name: value["status"] for name, value in results.items()}
    statuses.update({name: "FAILED" for name in document["failed_scenarios"]})
    return envelope, dict(sorted(statuses.items())), len(document["failed_scenarios"]), rows


def stored_outcome(**scenarios: dict[str, Any]) -> Any:
    """A real BatchOutcome (of `batch_body(**scenarios)`) as a run hands it to `operation_complete`:
    each scenario's text a zstd frame."""
    batch = batch_request_parse(batch_body(**scenarios))
    return rebalance_analyze_batch(batch, correlation_id="stored", keep=zstd_compress)


def rebuilt_json(outcome: Any) -> bytes:
    """The whole BatchRebalanceResult text of an outcome whose scenario texts are zstd frames."""
    scenarios = ((s.name, frame_text(s.body)) for s in outcome.scenarios)
    return b"".join(batch_result_pieces(outcome.head(), scenarios, outcome.tail()))


def stored_full_result(operation_id: str) -> bytes:
    """The whole stored result of an operation, rebuilt from its parts as the API serves it."""
    operation = Operation.objects.get(pk=operation_id)
    return b"".join(body_encode(operation_result_pieces(operation), IDENTITY).chunks)


@functools.cache
def stored_result() -> bytes:
    """A real BatchRebalanceResult (of `batch_body()`), as a finished operation stores it."""
    return rebalance_analyze_batch(batch_request_parse(batch_body()), correlation_id="stored").json()


def normalised(body: dict[str, Any]) -> dict[str, Any]:
    """The resource with its generated values replaced by placeholders, after checking their format.

    Ids become `<id>`, timestamps `<instant>`, and the ids inside a batch result (run ids, batch
    ids, their derived ids) `<run>`, so whole bodies can be compared.
    """
    out = dict(body)
    assert OPERATION_ID_RE.fullmatch(out["operation_id"]), out["operation_id"]
    operation_id = out["operation_id"]
    out["operation_id"] = "<id>"
    for key in ("created_at", "started_at", "finished_at", "expires_at"):
        if key in out and out[key] is not None:
            assert INSTANT_RE.fullmatch(out[key]), out[key]
            out[key] = "<instant>"
    for key in ("status_url", "execute_url"):
        if key in out:
            out[key] = out[key].replace(operation_id, "<id>")
    if out.get("result") is not None:
        out["result"] = result_normalised(out["result"])
    return out


_RUN_ID_RE = re.compile(r"(rr_[0-9a-f]{8}|batch_[0-9a-f]{8})")


def result_normalised(result: dict[str, Any]) -> dict[str, Any]:
    """A BatchRebalanceResult without its random run ids and its run time."""
    text = _RUN_ID_RE.sub("<run>", json.dumps(result, default=str))
    out = json.loads(text)
    out["run_at_utc"] = "<instant>"
    return out


def instant(value: datetime) -> str:
    """An API timestamp: ISO 8601 in UTC with microseconds and `Z`."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # stored in UTC (USE_TZ)


def operation_resource(operation: Operation, **overrides: Any) -> dict[str, Any]:
    """The operation resource of api.md section 2 that the API should answer for `operation`."""
    body: dict[str, Any] = {
        "operation_id": operation.id,
        "operation_type": "ANALYZE_SCENARIOS",
        "status": operation.status,
        "is_executable": operation.status == OperationStatus.PENDING,
        "correlation_id": operation.correlation_id,
        "created_at": instant(operation.created_at),
        "started_at": operation.started_at and instant(operation.started_at),
        "finished_at": operation.finished_at and instant(operation.finished_at),
        "expires_at": instant(operation.expires_at),
        "attempt": operation.attempt,
        "cancel_requested": operation.cancel_requested,
        "progress": {
            "scenarios_total": operation.scenarios_total,
            "scenarios_done": operation.scenarios_done,
            "scenarios_failed": operation.scenarios_failed,
            "current_scenario": operation.current_scenario,
        },
        "scenario_statuses": dict(sorted(operation.scenario_statuses.items())),
        "status_url": f"/rebalance/operations/{operation.id}",
        "execute_url": f"/rebalance/operations/{operation.id}/execute",
        "result": None,
        "error": None,
    }
    body.update(overrides)
    return body


def operation_list_item(operation: Operation) -> dict[str, Any]:
    """A list item: the resource without `result` and `error`."""
    item = operation_resource(operation)
    del item["result"], item["error"]
    return item



def submitted(body: dict[str, Any], *, correlation_id: str, owner: Any = _DEFAULT_OWNER,
              mode: str = "INLINE") -> Operation:
    """An operation submitted through the real service (`operation_submit`) in `mode`: INLINE runs
    it to its end, ACCEPT_ONLY leaves it PENDING."""
    user = api_user() if owner is _DEFAULT_OWNER else owner
    with override_settings(DPM_ASYNC_EXECUTION_MODE=mode):
        submission = operation_submit(batch_request_parse(body), correlation_id=correlation_id,
                                      owner_id=user.pk if user else None)
    return Operation.objects.get(pk=submission.operation.id)
