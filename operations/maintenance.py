"""Keeping the store healthy: settling dead runs, enqueueing stranded work, purging expired rows.

The workers' sweeper (`manage.py db_worker`) runs the first two every
DPM_ASYNC_RECOVERY_INTERVAL_SECONDS; cron runs `manage.py purge_expired_operations`, which settles
lapsed leases too (docs/operations.md, "Expiry and purge").
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta

from django.db import transaction

from operations.clock import earlier, now_or_database
from operations.config import WORKER, execution_mode
from operations.metrics import lease_recoveries_tally, purged_tally
from operations.models import Operation
from operations.queue import operation_enqueue
from operations.services import operations_leases_settle, operations_purge_expired
from operations.tasks import operation_ids_queued

logger = logging.getLogger(__name__)

# How long a PENDING operation may have gone without a queued task before the workers' sweep
# enqueues one: far above the milliseconds between a submission's commit and its enqueue.
STRANDED_PENDING_AFTER = timedelta(seconds=60)
STRANDED_SWEEP_LIMIT = 500


def operations_recover_expired_leases(
    *, now: datetime | None = None, dry_run: bool = False, enqueue: bool | None = None
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
    settled = operations_leases_settle(now=now)
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
