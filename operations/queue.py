"""WORKER mode's hand-off to the tasks backend (docs/operations.md, "WORKER mode")."""

from __future__ import annotations

import logging

from operations.tasks import operation_run_task

logger = logging.getLogger(__name__)


def operation_enqueue(operation_id: str) -> bool:
    """Enqueues the task that claims and runs the operation; True if it did.

    Called once the PENDING row is committed (a worker must be able to see it), and by lease
    recovery for each operation it took back to PENDING (a requeued row with no task would sit
    forever). It never raises: the row is already stored, so a failure to enqueue must not turn
    into a 500 for a submission that succeeded; it is logged, and the workers' sweep
    (`operations_enqueue_stranded`) enqueues such an operation again. A duplicate task is harmless:
    only one claim can win.
    """
    try:
        operation_run_task.enqueue(operation_id)
    except Exception:
        logger.exception("could not enqueue operation %s; the workers' sweep will enqueue it again", operation_id)
        return False
    return True
