"""The operation resource on the wire (spec/api.md section 2): its one declaration, and its encoder.

The resource is encoded straight to bytes with orjson. A finished operation's result is spliced
in as the exact text that was stored - never decoded and re-encoded - so a 70 MB result costs a
copy, not a parse, and its key order and number text are the engine's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, TypedDict

import orjson

from dpm_async.shapes import Meta
from operations.errors import OperationFailureCode
from operations.links import operation_execute_url, operation_status_url
from operations.models import OPERATION_ID_PATTERN, Operation, OperationStatus, OperationType
from rebalance.batch import BatchRebalanceResult

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
    status_url: Annotated[str, Meta(example=f"/rebalance/operations/{_EXAMPLE_ID}")]
    execute_url: Annotated[str, Meta(example=f"/rebalance/operations/{_EXAMPLE_ID}/execute")]


class OperationResource(OperationSummary):
    """The operation resource; `result` once SUCCEEDED, `error` once FAILED."""

    result: Annotated[
        BatchRebalanceResult | None,
        Meta(description="SUCCEEDED only: exactly what `POST /rebalance/analyze` returns for the same body."),
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
    return {
        "operation_id": operation.id,
        "operation_type": OperationType(operation.operation_type),
        "status": OperationStatus(operation.status),
        "is_executable": operation.status == OperationStatus.PENDING and executable_enabled,
        "correlation_id": operation.correlation_id,
        "created_at": instant_text(operation.created_at),
        "started_at": _optional_instant(operation.started_at),
        "finished_at": _optional_instant(operation.finished_at),
        "expires_at": instant_text(operation.expires_at),
        "attempt": operation.attempt,
        "status_url": operation_status_url(operation.id),
        "execute_url": operation_execute_url(operation.id),
    }


def operation_resource_json(operation: Operation, *, executable_enabled: bool) -> bytes:
    """The whole resource (`OperationResource`) as JSON bytes, the stored result text spliced in as is."""
    head = orjson.dumps(operation_summary(operation, executable_enabled=executable_enabled))
    result_bytes = b"null" if operation.result is None else operation.result
    error_bytes = orjson.dumps(operation.error)
    return b"".join((head[:-1], b',"result":', result_bytes, b',"error":', error_bytes, b"}"))
