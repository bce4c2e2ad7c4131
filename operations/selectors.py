"""Reads of operations: what the API, the admin and the runners look up (nothing here writes).

Every read goes through `Operation.objects.live(now)` (an expired operation is gone at once,
purged or not) and `visible_in(scope)` (another owner's operation does not exist for the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connections, transaction
from django.db.models import BooleanField, Case, ExpressionWrapper, Q, QuerySet, When
from django.db.models.functions import Now

from dpm_async.correlation import CORRELATION_ID_PATTERN
from operations.access import OperationScope
from operations.errors import OperationNotFound, OperationNotOwned
from operations.models import OPERATION_ID_PATTERN, Operation, OperationQuerySet, OperationStatus

# Fields a status answer (and a list item) needs: everything but the request and the envelope.
STATUS_FIELDS = (
    "id", "operation_type", "status", "correlation_id", "created_at", "started_at", "finished_at",
    "expires_at", "attempt", "owner", "cancel_requested", "scenarios_total", "scenarios_done",
    "scenarios_failed", "current_scenario", "scenario_statuses",
)


def _live() -> OperationQuerySet:
    """Live operations, each marked `lease_lapsed` when it is RUNNING and its runner's lease ran out
    (by the database's clock): such a run died, and operations/maintenance.py settles it first."""
    return Operation.objects.live().annotate(lease_lapsed=ExpressionWrapper(
        Q(status=OperationStatus.RUNNING, lease_expires_at__lte=Now()), output_field=BooleanField()
    ))


def operation_get(operation_id: str, *, scope: OperationScope) -> Operation:
    """The operation with its result envelope and error, in one query; 404 when unknown, expired or
    not visible in `scope`. The request is not loaded (no answer shows it), nor any scenario result
    (operations/results.py reads those when an answer needs them)."""
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


def operation_reload(operation_id: str) -> Operation:
    """The row as stored now (without the request), whatever happened to it meanwhile."""
    operation = Operation.objects.defer("request").filter(pk=operation_id).first()
    if operation is None:
        raise OperationNotFound()  # deleted by hand meanwhile: expiry never removes a fresh row
    return operation


def operation_status(operation_id: str, scope: OperationScope | None = None) -> Operation | None:
    """The status fields of a live operation (visible in `scope`, when given), or None."""
    live = _live() if scope is None else _live().visible_in(scope)
    return live.only(*STATUS_FIELDS).filter(pk=operation_id).first()


def operation_to_act_on(operation_id: str, scope: OperationScope) -> Operation:
    """The status row of an operation the caller may execute or cancel.

    OperationNotFound (404) when unknown, expired or not visible in `scope`; OperationNotOwned
    (403) when visible but someone else's (staff reading with the view permission). The owner of
    a row never changes, so this check cannot be raced.
    """
    operation = operation_status(operation_id, scope) if OPERATION_ID_PATTERN.fullmatch(operation_id) else None
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
