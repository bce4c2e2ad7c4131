"""The operation resource on the wire (spec/api.md section 2): its one declaration, and its encoders.

The resource is encoded straight to bytes with orjson. A finished operation's result is spliced
in from its stored parts (operations/results.py) - never decoded and re-encoded - so its key order
and number text are the engine's own, and it is produced piece by piece as it is sent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict, cast

import orjson

from dpm_async.encoding import Piece
from dpm_async.shapes import Meta
from operations.errors import OperationFailureCode
from operations.links import operation_urls
from operations.models import OPERATION_ID_PATTERN, Operation, OperationStatus, OperationType
from operations.results import operation_result_pieces
from rebalance.batch import BatchRebalanceResult, BatchRebalanceSummary, ScenarioStatus
from rebalance.engine.shapes import ScenarioName

_EXAMPLE_ID = "dop_6f1c0a9e2b7d4c3f8a5e1d0c9b8a7f6e"

Instant = Annotated[str, Meta(format="date-time", example="2026-02-20T12:00:00.123456Z")]


class OperationError(TypedDict):
    """Why an operation FAILED: a stable code (docs/operations.md) and a message for people."""

    code: OperationFailureCode
    message: str
    details: Annotated[
        dict[str, Any],
        Meta(description="Code-specific facts, e.g. `errors` for INVALID_STORED_REQUEST, `cancelled_while` for "
             "OPERATION_CANCELLED."),
    ]


class OperationProgress(TypedDict):
    """How far the current (or last) run got; written before each scenario starts."""

    scenarios_total: Annotated[int, Meta(description="Scenarios in the batch.", ge=0)]
    scenarios_done: Annotated[
        int, Meta(description="Scenarios finished so far, failed ones included; all of them once SUCCEEDED.", ge=0)
    ]
    scenarios_failed: Annotated[int, Meta(description="Of those, the ones that failed (`failed_scenarios`).", ge=0)]
    current_scenario: Annotated[
        ScenarioName | None, Meta(description="The scenario running now; null unless RUNNING.")
    ]


class OperationSummary(TypedDict):
    """An operation without its result and error (list items)."""

    operation_id: Annotated[str, Meta(pattern=OPERATION_ID_PATTERN.pattern, example=_EXAMPLE_ID)]
    operation_type: OperationType
    status: OperationStatus
    is_executable: Annotated[bool, Meta(description="PENDING, and `.../execute` is enabled on this service.")]
    correlation_id: str
    created_at: Annotated[Instant, Meta(description="UTC with microseconds, e.g. `2026-02-20T12:00:00.123456Z`.")]
    started_at: Annotated[Instant | None, Meta(description="When the current (or last) execution started.")]
    finished_at: Instant | None
    expires_at: Annotated[Instant, Meta(description="After this instant the operation is gone (404).")]
    attempt: Annotated[int, Meta(description="How many executions have started.", ge=0)]
    cancel_requested: Annotated[
        bool, Meta(description="A cancel reached this RUNNING operation: it stops before its next scenario and "
                   "ends FAILED `OPERATION_CANCELLED`.")
    ]
    progress: OperationProgress
    scenario_statuses: Annotated[
        dict[ScenarioName, ScenarioStatus],
        Meta(description="Each scenario finished so far (in the order they run: code-point order of the "
             "names): its result's status, or FAILED (then it is in `failed_scenarios`).",
             example={"baseline": "READY", "tax-aware": "BLOCKED"}),
    ]
    status_url: Annotated[str, Meta(example=f"/rebalance/operations/{_EXAMPLE_ID}")]
    execute_url: Annotated[str, Meta(example=f"/rebalance/operations/{_EXAMPLE_ID}/execute")]


class OperationResource(OperationSummary):
    """The operation resource; `result` once SUCCEEDED, `error` once FAILED."""

    result: Annotated[
        BatchRebalanceResult | None,
        Meta(description="SUCCEEDED only: exactly what `POST /rebalance/analyze` returns for the same body."),
    ]
    error: Annotated[OperationError | None, Meta(description="FAILED only.")]


class OperationOverview(OperationSummary):
    """The operation resource with the result's envelope instead of the result
    (`GET /rebalance/operations/{id}/summary`): a few KB whatever the size of the result."""

    result_summary: Annotated[
        BatchRebalanceSummary | None,
        Meta(description="SUCCEEDED only: the result without `results`, byte for byte as the full result has it."),
    ]
    error: Annotated[OperationError | None, Meta(description="FAILED only.")]


class OperationPage(TypedDict):
    """A page of operations, newest first."""

    items: list[OperationSummary]
    next_cursor: Annotated[str | None, Meta(description="Pass as `cursor` for the next page; null on the last page.")]


def instant_text(value: datetime) -> str:
    """UTC, always with microseconds and `Z`: `2026-02-20T12:00:00.123456Z`."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _optional_instant(value: datetime | None) -> str | None:
    return None if value is None else instant_text(value)


def operation_summary(operation: Operation, *, executable_enabled: bool) -> OperationSummary:
    """A list item: the resource without `result` and `error`."""
    status_url, execute_url = operation_urls(operation.id)
    # Called 200 times for a list page: the stored words are the enums' values (a CHECK constraint
    # holds them), so they are not rebuilt as enum members.
    return {
        "operation_id": operation.id,
        "operation_type": cast(OperationType, operation.operation_type),
        "status": cast(OperationStatus, operation.status),
        "is_executable": operation.status == OperationStatus.PENDING and executable_enabled,
        "correlation_id": operation.correlation_id,
        "created_at": instant_text(operation.created_at),
        "started_at": _optional_instant(operation.started_at),
        "finished_at": _optional_instant(operation.finished_at),
        "expires_at": instant_text(operation.expires_at),
        "attempt": operation.attempt,
        "cancel_requested": operation.cancel_requested,
        "progress": {
            "scenarios_total": operation.scenarios_total,
            "scenarios_done": operation.scenarios_done,
            "scenarios_failed": operation.scenarios_failed,
            "current_scenario": operation.current_scenario,
        },
        # jsonb keeps keys in its own order: put them back in run order.
        "scenario_statuses": dict(sorted((operation.scenario_statuses or {}).items())),
        "status_url": status_url,
        "execute_url": execute_url,
    }


def operation_resource_pieces(operation: Operation, *, executable_enabled: bool) -> Iterator[Piece]:
    """The whole resource (`OperationResource`) as pieces: its fields, then the result rebuilt from
    its stored parts (each scenario a stored zstd frame, fetched when its turn comes), then `error`."""
    head = orjson.dumps(operation_summary(operation, executable_enabled=executable_enabled))
    yield head[:-1] + b',"result":'
    if operation.status == OperationStatus.SUCCEEDED:
        yield from operation_result_pieces(operation)
    else:
        yield b"null"
    yield b',"error":' + orjson.dumps(operation.error) + b"}"


def operation_overview_json(operation: Operation, *, executable_enabled: bool) -> bytes:
    """`OperationOverview`: the resource with the stored envelope text in place of the result."""
    head = orjson.dumps(operation_summary(operation, executable_enabled=executable_enabled))
    envelope = b"null" if operation.result_envelope is None else operation.result_envelope
    return b"".join((head[:-1], b',"result_summary":', envelope, b',"error":', orjson.dumps(operation.error), b"}"))


def operation_etag(operation: Operation, *, executable_enabled: bool) -> str:
    """A weak validator of the operation's state: it changes whenever any field of the resource does.

    Computed from the row's small fields alone (the summary and the error), never from the result:
    a result is written once, with the SUCCEEDED transition, so `status`, `attempt` and
    `finished_at` pin it. Weak (`W/`), because the same state is sent in several codings."""
    state = orjson.dumps(operation_summary(operation, executable_enabled=executable_enabled)) + orjson.dumps(
        operation.error
    )
    return 'W/"' + hashlib.blake2b(state, digest_size=16).hexdigest() + '"'


def scenario_result_etag(operation: Operation, scenario_name: str) -> str:
    """A weak validator of one scenario's stored result: fixed once the operation SUCCEEDED."""
    finished = instant_text(operation.finished_at) if operation.finished_at else ""
    state = f"{operation.id}\n{operation.attempt}\n{finished}\n{scenario_name}".encode()
    return 'W/"' + hashlib.blake2b(state, digest_size=16).hexdigest() + '"'


# Bounds of `Retry-After` while an operation is unfinished.
RETRY_AFTER_MIN_SECONDS = 1
RETRY_AFTER_MAX_SECONDS = 30


def retry_after_seconds(operation: Operation, now: datetime) -> int | None:
    """When to poll an unfinished operation again, from its progress; None once it finished.

    RUNNING with scenarios done: the time per finished scenario so far times the scenarios left.
    RUNNING before its first scenario finished: as long as it has run (the first scenario takes at
    least that long). PENDING: the minimum. Always between 1 and 30 seconds, rounded up.
    """
    if operation.is_terminal:
        return None
    estimate = 0.0
    if operation.status == OperationStatus.RUNNING and operation.started_at is not None:
        elapsed = max((now - operation.started_at).total_seconds(), 0.0)
        done = operation.scenarios_done
        left = max(operation.scenarios_total - done, 1)
        estimate = elapsed / done * left if done else elapsed
    return min(max(math.ceil(estimate), RETRY_AFTER_MIN_SECONDS), RETRY_AFTER_MAX_SECONDS)
