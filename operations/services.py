"""The only code that creates, changes or deletes operations (spec/api.md sections 2 to 6).

Every state change is ONE conditional UPDATE - `filter(pk=..., status=EXPECTED, ...).update(...)` -
whose row count says whether this caller won. Losing a race is a normal outcome: it is returned
(and becomes a 409 at the HTTP edge), never an exception that leaks as a 500, and nothing here
reads a row and then saves it.

A run is fenced by the attempt number it claimed: the runner's writes (lease renewal with progress,
result, failure) all filter on `status=RUNNING, attempt=<claimed>`, so once anyone else has moved
the row on (a cancel that ended it, a lease recovery that took it back), a late result is
discarded. Each statement commits on its own (autocommit), except the end of a successful run: its
UPDATE to SUCCEEDED and the INSERTs of its scenario results are one short transaction, so the
results become visible exactly when (and only if) the run's fenced UPDATE wins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q

from operations.access import OperationScope
from operations.clock import Instant, later, now_or_database
from operations.config import (
    RACE_RETRIES,
    WORKER,
    execution_mode,
    lease,
    manual_execution_enabled,
    max_attempts,
    max_unfinished_per_owner,
    ttl,
)
from operations.errors import (
    EXECUTION_LEASE_EXPIRED,
    OPERATION_CANCELLED,
    RESULT_NOT_STORED,
    OperationCorrelationConflict,
    OperationNotCancellable,
    OperationNotFound,
    TooManyUnfinishedOperations,
    operation_failure,
)
from operations.links import operation_status_url
from operations.models import (
    OPERATION_ID_PATTERN,
    Operation,
    OperationScenarioResult,
    OperationStatus,
    OperationType,
)
from operations.selectors import operation_get, operation_to_act_on
from rebalance.services import BatchOutcome, BatchProgress

logger = logging.getLogger(__name__)

PENDING = OperationStatus.PENDING
RUNNING = OperationStatus.RUNNING
SUCCEEDED = OperationStatus.SUCCEEDED
FAILED = OperationStatus.FAILED

PURGE_BATCH_SIZE = 1000


# --- create ----------------------------------------------------------------------------------

def operation_insert_or_existing(
    *, owner_id: int | None, correlation_id: str, request: bytes, request_fingerprint: str, scenarios_total: int,
    mode: str | None = None,
) -> tuple[Operation, bool]:
    """Inserts a PENDING operation, or returns the identical one (with its result) already there.

    Same correlation id and owner with the same fingerprint: `(existing, False)`; with another
    fingerprint: OperationCorrelationConflict (409). A replay or a conflict is found by an indexed
    read before anything is written. A new operation is inserted with `INSERT … ON CONFLICT DO
    NOTHING` (SQLite: `INSERT OR IGNORE`) on the unique (correlation id, owner) - for the anonymous
    owner (NULL, which a unique index never compares equal) a partial unique index on the
    correlation id - so two identical submissions racing are settled by the database without an
    error: the one whose row is not there reads the winner and replays it. No statement here can
    fail on a replay, so the database never logs one (with the request in it). An expired
    operation holding the correlation id is gone for every endpoint, so it must not block reuse:
    it is deleted (only if still expired, in one statement) first.
    """
    for _ in range(RACE_RETRIES):
        now = now_or_database()
        # `owner_id=None` is `owner_id IS NULL`: the anonymous owner's row.
        holder = (
            Operation.objects.filter(correlation_id=correlation_id, owner_id=owner_id)
            .annotate(is_expired=Q(expires_at__lte=now))
            .values_list("id", "request_fingerprint", "is_expired")
            .first()
        )
        existing: tuple[str, str] | None = None
        if holder is not None:
            holder_id, holder_fingerprint, is_expired = holder
            if is_expired:
                Operation.objects.filter(pk=holder_id, expires_at__lte=now).only("pk").delete()
            else:
                existing = (holder_id, holder_fingerprint)
        if existing is None:
            operation = Operation(
                operation_type=OperationType.ANALYZE_SCENARIOS,
                status=PENDING,
                owner_id=owner_id,
                correlation_id=correlation_id,
                request=request,
                request_fingerprint=request_fingerprint,
                scenarios_total=scenarios_total,
                execution_mode=mode,
                created_at=now,
                expires_at=later(now, ttl()),
            )
            inserted = _operation_insert_within_cap(operation, now)
            if inserted is not None:
                return inserted, True  # as stored: its instants are the database's
            continue  # another submission with this correlation id won the race: read it
        existing_id, existing_fingerprint = existing
        if existing_fingerprint == request_fingerprint:
            replayed = Operation.objects.defer("request").filter(pk=existing_id).first()
            if replayed is None:
                continue  # purged meanwhile: insert again
            return replayed, False
        raise OperationCorrelationConflict(correlation_id, existing_id, operation_status_url(existing_id))
    raise RuntimeError(f"could not insert or find the operation for correlation id {correlation_id!r}")


# Namespaces the per-owner advisory lock (an int4, "DPM1"), so it meets no other lock of the database.
_OWNER_LOCK_NAMESPACE = 0x44504D31


def _operation_insert_within_cap(operation: Operation, now: Instant) -> Operation | None:
    """Inserts `operation` unless its owner is at DPM_ASYNC_MAX_UNFINISHED_PER_OWNER; returns it as
    stored, or None when another submission took its correlation id first.

    The count and the insert must not interleave with another submission of the same owner, or two
    racing submissions would both see one slot free and both take it. So they run in one
    transaction that first serialises the owner's submissions: PostgreSQL takes a transaction-level
    advisory lock on the owner (other owners are not held up); SQLite's IMMEDIATE transaction
    holds the database's single write lock. Within it, a correlation id taken meanwhile is not
    counted against the cap: the caller then replays it, and a replay is never refused.
    """
    cap = max_unfinished_per_owner()
    if cap == 0:
        Operation.objects.bulk_create([operation], ignore_conflicts=True)
        return Operation.objects.defer("request").filter(pk=operation.pk).first()
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                               [_OWNER_LOCK_NAMESPACE, (operation.owner_id or 0) % 2**31])
        if Operation.objects.filter(correlation_id=operation.correlation_id, owner_id=operation.owner_id,
                                    expires_at__gt=now).exists():
            return None
        unfinished = (Operation.objects.filter(owner_id=operation.owner_id, expires_at__gt=now,
                                               status__in=(PENDING, RUNNING)).count())
        if unfinished >= cap:
            raise TooManyUnfinishedOperations(unfinished)
        Operation.objects.bulk_create([operation], ignore_conflicts=True)
    return Operation.objects.defer("request").filter(pk=operation.pk).first()


# --- a run: claim, keep, finish ---------------------------------------------------------------

# A run starts from no progress (a rerun after lease recovery starts over).
_PROGRESS_RESET: dict[str, Any] = {
    "scenarios_done": 0, "scenarios_failed": 0, "current_scenario": None, "scenario_statuses": {},
}

def operation_claim(operation: Operation, *, now: datetime | None = None) -> int | None:
    """PENDING -> RUNNING in one conditional UPDATE; returns the claimed attempt, None if lost.

    The UPDATE also checks the attempt count read with `operation`, so the number returned is the
    claimer's fencing token even if the row went PENDING -> RUNNING -> PENDING in between.
    """
    at = now_or_database(now)
    attempt = operation.attempt + 1
    claimed = Operation.objects.filter(
        pk=operation.pk, status=PENDING, attempt=operation.attempt, expires_at__gt=at
    ).update(
        status=RUNNING,
        attempt=attempt,
        started_at=at,
        lease_expires_at=later(at, lease()),
        expires_at=later(at, lease() + ttl()),
        cancel_requested=False,
        **_PROGRESS_RESET,
    )
    return attempt if claimed == 1 else None


def operation_lease_renew(
    operation_id: str, attempt: int, *, unless_cancelled: bool = False, progress: BatchProgress | None = None,
    now: datetime | None = None,
) -> bool:
    """Pushes the lease of run `attempt` on; False once the row is no longer that run's.

    With `unless_cancelled` (the runner between scenarios) a cancel request also answers False,
    so one UPDATE both checks and renews and the run stops before its next scenario. The lease
    keeper renews regardless: the run keeps its lease until it reaches the next scenario and stops
    there (the cancel wins either way). `progress` (the runner, before each scenario) is written
    by the same UPDATE: polling clients see the run advance at no extra statement.
    """
    at = now_or_database(now)
    runs = Operation.objects.filter(pk=operation_id, status=RUNNING, attempt=attempt)
    if unless_cancelled:
        runs = runs.filter(cancel_requested=False)
    fields: dict[str, Any] = {"lease_expires_at": later(at, lease()), "expires_at": later(at, lease() + ttl())}
    if progress is not None:
        fields.update(scenarios_done=progress.done, scenarios_failed=progress.failed,
                      current_scenario=progress.current, scenario_statuses=progress.statuses)
    return runs.update(**fields) == 1


def _cancelled_failure(while_status: str) -> dict[str, Any]:
    return operation_failure(
        OPERATION_CANCELLED, "The operation was cancelled.", {"cancelled_while": while_status}
    )


def _terminal_fields(at: Instant) -> dict[str, Any]:
    return {"finished_at": at, "expires_at": later(at, ttl()), "lease_expires_at": None, "cancel_requested": False,
            "current_scenario": None}


def operation_stop(operation_id: str, attempt: int, progress: BatchProgress | None = None) -> bool:
    """Ends a run that was asked to cancel as FAILED OPERATION_CANCELLED; a fenced run ends silently.

    `progress` (where the run stopped: the scenarios it finished) stays on the operation."""
    now = now_or_database()
    fields: dict[str, Any] = {}
    if progress is not None:
        fields.update(scenarios_done=progress.done, scenarios_failed=progress.failed,
                      scenario_statuses=progress.statuses)
    stopped = Operation.objects.filter(
        pk=operation_id, status=RUNNING, attempt=attempt, cancel_requested=True
    ).update(status=FAILED, error=_cancelled_failure(RUNNING), **fields, **_terminal_fields(now))
    if stopped != 1:
        logger.info("operation %s attempt %s lost its lease; its run is discarded", operation_id, attempt)
    return stopped == 1


def operation_complete(operation_id: str, attempt: int, outcome: BatchOutcome) -> bool:
    """RUNNING -> SUCCEEDED with the batch's outcome, if this run still owns the row.

    `outcome` holds each scenario's text as a zstd frame (`keep=zstd_compress`): those frames are
    stored as they are, one row per scenario, and the envelope goes on the operation. The fenced
    UPDATE comes first and the INSERTs follow in the same transaction, so the results exist iff
    this run's UPDATE won: a late run's INSERTs never happen, and a reader never sees a SUCCEEDED
    operation without all its results. A cancel that arrived during the last scenario wins: the
    run ends cancelled, since the caller was told it would. Returns whether this run's outcome was
    recorded.
    """
    now = now_or_database()
    statuses = outcome.statuses
    try:
        with transaction.atomic():
            completed = Operation.objects.filter(
                pk=operation_id, status=RUNNING, attempt=attempt, cancel_requested=False
            ).update(
                status=SUCCEEDED, result_envelope=outcome.envelope(), scenarios_total=len(statuses),
                scenarios_done=len(statuses), scenarios_failed=len(outcome.failed_scenarios),
                scenario_statuses=statuses, **_terminal_fields(now),
            )
            if completed == 1:
                # One scenario per INSERT: the statement never holds more than one scenario's bytes.
                OperationScenarioResult.objects.bulk_create(
                    (
                        OperationScenarioResult(operation_id=operation_id, position=position, name=scenario.name,
                                                status=scenario.status, size=scenario.size, body=scenario.body)
                        for position, scenario in enumerate(outcome.scenarios)
                    ),
                    batch_size=1,
                )
    except (OperationalError, InterfaceError):
        raise  # the database is away: the caller retries (operations/retries.py), then gives the run up
    except DatabaseError:
        # The database refused the result itself (too large for a column, say): trying again would
        # fail again, and it is not the engine's fault. The operation must still end.
        logger.exception("the database refused the result of operation %s", operation_id)
        return operation_fail(
            operation_id, attempt,
            operation_failure(RESULT_NOT_STORED, "The batch ran, but the database refused to store its result."),
        )
    if completed == 1:
        return True
    return operation_stop(operation_id, attempt)


def operation_fail(operation_id: str, attempt: int, error: dict[str, Any]) -> bool:
    """RUNNING -> FAILED with `error`, if this run still owns the row. Returns whether it did."""
    now = now_or_database()
    failed = Operation.objects.filter(pk=operation_id, status=RUNNING, attempt=attempt).update(
        status=FAILED, error=error, **_terminal_fields(now)
    )
    return failed == 1


# --- cancel ----------------------------------------------------------------------------------

def operation_cancel(operation_id: str, *, scope: OperationScope) -> Operation:
    """Cancels an unfinished operation and returns it.

    PENDING -> FAILED OPERATION_CANCELLED at once. RUNNING -> flagged: the runner stops before its
    next scenario (or instead of recording its result) and ends FAILED OPERATION_CANCELLED; the
    answer shows it still RUNNING. Terminal -> OperationNotCancellable (409). Each step is one
    conditional UPDATE, limited to the rows `scope` may act on; if the row moves between them the
    steps are tried again. Not visible in `scope` -> OperationNotFound; visible but someone
    else's -> OperationNotOwned (403).
    """
    if not OPERATION_ID_PATTERN.fullmatch(operation_id):
        raise OperationNotFound()
    for _ in range(RACE_RETRIES):
        now = now_or_database()
        live = Operation.objects.live().filter(pk=operation_id)
        if not scope.acts_on_all:
            live = live.visible_in(OperationScope(owner_id=scope.owner_id))
        if live.filter(status=PENDING).update(status=FAILED, error=_cancelled_failure(PENDING), **_terminal_fields(now)):
            break
        if live.filter(status=RUNNING).update(cancel_requested=True):
            break
        current = operation_to_act_on(operation_id, scope)
        if current.is_terminal:
            raise OperationNotCancellable(current.id, current.status)
        # It went PENDING -> RUNNING (or back) between the two statements: try again.
    return operation_get(operation_id, scope=scope)


# --- lapsed leases and expiry ------------------------------------------------------------------

@dataclass(frozen=True)
class LeaseSettlement:
    """What `operations_leases_settle` did: counts, and the ids it took back to PENDING."""

    cancelled: int
    exhausted: int
    requeued: tuple[str, ...]

    @property
    def total(self) -> int:
        return self.cancelled + self.exhausted + len(self.requeued)


def operations_leases_settle(*, now: datetime | None = None, operation_id: str | None = None) -> LeaseSettlement:
    """Settles RUNNING operations whose runner died (its lease ran out); only `operation_id` if given.

    Cancel requested -> FAILED OPERATION_CANCELLED. Attempts used up (DPM_ASYNC_MAX_ATTEMPTS) ->
    FAILED EXECUTION_LEASE_EXPIRED. Otherwise back to PENDING to be run again - when something can
    run it again: a worker (WORKER mode; the caller enqueues it) or a caller of `…/execute`
    (manual execution enabled). Where nothing can (INLINE or ACCEPT_ONLY with manual execution
    disabled), FAILED EXECUTION_LEASE_EXPIRED at once, so no client polls a dead operation until its
    TTL (docs/operations.md, "When a run dies").

    The failures are one conditional UPDATE each over the (small) set of RUNNING rows with a lapsed
    lease; the requeue is one conditional UPDATE per row, so that the one caller that moved a row
    is the one that reports it (and enqueues it) even when several processes settle at once. A
    runner that comes back later finds its attempt fenced off and its result is discarded. The
    failure and requeue statements leave alone a row whose cancel was requested after the first
    statement: a cancel that answered 200 always ends the operation cancelled (next round).
    """
    at = now_or_database(now)
    stale = Operation.objects.lease_expired(at)
    if operation_id is not None:
        stale = stale.filter(pk=operation_id)
    attempts = max_attempts()
    rerunnable = execution_mode() == WORKER or manual_execution_enabled()
    cancelled = stale.filter(cancel_requested=True).update(
        status=FAILED, error=_cancelled_failure(RUNNING), **_terminal_fields(at)
    )
    exhausted = stale.filter(attempt__gte=attempts, cancel_requested=False).update(
        status=FAILED,
        error=operation_failure(
            EXECUTION_LEASE_EXPIRED,
            "The operation's runner stopped responding on every attempt; it was given up.",
            {"max_attempts": attempts},
        ),
        **_terminal_fields(at),
    )
    if not rerunnable:
        exhausted += stale.filter(cancel_requested=False).update(
            status=FAILED,
            error=operation_failure(
                EXECUTION_LEASE_EXPIRED,
                "The operation's run stopped (its process died) and nothing can run it again here: "
                "submit it again with a new correlation id.",
                {"max_attempts": attempts, "rerun": False},
            ),
            **_terminal_fields(at),
        )
    requeued = []
    candidates = stale.filter(attempt__lt=attempts, cancel_requested=False).values_list("pk", "attempt")
    for candidate_id, attempt in candidates:
        moved = stale.filter(pk=candidate_id, attempt=attempt, cancel_requested=False).update(
            status=PENDING, started_at=None, lease_expires_at=None, expires_at=later(at, ttl()), **_PROGRESS_RESET
        )
        if moved == 1:  # else its runner finished, or another process settled it, in between
            logger.warning("operation %s lost its runner (attempt %s); requeued", candidate_id, attempt)
            requeued.append(candidate_id)
    return LeaseSettlement(cancelled, exhausted, tuple(requeued))


def operations_purge_expired(
    *, batch_size: int = PURGE_BATCH_SIZE, dry_run: bool = False, now: datetime | None = None
) -> int:
    """Deletes expired operations that are not RUNNING, `batch_size` rows per statement.

    Each round is one `DELETE ... WHERE id IN (SELECT id ... ORDER BY expires_at LIMIT n)` on the
    partial purge index, committed on its own, so memory stays flat, locks stay short and the
    service keeps running. The expiry condition is repeated on the outer DELETE, so a row that
    changed since the inner SELECT is left alone. Returns how many rows were deleted (with
    `dry_run`, how many would be).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    at = now_or_database(now)
    candidates = Operation.objects.purgeable(at)
    if dry_run:
        return candidates.count()
    total = 0
    while True:
        batch_ids = candidates.order_by("expires_at").values("pk")[:batch_size]
        deleted, _ = Operation.objects.purgeable(at).filter(pk__in=batch_ids).only("pk").delete()
        total += deleted
        if deleted < batch_size:
            return total
