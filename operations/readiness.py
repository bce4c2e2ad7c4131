"""What the operations add to `/health/ready` (dpm_async/health.py; docs/deployment.md, "Readiness")."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings

from operations.clock import database_now, earlier, now_or_database
from operations.config import WORKER, execution_mode
from operations.heartbeats import workers_seen_since
from operations.models import Operation


def workers_ready() -> tuple[str, bool]:
    """WORKER mode: not ready when PENDING work has waited longer than the window
    (DPM_READY_MAX_PENDING_AGE_SECONDS) and no worker has sent a heartbeat within it.

    Old work with live workers is a busy fleet, not a missing one: ready (the queue age metric and
    its alert tell that story). Two indexed reads: the oldest live PENDING operation, then, only
    if it is too old, whether any heartbeat is recent.
    """
    mode = execution_mode()
    if mode != WORKER:
        return f"not checked (execution mode {mode})", True
    window = timedelta(seconds=settings.DPM_READY_MAX_PENDING_AGE_SECONDS)
    # The database's clock, as for every lease and expiry (operations/clock.py).
    oldest = (
        Operation.objects.live().pending().filter(created_at__lt=earlier(now_or_database(), window))
        .order_by("created_at").values_list("created_at", flat=True).first()
    )
    if oldest is None or workers_seen_since(earlier(now_or_database(), window)):
        return "ok", True
    waited = int((database_now() - oldest).total_seconds())
    return (f"PENDING operations have waited {waited} s and no worker has sent a heartbeat within "
            f"{int(window.total_seconds())} s"), False
