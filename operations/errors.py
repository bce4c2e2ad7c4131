"""The operations domain's error codes and the problems that carry them (docs/operations.md).

Every code is defined here once. The HTTP problems below carry them as `code`; the stored
`error.code` of a FAILED operation uses the `OperationFailure` codes, which are also listed in the
docs. Codes are stable: clients match on them.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from dpm_async.problems import Problem

# --- problem codes (HTTP) --------------------------------------------------------------------
OPERATIONS_DISABLED = "DPM_ASYNC_OPERATIONS_DISABLED"
MANUAL_EXECUTION_DISABLED = "DPM_ASYNC_MANUAL_EXECUTION_DISABLED"
OPERATION_NOT_FOUND = "DPM_ASYNC_OPERATION_NOT_FOUND"
OPERATION_NOT_EXECUTABLE = "DPM_ASYNC_OPERATION_NOT_EXECUTABLE"
OPERATION_NOT_CANCELLABLE = "DPM_ASYNC_OPERATION_NOT_CANCELLABLE"
OPERATION_CORRELATION_CONFLICT = "DPM_ASYNC_OPERATION_CORRELATION_CONFLICT"
OPERATION_NOT_OWNED = "DPM_ASYNC_OPERATION_NOT_OWNED"
OPERATION_RESULT_NOT_READY = "DPM_ASYNC_OPERATION_RESULT_NOT_READY"
SCENARIO_RESULT_NOT_FOUND = "DPM_ASYNC_SCENARIO_RESULT_NOT_FOUND"
TOO_MANY_UNFINISHED_OPERATIONS = "DPM_ASYNC_TOO_MANY_UNFINISHED_OPERATIONS"
# When a caller at its cap should try again: a typical operation finishes within seconds.
TOO_MANY_UNFINISHED_RETRY_AFTER_SECONDS = 5

# --- stored failure codes (`error.code` of a FAILED operation) -------------------------------
type OperationFailureCode = Literal[
    "ENGINE_ERROR", "INVALID_STORED_REQUEST", "EXECUTION_LEASE_EXPIRED", "OPERATION_CANCELLED", "RESULT_NOT_STORED"
]
ENGINE_ERROR: OperationFailureCode = "ENGINE_ERROR"
INVALID_STORED_REQUEST: OperationFailureCode = "INVALID_STORED_REQUEST"
EXECUTION_LEASE_EXPIRED: OperationFailureCode = "EXECUTION_LEASE_EXPIRED"
OPERATION_CANCELLED: OperationFailureCode = "OPERATION_CANCELLED"
RESULT_NOT_STORED: OperationFailureCode = "RESULT_NOT_STORED"
FAILURE_CODES: tuple[str, ...] = get_args(OperationFailureCode.__value__)


def operation_failure(
    code: OperationFailureCode, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The `error` object stored on a FAILED operation: a stable code and a message for people.

    The message is always written by us, never an exception's text or a traceback.
    """
    return {"code": code, "message": message, "details": details or {}}


class OperationsDisabled(Problem):
    status_code = 404
    default_code = OPERATIONS_DISABLED
    default_detail = "Async operations are disabled on this service (DPM_ASYNC_OPERATIONS_ENABLED=false)."


class ManualExecutionDisabled(Problem):
    status_code = 404
    default_code = MANUAL_EXECUTION_DISABLED
    default_detail = "Manual execution is disabled on this service (DPM_ASYNC_MANUAL_EXECUTION_ENABLED=false)."


class OperationNotFound(Problem):
    status_code = 404
    default_code = OPERATION_NOT_FOUND
    default_detail = "No such operation (it may have expired)."


class OperationNotOwned(Problem):
    """403: staff may read every owner's operations, but only the owner executes or cancels one.

    Only a caller who can see the operation ever gets this; for anyone else it is a 404.
    """

    status_code = 403
    default_code = OPERATION_NOT_OWNED

    def __init__(self, operation_id: str):
        super().__init__(
            f"Operation {operation_id} belongs to another user: only its owner can execute or cancel it "
            "(staff cancel through the admin).",
            extra={"operation_id": operation_id},
        )


class OperationNotExecutable(Problem):
    """409: only a PENDING operation can be executed; the body names the current status."""

    status_code = 409
    default_code = OPERATION_NOT_EXECUTABLE

    def __init__(self, operation_id: str, operation_status: str):
        super().__init__(
            f"Operation {operation_id} is {operation_status}; only a PENDING operation can be executed.",
            extra={"operation_id": operation_id, "operation_status": operation_status},
        )


class OperationNotCancellable(Problem):
    """409: a finished (SUCCEEDED or FAILED) operation cannot be cancelled."""

    status_code = 409
    default_code = OPERATION_NOT_CANCELLABLE

    def __init__(self, operation_id: str, operation_status: str):
        super().__init__(
            f"Operation {operation_id} is {operation_status}; only a PENDING or RUNNING operation can be cancelled.",
            extra={"operation_id": operation_id, "operation_status": operation_status},
        )


class OperationCorrelationConflict(Problem):
    """409: the correlation id already names an operation whose request differs."""

    status_code = 409
    default_code = OPERATION_CORRELATION_CONFLICT

    def __init__(self, correlation_id: str, operation_id: str, status_url: str):
        super().__init__(
            f"Correlation id {correlation_id!r} already belongs to operation {operation_id}, "
            "submitted with a different request body.",
            extra={"operation_id": operation_id, "status_url": status_url},
        )


class OperationResultNotReady(Problem):
    """409: a scenario's result was asked of an operation that has not SUCCEEDED (yet, or at all)."""

    status_code = 409
    default_code = OPERATION_RESULT_NOT_READY

    def __init__(self, operation_id: str, operation_status: str):
        why = "it has no result: see its `error`" if operation_status == "FAILED" else "poll it until it has finished"
        super().__init__(
            f"Operation {operation_id} is {operation_status}; scenario results exist once it SUCCEEDED ({why}).",
            extra={"operation_id": operation_id, "operation_status": operation_status},
        )


class ScenarioResultNotFound(Problem):
    """404: the finished operation has no result under that scenario name (no such scenario, or it
    failed: then the detail gives its reason, as `failed_scenarios` does)."""

    status_code = 404
    default_code = SCENARIO_RESULT_NOT_FOUND

    def __init__(self, operation_id: str, scenario_name: str | None, failed_reason: str | None = None):
        if scenario_name is None:  # not even a scenario name: not echoed
            super().__init__(f"Operation {operation_id} has no scenario of that name.",
                             extra={"operation_id": operation_id})
            return
        detail = (
            f"Scenario {scenario_name!r} of operation {operation_id} failed and has no result: {failed_reason}"
            if failed_reason is not None
            else f"Operation {operation_id} has no scenario named {scenario_name!r}."
        )
        super().__init__(detail, extra={"operation_id": operation_id, "scenario_name": scenario_name})


class TooManyUnfinishedOperations(Problem):
    """429: the owner already has DPM_ASYNC_MAX_UNFINISHED_PER_OWNER operations PENDING or RUNNING."""

    status_code = 429
    default_code = TOO_MANY_UNFINISHED_OPERATIONS

    def __init__(self, unfinished: int):
        super().__init__(
            f"You have {unfinished} operations PENDING or RUNNING, the most allowed; submit again once some "
            "have finished.",
            retry_after=TOO_MANY_UNFINISHED_RETRY_AFTER_SECONDS,
        )
