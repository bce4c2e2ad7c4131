"""Accepting a batch as an operation (`POST /rebalance/analyze/async`; docs/operations.md)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.db import transaction

from operations.config import INLINE, WORKER, execution_mode
from operations.execution import operation_run_batch
from operations.leases import operation_lease_kept
from operations.metrics import operation_run_observe, operation_submitted_observe
from operations.models import Operation
from operations.queue import operation_enqueue
from operations.selectors import operation_reload
from operations.services import operation_claim, operation_insert_or_existing
from rebalance.batch import BatchRebalanceRequest
from rebalance.canonical import request_canonical


@dataclass(frozen=True)
class Submission:
    operation: Operation
    # True when an identical earlier submission was returned instead of creating an operation.
    replayed: bool


def operation_submit(batch: BatchRebalanceRequest, *, correlation_id: str, owner_id: int | None) -> Submission:
    """Stores `batch` as a PENDING operation of `owner_id`, or returns the one that owner already
    has under `correlation_id` (None: the anonymous owner of DPM_API_AUTH_REQUIRED=false).

    Same correlation id and same request fingerprint: the existing operation (replayed). Same
    correlation id, different request: OperationCorrelationConflict (409). Correlation ids are
    unique per owner: another owner's operation with the same id is neither replayed nor a
    conflict, nor even revealed. Then, by mode: INLINE runs it here and returns it finished;
    ACCEPT_ONLY leaves it PENDING for `.../execute`; WORKER leaves it PENDING and enqueues its
    task once the row is committed.
    """
    mode = execution_mode()
    canonical = request_canonical(batch)
    operation, created = operation_insert_or_existing(
        owner_id=owner_id,
        correlation_id=correlation_id,
        request=canonical.json,
        request_fingerprint=canonical.fingerprint,
        scenarios_total=len(batch.scenarios),
        mode=mode,
    )
    if not created:
        return Submission(operation=operation, replayed=True)
    operation_submitted_observe(mode)
    if mode == INLINE:
        attempt = operation_claim(operation)
        if attempt is not None:
            started = time.perf_counter()
            # The same lease keeper as a worker's: should this process die, the lease lapses and
            # the operation is settled (docs/operations.md, "When a run dies").
            with operation_lease_kept(operation.id, attempt) as keeper:
                recorded = operation_run_batch(operation.id, operation.correlation_id, attempt, batch,
                                               on_scenario=keeper.progressed)
            operation_run_observe("INLINE", operation.id, started, recorded)
        return Submission(operation=operation_reload(operation.id), replayed=False)
    if mode == WORKER:
        transaction.on_commit(lambda: operation_enqueue(operation.id))
    return Submission(operation=operation, replayed=False)
