"""Running an operation's batch: `…/execute`, INLINE submissions and WORKER tasks all end here.

A run starts with a claim (PENDING -> RUNNING, one conditional UPDATE that hands out the attempt
number), then parses the stored request, runs the batch with `rebalance_analyze_batch`, renewing
the lease (and looking for a cancel, and writing the progress) before each scenario, and records
the outcome - unless the row was taken from it meanwhile, in which case what it computed is
discarded. The batch itself runs outside any transaction, so readers keep polling while it runs;
meanwhile it holds each finished scenario only as a zstd frame, the form it is stored in.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypedDict

from django.db import DatabaseError, InterfaceError

from dpm_async.correlation import correlation_id_bound, operation_id_bound
from dpm_async.encoding import zstd_compress
from dpm_async.problems import RequestInvalid
from operations.access import OperationScope
from operations.errors import (
    ENGINE_ERROR,
    INVALID_STORED_REQUEST,
    OperationNotExecutable,
    OperationNotFound,
    operation_failure,
)
from operations.leases import operation_lease_kept
from operations.metrics import operation_run_observe
from operations.models import Operation, OperationStatus
from operations.retries import database_retrying
from operations.selectors import operation_reload, operation_status, operation_to_act_on
from operations.services import (
    operation_claim,
    operation_complete,
    operation_fail,
    operation_lease_renew,
    operation_stop,
)
from rebalance.batch import BatchRebalanceRequest
from rebalance.parsing import batch_request_parse
from rebalance.services import BatchProgress, rebalance_analyze_batch

logger = logging.getLogger(__name__)


def operation_execute(operation_id: str, *, scope: OperationScope) -> Operation:
    """Claims a PENDING operation and runs it in the caller's thread; returns it finished.

    OperationNotFound when unknown, expired or not visible in `scope`; OperationNotOwned (403)
    when visible but not the caller's own; OperationNotExecutable (409) when it is not PENDING or
    another caller claimed it first. A run that fails still returns (the failure is in `error`).
    """
    operation = operation_to_act_on(operation_id, scope)
    if operation.status != OperationStatus.PENDING:
        raise OperationNotExecutable(operation.id, operation.status)
    attempt = operation_claim(operation)
    if attempt is None:
        current = operation_status(operation_id)
        if current is None:
            raise OperationNotFound()
        raise OperationNotExecutable(current.id, current.status)
    started = time.perf_counter()
    with operation_id_bound(operation.id), operation_lease_kept(operation.id, attempt) as keeper:
        recorded = operation_run_claimed(operation.id, attempt, on_scenario=keeper.progressed)
    operation_run_observe("EXECUTE", operation.id, started, recorded)
    return operation_reload(operation.id)


def operation_run_claimed(
    operation_id: str, attempt: int, *, on_scenario: Callable[[], None] | None = None
) -> bool:
    """Runs an operation this caller claimed as `attempt`, from its stored request, to the end.

    Returns whether this run's outcome was recorded (False: the row was taken from it meanwhile,
    and what it computed was discarded). `on_scenario()` is called as each scenario starts (the
    lease keeper's sign of progress).
    """
    stored = database_retrying(
        lambda: Operation.objects.filter(pk=operation_id).values_list("request", "correlation_id").first(),
        f"operation {operation_id}: reading its request",
    )
    if stored is None:
        return False  # deleted under us: nothing left to report to
    request_text, correlation_id = stored
    try:
        batch = batch_request_parse(json.loads(request_text or b"", parse_float=Decimal))
    except RequestInvalid as invalid:
        return _fail(operation_id, attempt, operation_failure(
            INVALID_STORED_REQUEST, "The stored request no longer passes validation; submit it again.",
            {"errors": invalid.errors},
        ))
    except (ValueError, TypeError):  # not JSON at all (the column was edited by hand)
        return _fail(operation_id, attempt, operation_failure(
            INVALID_STORED_REQUEST, "The stored request is not a valid JSON document."
        ))
    return operation_run_batch(operation_id, correlation_id, attempt, batch, on_scenario=on_scenario)


class _RunStopped(Exception):
    """Raised between scenarios when the row no longer belongs to this run (cancelled or lost)."""

    def __init__(self, progress: BatchProgress) -> None:
        super().__init__(progress.current)
        self.progress = progress


def operation_run_batch(
    operation_id: str, correlation_id: str, attempt: int, batch: BatchRebalanceRequest,
    *, on_scenario: Callable[[], None] | None = None,
) -> bool:
    """Runs the batch of a claimed operation and records the outcome (or discards it if fenced).

    Returns whether the outcome was recorded.
    """
    def before_scenario(progress: BatchProgress) -> None:
        # One conditional UPDATE checks, renews and writes the progress, so a cancel or a lease
        # recovery is seen before the next scenario starts, and a poll sees the run advance.
        renewed = database_retrying(
            lambda: operation_lease_renew(operation_id, attempt, unless_cancelled=True, progress=progress),
            f"operation {operation_id}: renewing its lease",
        )
        if not renewed:
            raise _RunStopped(progress)
        if on_scenario is not None:
            on_scenario()

    try:
        outcome = rebalance_analyze_batch(
            batch, correlation_id=correlation_id, before_scenario=before_scenario, keep=zstd_compress
        )
    except _RunStopped as stopped:
        reached = stopped.progress
        return database_retrying(lambda: operation_stop(operation_id, attempt, reached),
                                 f"operation {operation_id}: recording its stop")
    except (DatabaseError, InterfaceError):
        # The heartbeat could not reach the database even after retrying (the engine never touches
        # it): that is not the batch's fault, so the operation is not failed. The run is abandoned;
        # its lease lapses and lease recovery runs it again.
        raise
    except Exception:
        # The batch as a whole could not run. The traceback goes to the log (with the correlation
        # id); the stored error is a fixed message, never the exception's text.
        logger.exception("operation %s attempt %s failed", operation_id, attempt)
        return _fail(operation_id, attempt, operation_failure(
            ENGINE_ERROR,
            f"The batch could not be run because of an internal error; the service log has the "
            f"details under correlation id {correlation_id}.",
        ))
    # A database that blinks while the result is stored costs a retry, not a rerun, and is never
    # reported as the engine's failure.
    return database_retrying(lambda: operation_complete(operation_id, attempt, outcome),
                             f"operation {operation_id}: storing its result")


def _fail(operation_id: str, attempt: int, error: dict[str, Any]) -> bool:
    return database_retrying(lambda: operation_fail(operation_id, attempt, error),
                             f"operation {operation_id}: recording its failure")


class QueuedRun(TypedDict):
    """What a WORKER task records as its result in the tasks backend."""

    operation_id: str
    ran: bool
    attempt: int | None
    recorded: bool


def operation_run_queued(operation_id: str) -> QueuedRun:
    """What WORKER mode's task does: claims the operation if it is still PENDING, and runs it.

    A task whose operation is no longer PENDING (run by a duplicate task or by `.../execute`,
    cancelled, expired, purged) does nothing, and of two tasks for one operation only one claim
    can win, so a task never runs an operation twice. While the batch runs, a background thread
    keeps the lease alive (operations/leases.py). `recorded` false: the run lost the row meanwhile
    and its outcome was discarded.
    """
    operation = (
        Operation.objects.only("id", "status", "attempt", "expires_at", "correlation_id")
        .filter(pk=operation_id).first()
    )
    attempt = None
    if operation is not None and operation.status == OperationStatus.PENDING:
        attempt = operation_claim(operation)
    if operation is None or attempt is None:
        return {"operation_id": operation_id, "ran": False, "attempt": None, "recorded": False}
    # The worker's log lines about this run carry the operation's correlation id, as the web's do
    # (a stored ENGINE_ERROR message points to the log under that id).
    started = time.perf_counter()
    with (correlation_id_bound(operation.correlation_id), operation_id_bound(operation_id),
          operation_lease_kept(operation_id, attempt) as keeper):
        recorded = operation_run_claimed(operation_id, attempt, on_scenario=keeper.progressed)
    operation_run_observe("WORKER", operation_id, started, recorded)
    return {"operation_id": operation_id, "ran": True, "attempt": attempt, "recorded": recorded}
