"""The only code that creates, changes or deletes operations (spec/api.md sections 2 to 6).

Every state change is ONE conditional UPDATE - `filter(pk=..., status=EXPECTED, ...).update(...)` -
whose row count says whether this caller won. Losing a race is a normal outcome: it is returned
(and becomes a 409 at the HTTP edge), never an exception that leaks as a 500, and nothing here
reads a row and then saves it.

A run is fenced by the attempt number it claimed: the runner's writes (lease renewal, result,
failure) all filter on `status=RUNNING, attempt=<claimed>`, so once anyone else has moved the row
on (a cancel that ended it, a lease recovery that took it back), a late result is discarded.

No long transaction is ever held: each statement commits on its own (Django's autocommit), so the
batch itself runs outside any transaction and readers keep polling while it runs.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, InterfaceError, connections, transaction
from django.db.models import Case, Q, QuerySet, When
from django.utils import timezone

from dpm_async.correlation import CORRELATION_ID_PATTERN, correlation_id_bound
from dpm_async.problems import RequestInvalid
from operations.access import OperationScope
from operations.errors import (
    ENGINE_ERROR,
    EXECUTION_LEASE_EXPIRED,
    INVALID_STORED_REQUEST,
    OPERATION_CANCELLED,
    ManualExecutionDisabled,
    OperationCorrelationConflict,
    OperationNotCancellable,
    OperationNotExecutable,
    OperationNotFound,
    OperationNotOwned,
    OperationsDisabled,
    operation_failure,
)
from operations.models import (
    OPERATION_ID_PATTERN,
    Operation,
    OperationQuerySet,
    OperationStatus,
    OperationType,
)
from rebalance.serializers import BatchRequest, batch_request_parse
from rebalance.services import rebalance_analyze_batch

logger = logging.getLogger(__name__)

INLINE = "INLINE"
ACCEPT_ONLY = "ACCEPT_ONLY"
WORKER = "WORKER"

PENDING = OperationStatus.PENDING
RUNNING = OperationStatus.RUNNING
SUCCEEDED = OperationStatus.SUCCEEDED
FAILED = OperationStatus.FAILED

# Fields a status answer needs: everything but the (large) request and result.
STATUS_FIELDS = (
    "id", "operation_type", "status", "correlation_id", "created_at", "started_at", "finished_at",
    "expires_at", "attempt", "owner",
)

PURGE_BATCH_SIZE = 1000

# How often a lost race is retried before giving up (each retry means someone else moved the row
# in the few microseconds between two statements; two in a row do not happen in practice).
_RACE_RETRIES = 5


# --- settings, read at call time -------------------------------------------------------------

def execution_mode() -> str:
    """`DPM_ASYNC_EXECUTION_MODE`; settings.py already fell back to INLINE on a bad value."""
    mode = str(settings.DPM_ASYNC_EXECUTION_MODE).strip().upper()
    return mode if mode in (INLINE, ACCEPT_ONLY, WORKER) else INLINE


def _ttl() -> timedelta:
    return timedelta(seconds=settings.DPM_ASYNC_OPERATIONS_TTL_SECONDS)


def _lease() -> timedelta:
    return timedelta(seconds=settings.DPM_ASYNC_EXECUTION_LEASE_SECONDS)


def manual_execution_enabled() -> bool:
    return bool(settings.DPM_ASYNC_MANUAL_EXECUTION_ENABLED)


def operations_enabled_check() -> None:
    """Raises OperationsDisabled (404) when the operations API is switched off."""
    if not settings.DPM_ASYNC_OPERATIONS_ENABLED:
        raise OperationsDisabled()


def manual_execution_check() -> None:
    """Raises ManualExecutionDisabled (404) when `.../execute` is switched off."""
    if not manual_execution_enabled():
        raise ManualExecutionDisabled()


# --- reads -----------------------------------------------------------------------------------

def _live(now: datetime | None = None) -> OperationQuerySet:
    return Operation.objects.live(now or timezone.now())


def operation_get(operation_id: str, *, scope: OperationScope) -> Operation:
    """The operation with its result and error, in one query; 404 when unknown, expired or not
    visible in `scope` (another owner's operation does not exist for the caller).

    The request is not loaded: no answer shows it.
    """
    if not OPERATION_ID_PATTERN.fullmatch(operation_id):
        raise OperationNotFound()
    operation = _live().visible_in(scope).defer("request").filter(pk=operation_id).first()
    if operation is None:
        raise OperationNotFound()
    return operation


def operation_get_by_correlation(correlation_id: str, *, scope: OperationScope) -> Operation:
    """The live operation carrying `correlation_id` in `scope`, with its result and error.

    Correlation ids are unique per owner, so a caller has at most one. A scope that sees every
    owner (staff) may match several: the caller's own wins, else the newest.
    """
    # Never a valid id: refused before the query (a NUL byte would even be an error on PostgreSQL).
    if not CORRELATION_ID_PATTERN.fullmatch(correlation_id):
        raise OperationNotFound()
    candidates = _live().visible_in(scope).defer("request").filter(correlation_id=correlation_id)
    if scope.sees_all:
        own = Q(owner__isnull=True) if scope.owner_id is None else Q(owner_id=scope.owner_id)
        candidates = candidates.order_by(Case(When(own, then=0), default=1), "-created_at", "-id")
    operation = candidates.first()
    if operation is None:
        raise OperationNotFound()
    return operation


def _operation_status(operation_id: str, scope: OperationScope | None = None) -> Operation | None:
    live = _live() if scope is None else _live().visible_in(scope)
    return live.only(*STATUS_FIELDS).filter(pk=operation_id).first()


def _operation_to_act_on(operation_id: str, scope: OperationScope) -> Operation:
    """The status row of an operation the caller may execute or cancel.

    OperationNotFound (404) when unknown, expired or not visible in `scope`; OperationNotOwned
    (403) when visible but someone else's (staff reading with the view permission). The owner of
    a row never changes, so this check cannot be raced.
    """
    operation = _operation_status(operation_id, scope) if OPERATION_ID_PATTERN.fullmatch(operation_id) else None
    if operation is None:
        raise OperationNotFound()
    if not scope.owns(operation.owner_id):
        raise OperationNotOwned(operation.id)
    return operation


@dataclass(frozen=True)
class OperationFilters:
    status: str | None = None
    operation_type: str | None = None
    correlation_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


@dataclass(frozen=True)
class OperationPage:
    items: list[Operation]
    # (created_at, id) of the last item when there are more, else None.
    next_key: tuple[datetime, str] | None


def operations_list(
    filters: OperationFilters, *, scope: OperationScope, limit: int, after: tuple[datetime, str] | None = None
) -> OperationPage:
    """Live operations visible in `scope`, newest first, keyset-paged on (created_at, id); one
    query, no payloads.

    `after` is the (created_at, id) of the last row of the previous page. The keyset predicate is
    written `created_at <= c AND (created_at < c OR id < i)` so that the database can start the
    index scan at the cursor instead of filtering its way down from the top. A caller's own list
    walks the (owner, created_at, id) index, so it never reads other owners' rows.
    """
    queryset = _live().visible_in(scope).only(*STATUS_FIELDS)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.operation_type:
        queryset = queryset.filter(operation_type=filters.operation_type)
    if filters.correlation_id:
        queryset = queryset.filter(correlation_id=filters.correlation_id)
    if filters.created_from:
        queryset = queryset.filter(created_at__gte=filters.created_from)
    if filters.created_to:
        queryset = queryset.filter(created_at__lte=filters.created_to)
    if after is not None:
        created_at, operation_id = after
        queryset = queryset.filter(
            Q(created_at__lte=created_at) & (Q(created_at__lt=created_at) | Q(id__lt=operation_id))
        )
    rows = _keyset_page_rows(queryset.order_by("-created_at", "-id")[: limit + 1])
    if len(rows) > limit:
        rows = rows[:limit]
        return OperationPage(rows, (rows[-1].created_at, rows[-1].id))
    return OperationPage(rows, None)


def _keyset_page_rows(page: QuerySet[Operation]) -> list[Operation]:
    """Evaluates a keyset page so that it walks a list index in order and stops after one page.

    Right after a bulk load PostgreSQL's statistics are stale: it then estimates a few dozen rows
    for an owner with 100,000, picks a bitmap scan of all of them plus a top-N sort (~45 ms
    instead of 0.1 ms), and keeps that plan until autovacuum analyses the table. With bitmap scans
    off for this one statement the planner walks the (owner, [status,] created_at, id) index
    backwards, whatever the statistics say; an equality filter (correlation id) still uses its
    unique index. `SET LOCAL` ends with the transaction opened here.
    """
    database = connections[page.db]
    if database.vendor != "postgresql":
        return list(page)
    with transaction.atomic(using=page.db):
        with database.cursor() as cursor:
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        return list(page)


# --- submit ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submission:
    operation: Operation
    # True when an identical earlier submission was returned instead of creating an operation.
    replayed: bool


def operation_submit(batch: BatchRequest, *, correlation_id: str, owner_id: int | None) -> Submission:
    """Stores `batch` as a PENDING operation of `owner_id`, or returns the one that owner already
    has under `correlation_id` (None: the anonymous owner of DPM_API_AUTH_REQUIRED=false).

    Same correlation id and same request fingerprint: the existing operation (replayed). Same
    correlation id, different request: OperationCorrelationConflict (409). Correlation ids are
    unique per owner: another owner's operation with the same id is neither replayed nor a
    conflict, nor even revealed. Then, by mode: INLINE runs it here and returns it finished;
    ACCEPT_ONLY leaves it PENDING for `.../execute`; WORKER leaves it PENDING and hands it to
    `operation_enqueue` once the row is committed.
    """
    mode = execution_mode()
    operation, created = _operation_insert_or_existing(
        owner_id=owner_id,
        correlation_id=correlation_id,
        request=batch.canonical_json(),
        request_fingerprint=batch.fingerprint(),
    )
    if not created:
        return Submission(operation=operation, replayed=True)
    if mode == INLINE:
        attempt = operation_claim(operation)
        if attempt is not None:
            _operation_run(operation.id, operation.correlation_id, attempt, batch)
        return Submission(operation=_reload(operation.id), replayed=False)
    if mode == WORKER:
        transaction.on_commit(lambda: operation_enqueue(operation))
    return Submission(operation=operation, replayed=False)


def _operation_insert_or_existing(
    *, owner_id: int | None, correlation_id: str, request: bytes, request_fingerprint: str
) -> tuple[Operation, bool]:
    """Inserts a PENDING operation, or returns the identical one (with its result) already there.

    It relies on the unique (correlation id, owner) rather than a pre-check: two identical
    submissions racing both try the INSERT; the database lets one through and the other gets an
    IntegrityError, reads the winner and replays it. For the anonymous owner (NULL, which a unique
    index never compares equal) a partial unique index on the correlation id plays that part. An
    expired operation holding the correlation id is gone for every endpoint, so it must not block
    reuse: it is deleted (only if still expired, in one statement) and the insert is tried again.
    """
    for _ in range(_RACE_RETRIES):
        now = timezone.now()
        try:
            # The savepoint keeps an outer transaction (tests, ATOMIC_REQUESTS) usable after the
            # IntegrityError.
            with transaction.atomic():
                operation = Operation.objects.create(
                    operation_type=OperationType.ANALYZE_SCENARIOS,
                    status=PENDING,
                    owner_id=owner_id,
                    correlation_id=correlation_id,
                    request=request,
                    request_fingerprint=request_fingerprint,
                    created_at=now,
                    expires_at=now + _ttl(),
                )
            return operation, True
        except IntegrityError:
            # `owner_id=None` is `owner_id IS NULL`: the anonymous owner's row.
            existing = (
                Operation.objects.only("id", "request_fingerprint", "expires_at")
                .filter(correlation_id=correlation_id, owner_id=owner_id)
                .first()
            )
        if existing is None:
            continue  # purged between our INSERT and this read: insert again
        if existing.expires_at <= now:
            Operation.objects.filter(pk=existing.pk, expires_at__lte=now).only("pk").delete()
            continue
        if existing.request_fingerprint == request_fingerprint:
            replayed = Operation.objects.defer("request").filter(pk=existing.pk).first()
            if replayed is None:
                continue  # purged meanwhile: insert again
            return replayed, False
        raise OperationCorrelationConflict(correlation_id, existing.id, existing.status_url)
    raise RuntimeError(f"could not insert or find the operation for correlation id {correlation_id!r}")


def _reload(operation_id: str) -> Operation:
    """The row as stored now (without the request), whatever happened to it meanwhile."""
    operation = Operation.objects.defer("request").filter(pk=operation_id).first()
    if operation is None:
        raise OperationNotFound()  # deleted by hand meanwhile: expiry never removes a fresh row
    return operation


def operation_enqueue(operation: Operation | str) -> bool:
    """WORKER mode's hand-off: enqueues the task that claims and runs the operation; True if it did.

    Called once the PENDING row is committed (a worker must be able to see it), and by lease
    recovery for each operation it took back to PENDING (a requeued row with no task would sit
    forever). It never raises: the row is already stored, so a failure to enqueue must not turn
    into a 500 for a submission that succeeded; it is logged, and the workers' sweep
    (`operations_enqueue_stranded`) enqueues such an operation again. A duplicate task is harmless:
    only one claim can win.
    """
    from operations.tasks import operation_run_task  # tasks.py imports this module

    operation_id = operation if isinstance(operation, str) else operation.id
    try:
        operation_run_task.enqueue(operation_id)
    except Exception:
        logger.exception("could not enqueue operation %s; the workers' sweep will enqueue it again", operation_id)
        return False
    return True


# --- claim, run, finish ----------------------------------------------------------------------

def operation_claim(operation: Operation, *, now: datetime | None = None) -> int | None:
    """PENDING -> RUNNING in one conditional UPDATE; returns the claimed attempt, None if lost.

    The UPDATE also checks the attempt count read with `operation`, so the number returned is the
    claimer's fencing token even if the row went PENDING -> RUNNING -> PENDING in between.
    """
    now = now or timezone.now()
    attempt = operation.attempt + 1
    lease_end = now + _lease()
    claimed = Operation.objects.filter(
        pk=operation.pk, status=PENDING, attempt=operation.attempt, expires_at__gt=now
    ).update(
        status=RUNNING,
        attempt=attempt,
        started_at=now,
        lease_expires_at=lease_end,
        expires_at=lease_end + _ttl(),
        cancel_requested=False,
    )
    return attempt if claimed == 1 else None


def operation_execute(operation_id: str, *, scope: OperationScope) -> Operation:
    """Claims a PENDING operation and runs it in the caller's thread; returns it finished.

    OperationNotFound when unknown, expired or not visible in `scope`; OperationNotOwned (403)
    when visible but not the caller's own; OperationNotExecutable (409) when it is not PENDING or
    another caller claimed it first. A run that fails still returns (the failure is in `error`).
    """
    operation = _operation_to_act_on(operation_id, scope)
    if operation.status != PENDING:
        raise OperationNotExecutable(operation.id, operation.status)
    attempt = operation_claim(operation)
    if attempt is None:
        current = _operation_status(operation_id)
        if current is None:
            raise OperationNotFound()
        raise OperationNotExecutable(current.id, current.status)
    operation_run_claimed(operation.id, attempt)
    return _reload(operation.id)


def operation_run_claimed(
    operation_id: str, attempt: int, *, on_scenario: Callable[[], None] | None = None
) -> bool:
    """Runs an operation this caller claimed as `attempt`, from its stored request, to the end.

    Returns whether this run's outcome was recorded (False: the row was taken from it meanwhile,
    and what it computed was discarded). `on_scenario()` is called as each scenario starts (the
    lease keeper's sign of progress).
    """
    stored = Operation.objects.filter(pk=operation_id).values_list("request", "correlation_id").first()
    if stored is None:
        return False  # deleted under us: nothing left to report to
    request_text, correlation_id = stored
    try:
        batch = batch_request_parse(json.loads(request_text, parse_float=Decimal))
    except RequestInvalid as invalid:
        return operation_fail(
            operation_id,
            attempt,
            operation_failure(
                INVALID_STORED_REQUEST,
                "The stored request no longer passes validation; submit it again.",
                {"errors": invalid.errors},
            ),
        )
    except (ValueError, TypeError):  # not JSON at all (the column was edited by hand)
        return operation_fail(
            operation_id,
            attempt,
            operation_failure(INVALID_STORED_REQUEST, "The stored request is not a valid JSON document."),
        )
    return _operation_run(operation_id, correlation_id, attempt, batch, on_scenario=on_scenario)


class _RunStopped(Exception):
    """Raised between scenarios when the row no longer belongs to this run (cancelled or lost)."""


def _operation_run(
    operation_id: str, correlation_id: str, attempt: int, batch: BatchRequest,
    *, on_scenario: Callable[[], None] | None = None,
) -> bool:
    """Runs the batch of a claimed operation and records the outcome (or discards it if fenced).

    Returns whether the outcome was recorded.
    """
    def before_scenario(_name: str) -> None:
        _operation_heartbeat(operation_id, attempt)
        if on_scenario is not None:
            on_scenario()

    try:
        result = rebalance_analyze_batch(batch, correlation_id=correlation_id, before_scenario=before_scenario)
    except _RunStopped:
        return _operation_stop(operation_id, attempt)
    except (DatabaseError, InterfaceError):
        # The heartbeat could not reach the database (the engine never touches it): that is not the
        # batch's fault, so the operation is not failed. The run is abandoned; its lease lapses
        # and lease recovery runs it again.
        raise
    except Exception:
        # The batch as a whole could not run. The traceback goes to the log (with the correlation
        # id); the stored error is a fixed message, never the exception's text.
        logger.exception("operation %s attempt %s failed", operation_id, attempt)
        return operation_fail(
            operation_id,
            attempt,
            operation_failure(
                ENGINE_ERROR,
                f"The batch could not be run because of an internal error; the service log has the "
                f"details under correlation id {correlation_id}.",
            ),
        )
    return operation_complete(operation_id, attempt, result)


def _operation_heartbeat(operation_id: str, attempt: int) -> None:
    """Between scenarios: renews the lease, or stops the run if it was cancelled or taken away.

    One conditional UPDATE both checks and renews, so a cancel or a lease recovery is seen before
    the next scenario starts.
    """
    now = timezone.now()
    lease_end = now + _lease()
    renewed = Operation.objects.filter(
        pk=operation_id, status=RUNNING, attempt=attempt, cancel_requested=False
    ).update(lease_expires_at=lease_end, expires_at=lease_end + _ttl())
    if renewed != 1:
        raise _RunStopped()


# --- WORKER mode: the task's run, and its lease kept alive -----------------------------------

def operation_run_queued(operation_id: str) -> dict[str, Any]:
    """What WORKER mode's task does: claims the operation if it is still PENDING, and runs it.

    A task whose operation is no longer PENDING (run by a duplicate task or by `.../execute`,
    cancelled, expired, purged) does nothing, and of two tasks for one operation only one claim
    can win, so a task never runs an operation twice. While the batch runs, a background thread
    keeps the lease alive (`operation_lease_kept`). Returns what happened, which the task keeps as
    its result: `{"operation_id", "ran", "attempt", "recorded"}` (`recorded` false: the run lost
    the row meanwhile and its outcome was discarded).
    """
    operation = (
        Operation.objects.only("id", "status", "attempt", "expires_at", "correlation_id")
        .filter(pk=operation_id).first()
    )
    attempt = operation_claim(operation) if operation is not None and operation.status == PENDING else None
    if attempt is None:
        return {"operation_id": operation_id, "ran": False, "attempt": None, "recorded": False}
    # The worker's log lines about this run carry the operation's correlation id, as the web's do
    # (a stored ENGINE_ERROR message points to the log under that id).
    with correlation_id_bound(operation.correlation_id), operation_lease_kept(operation_id, attempt) as keeper:
        recorded = operation_run_claimed(operation_id, attempt, on_scenario=keeper.progressed)
    return {"operation_id": operation_id, "ran": True, "attempt": attempt, "recorded": recorded}


def _operation_lease_renew(operation_id: str, attempt: int) -> bool:
    """Pushes the lease of run `attempt` on; False once the row is no longer that run's.

    Unlike the between-scenario heartbeat it does not look at a cancel request: the run keeps its
    lease until it reaches the next scenario and stops there (the cancel wins either way).
    """
    lease_end = timezone.now() + _lease()
    renewed = Operation.objects.filter(pk=operation_id, status=RUNNING, attempt=attempt).update(
        lease_expires_at=lease_end, expires_at=lease_end + _ttl()
    )
    return renewed == 1


# A run that has not started a scenario for this many leases is taken for hung: its keeper stops
# renewing, so the lease lapses and recovery runs the operation again (300 s leases: 50 minutes,
# against seconds for the largest batch's slowest scenario).
LEASE_KEEPER_PATIENCE_LEASES = 10


class _LeaseKeeper(threading.Thread):
    """Renews a run's lease every third of the lease, in the background, until told to stop.

    The runner renews its lease before every scenario, but one scenario of a big portfolio (or the
    write of a 100 MB result) can outlast the lease; a healthy worker would then lose its operation
    to recovery and the batch would run twice. The thread has its own database connection (Django's
    are per thread), which it closes when it ends. It never stops the run: once the row is no
    longer this run's it just ends, and the runner finds out at its next write.

    It renews only while the run makes progress (`progressed()` at each scenario): a runner stuck
    for LEASE_KEEPER_PATIENCE_LEASES leases in one scenario is treated like a dead one, or a hung
    worker would hold its operation forever.
    """

    def __init__(self, operation_id: str, attempt: int) -> None:
        super().__init__(name=f"lease-keeper {operation_id} attempt {attempt}", daemon=True)
        self.operation_id = operation_id
        self.attempt = attempt
        self.stopping = threading.Event()
        self.last_progress = time.monotonic()

    def progressed(self) -> None:
        self.last_progress = time.monotonic()

    def run(self) -> None:
        lease = settings.DPM_ASYNC_EXECUTION_LEASE_SECONDS
        try:
            while not self.stopping.wait(lease / 3):
                if time.monotonic() - self.last_progress > LEASE_KEEPER_PATIENCE_LEASES * lease:
                    logger.error("operation %s attempt %s has been in one scenario for over %s s; no longer "
                                 "renewing its lease", self.operation_id, self.attempt,
                                 LEASE_KEEPER_PATIENCE_LEASES * lease)
                    return
                try:
                    if not _operation_lease_renew(self.operation_id, self.attempt):
                        return
                except (DatabaseError, InterfaceError):
                    # The database blinked (restart, failover): try again next time on a fresh
                    # connection; the lease has a third of its length of slack left.
                    logger.warning("could not renew the lease of operation %s", self.operation_id, exc_info=True)
                    connections.close_all()
        finally:
            connections.close_all()  # this thread's connections only


@contextmanager
def operation_lease_kept(operation_id: str, attempt: int) -> Iterator[_LeaseKeeper]:
    """Keeps the lease of run `attempt` renewed by a background thread while the block runs.

    Yields the keeper; call its `progressed()` as the run moves on (see _LeaseKeeper).
    """
    keeper = _LeaseKeeper(operation_id, attempt)
    keeper.start()
    try:
        yield keeper
    finally:
        keeper.stopping.set()
        # Bounded: a keeper stuck in a hung database call must not hold the worker; it is a daemon.
        keeper.join(timeout=settings.DPM_ASYNC_EXECUTION_LEASE_SECONDS)


def _cancelled_failure(while_status: str) -> dict[str, Any]:
    return operation_failure(
        OPERATION_CANCELLED, "The operation was cancelled.", {"cancelled_while": while_status}
    )


def _terminal_fields(now: datetime) -> dict[str, Any]:
    return {"finished_at": now, "expires_at": now + _ttl(), "lease_expires_at": None, "cancel_requested": False}


def _operation_stop(operation_id: str, attempt: int) -> bool:
    """Ends a run that was asked to cancel as FAILED OPERATION_CANCELLED; a fenced run ends silently."""
    now = timezone.now()
    stopped = Operation.objects.filter(
        pk=operation_id, status=RUNNING, attempt=attempt, cancel_requested=True
    ).update(status=FAILED, error=_cancelled_failure(RUNNING), **_terminal_fields(now))
    if stopped != 1:
        logger.info("operation %s attempt %s lost its lease; its run is discarded", operation_id, attempt)
    return stopped == 1


def operation_complete(operation_id: str, attempt: int, result: bytes) -> bool:
    """RUNNING -> SUCCEEDED with the encoded result, if this run still owns the row.

    A cancel that arrived during the last scenario wins: the run ends cancelled, since the caller
    was told it would. Returns whether this run's outcome was recorded.
    """
    now = timezone.now()
    try:
        completed = Operation.objects.filter(
            pk=operation_id, status=RUNNING, attempt=attempt, cancel_requested=False
        ).update(status=SUCCEEDED, result=result, **_terminal_fields(now))
    except Exception:
        # Storing the result itself failed (the database refused it): the operation must still end.
        logger.exception("storing the result of operation %s failed", operation_id)
        return operation_fail(
            operation_id,
            attempt,
            operation_failure(ENGINE_ERROR, "The result could not be stored."),
        )
    if completed == 1:
        return True
    return _operation_stop(operation_id, attempt)


def operation_fail(operation_id: str, attempt: int, error: dict[str, Any]) -> bool:
    """RUNNING -> FAILED with `error`, if this run still owns the row. Returns whether it did."""
    now = timezone.now()
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
    for _ in range(_RACE_RETRIES):
        now = timezone.now()
        live = Operation.objects.live(now).filter(pk=operation_id)
        if not scope.acts_on_all:
            live = live.visible_in(OperationScope(owner_id=scope.owner_id))
        if live.filter(status=PENDING).update(status=FAILED, error=_cancelled_failure(PENDING), **_terminal_fields(now)):
            break
        if live.filter(status=RUNNING).update(cancel_requested=True):
            break
        current = _operation_to_act_on(operation_id, scope)
        if current.is_terminal:
            raise OperationNotCancellable(current.id, current.status)
        # It went PENDING -> RUNNING (or back) between the two statements: try again.
    return operation_get(operation_id, scope=scope)


# --- expiry ----------------------------------------------------------------------------------

def operations_recover_expired_leases(
    *, now: datetime | None = None, dry_run: bool = False, enqueue: bool | None = None
) -> int:
    """Settles RUNNING operations whose runner died (its lease ran out); returns how many.

    Cancel requested -> FAILED OPERATION_CANCELLED; attempts used up (DPM_ASYNC_MAX_ATTEMPTS) ->
    FAILED EXECUTION_LEASE_EXPIRED; otherwise back to PENDING, to be executed again, and - with
    `enqueue`, by default in WORKER mode; the workers always pass it - handed to `operation_enqueue`
    (a requeued row with no task would sit PENDING forever). The failures are one conditional
    UPDATE each over the (small) set of RUNNING rows with a lapsed lease; the requeue is one
    conditional UPDATE per row, so that the one caller that moved a row is the one that enqueues it
    even when several workers recover at once. A runner that comes back later finds its attempt
    fenced off and its result is discarded.

    The failure and requeue statements leave alone a row whose cancel was requested after the
    first statement: a cancel that answered 200 always ends the operation cancelled (next round).
    """
    now = now or timezone.now()
    stale = Operation.objects.lease_expired(now)
    if dry_run:
        return stale.count()
    if enqueue is None:
        enqueue = execution_mode() == WORKER
    max_attempts = settings.DPM_ASYNC_MAX_ATTEMPTS
    cancelled = stale.filter(cancel_requested=True).update(
        status=FAILED, error=_cancelled_failure(RUNNING), **_terminal_fields(now)
    )
    exhausted = stale.filter(attempt__gte=max_attempts, cancel_requested=False).update(
        status=FAILED,
        error=operation_failure(
            EXECUTION_LEASE_EXPIRED,
            "The operation's runner stopped responding on every attempt; it was given up.",
            {"max_attempts": max_attempts},
        ),
        **_terminal_fields(now),
    )
    requeued = 0
    for operation_id, attempt in stale.filter(attempt__lt=max_attempts, cancel_requested=False).values_list(
        "pk", "attempt"
    ):
        moved = stale.filter(pk=operation_id, attempt=attempt, cancel_requested=False).update(
            status=PENDING, started_at=None, lease_expires_at=None, expires_at=now + _ttl()
        )
        if moved != 1:
            continue  # its runner finished, or another worker recovered it, in between
        requeued += 1
        logger.warning("operation %s lost its runner (attempt %s); requeued", operation_id, attempt)
        if enqueue:
            transaction.on_commit(lambda operation_id=operation_id: operation_enqueue(operation_id))
    return cancelled + exhausted + requeued


# How long a PENDING operation may have gone without a queued task before the workers' sweep
# enqueues one: far above the milliseconds between a submission's commit and its enqueue.
STRANDED_PENDING_AFTER = timedelta(seconds=60)
STRANDED_SWEEP_LIMIT = 500


def operations_enqueue_stranded(*, now: datetime | None = None) -> int:
    """WORKER mode: enqueues a task for PENDING operations that have none; returns how many.

    An operation is stranded when its task was never enqueued: the web process died between the
    commit and the enqueue, or the enqueue failed (`operation_enqueue` logs and carries on). Only a
    backend that can list its queued tasks can tell (the database backend can; see
    `operations.tasks.operation_ids_queued`); with another backend this does nothing. It looks at
    the oldest STRANDED_SWEEP_LIMIT operations PENDING for over STRANDED_PENDING_AFTER, so a long
    backlog costs one bounded query. Enqueueing one twice is harmless (one claim wins).
    """
    from operations.tasks import operation_ids_queued

    if execution_mode() != WORKER:
        return 0
    now = now or timezone.now()
    candidates = list(
        _live(now).pending().filter(created_at__lte=now - STRANDED_PENDING_AFTER)
        .order_by("created_at").values_list("pk", flat=True)[:STRANDED_SWEEP_LIMIT]
    )
    if not candidates:
        return 0
    queued = operation_ids_queued(candidates)
    if queued is None:
        return 0
    stranded = [operation_id for operation_id in candidates if operation_id not in queued]
    for operation_id in stranded:
        logger.warning("operation %s was PENDING with no task; enqueued", operation_id)
        operation_enqueue(operation_id)
    return len(stranded)


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
    now = now or timezone.now()
    candidates = Operation.objects.purgeable(now)
    if dry_run:
        return candidates.count()
    total = 0
    while True:
        batch_ids = candidates.order_by("expires_at").values("pk")[:batch_size]
        deleted, _ = Operation.objects.purgeable(now).filter(pk__in=batch_ids).only("pk").delete()
        total += deleted
        if deleted < batch_size:
            return total
