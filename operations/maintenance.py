"""Keeping the store healthy: settling dead runs, enqueueing stranded work, purging expired rows.

The workers' sweeper (`manage.py db_worker`) runs the first two every
DPM_ASYNC_RECOVERY_INTERVAL_SECONDS; cron runs `manage.py purge_expired_operations`, which settles
lapsed leases too (docs/operations.md, "Expiry and purge"), and so does the support console's
"Purge expired now" button: both call `operations_maintain`.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from operations.access import OperationScope
from operations.clock import earlier, now_or_database
from operations.config import WORKER, execution_mode
from operations.metrics import lease_recoveries_tally, purged_tally
from operations.models import Operation
from operations.periodic import PeriodicDatabaseThread
from operations.queue import operation_enqueue
from operations.selectors import (
    OperationFilters,
    OperationPage,
    operation_get,
    operation_get_by_correlation,
    operations_list,
)
from operations.services import PURGE_BATCH_SIZE, operations_leases_settle, operations_purge_expired
from operations.tasks import operation_ids_queued

logger = logging.getLogger(__name__)

# How long a PENDING operation may have gone without a queued task before the workers' sweep
# enqueues one: far above the milliseconds between a submission's commit and its enqueue.
STRANDED_PENDING_AFTER = timedelta(seconds=60)
STRANDED_SWEEP_LIMIT = 500


def operations_recover_expired_leases(
    *, now: datetime | None = None, dry_run: bool = False, enqueue: bool | None = None,
    operation_id: str | None = None,
) -> int:
    """Settles RUNNING operations whose runner died (services.operations_leases_settle); returns how many.

    With `enqueue` (by default in WORKER mode; the workers always pass it) each operation taken
    back to PENDING is handed to `operation_enqueue` once that is committed: a requeued row with no
    task would sit PENDING forever.
    """
    if dry_run:
        return Operation.objects.lease_expired(now).count()
    if enqueue is None:
        enqueue = execution_mode() == WORKER
    settled = operations_leases_settle(now=now, operation_id=operation_id)
    lease_recoveries_tally(requeued=len(settled.requeued), failed=settled.exhausted, cancelled=settled.cancelled)
    if enqueue:
        for operation_id in settled.requeued:
            transaction.on_commit(functools.partial(operation_enqueue, operation_id))
    return settled.total


def operations_enqueue_stranded(*, now: datetime | None = None) -> int:
    """WORKER mode: enqueues a task for PENDING operations that have none; returns how many.

    An operation is stranded when its task was never enqueued: the web process died between the
    commit and the enqueue, or the enqueue failed (`operation_enqueue` logs and carries on). Only a
    backend that can list its queued tasks can tell (the database backend can; see
    `operations.tasks.operation_ids_queued`); with another backend this does nothing. It looks at
    the oldest STRANDED_SWEEP_LIMIT operations PENDING for over STRANDED_PENDING_AFTER, so a long
    backlog costs one bounded query. Enqueueing one twice is harmless (one claim wins).
    """
    if execution_mode() != WORKER:
        return 0
    at = now_or_database(now)
    candidates = list(
        Operation.objects.live(at).pending().filter(created_at__lte=earlier(at, STRANDED_PENDING_AFTER))
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


def operations_purge(*, batch_size: int, dry_run: bool = False) -> int:
    """`services.operations_purge_expired`, added to the purged tally that /metrics exports (the
    purge runs from cron, which nobody scrapes)."""
    purged = operations_purge_expired(batch_size=batch_size, dry_run=dry_run)
    if not dry_run:
        purged_tally(purged)
    return purged


@dataclass(frozen=True)
class MaintenanceRound:
    """What `operations_maintain` did (with `dry_run`, would do)."""

    recovered: int  # RUNNING operations with a lapsed lease, settled
    purged: int  # expired operations deleted


def operations_maintain(*, batch_size: int = PURGE_BATCH_SIZE, dry_run: bool = False) -> MaintenanceRound:
    """Cron's round, and the support console's "Purge expired now": lapsed leases are settled first
    (so a dead run's row is terminal and can expire), then expired rows are purged."""
    recovered = operations_recover_expired_leases(dry_run=dry_run)
    purged = operations_purge(batch_size=batch_size, dry_run=dry_run)
    return MaintenanceRound(recovered=recovered, purged=purged)


# --- reads that settle a dead run first ------------------------------------------------------------
#
# A RUNNING operation whose lease ran out lost its runner (its process died). Nothing has to wait
# for a sweep to notice: the read that finds it (`lease_lapsed`, selectors.py) settles it first -
# requeued, or failed where nothing can run it again - and answers what it became.


def _settled(read: Callable[[], Operation]) -> Operation:
    operation = read()
    if getattr(operation, "lease_lapsed", False):
        operations_recover_expired_leases(operation_id=operation.id)
        operation = read()
    return operation


def operation_get_current(operation_id: str, *, scope: OperationScope) -> Operation:
    """`selectors.operation_get`, with a dead run settled first."""
    return _settled(lambda: operation_get(operation_id, scope=scope))


def operation_get_by_correlation_current(correlation_id: str, *, scope: OperationScope) -> Operation:
    """`selectors.operation_get_by_correlation`, with a dead run settled first."""
    return _settled(lambda: operation_get_by_correlation(correlation_id, scope=scope))


def operations_list_current(
    filters: OperationFilters, *, scope: OperationScope, limit: int, after: tuple[datetime, str] | None = None
) -> OperationPage:
    """`selectors.operations_list`, with the page's dead runs settled first."""
    page = operations_list(filters, scope=scope, limit=limit, after=after)
    lapsed = [item.id for item in page.items if getattr(item, "lease_lapsed", False)]
    if not lapsed:
        return page
    for operation_id in lapsed:
        operations_recover_expired_leases(operation_id=operation_id)
    return operations_list(filters, scope=scope, limit=limit, after=after)


class OperationsSweeper(PeriodicDatabaseThread):
    """Every `interval` seconds: lease recovery and stranded-PENDING enqueue, on its own connection.

    Every `db_worker` runs one (enqueueing what it requeues), and so does every gunicorn worker
    process (gunicorn.conf.py; enqueueing by mode), so a dead run is settled within the lease plus
    one interval whatever the mode, with or without the cron. Concurrent sweeps are harmless:
    every settlement is a conditional UPDATE.
    """

    doing = "the operations sweep"

    def __init__(self, interval: float, *, enqueue: bool | None = None) -> None:
        super().__init__("operations-sweeper", interval, jitter=0.2)
        self.enqueue = enqueue

    def work(self) -> None:
        recovered = operations_recover_expired_leases(enqueue=self.enqueue)
        stranded = operations_enqueue_stranded()
        if recovered or stranded:
            logger.info("settled %s operation(s) with an expired lease; enqueued %s stranded one(s)",
                        recovered, stranded)


def operations_sweeper_start(*, enqueue: bool | None = None) -> OperationsSweeper:
    """Starts this process's sweeper, every DPM_ASYNC_RECOVERY_INTERVAL_SECONDS."""
    sweeper = OperationsSweeper(settings.DPM_ASYNC_RECOVERY_INTERVAL_SECONDS, enqueue=enqueue)
    sweeper.start()
    return sweeper
