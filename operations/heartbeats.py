"""Workers' heartbeats: each `manage.py db_worker` says every few seconds that it is alive, and
readiness (WORKER mode) asks whether anyone did lately (docs/deployment.md, "Readiness")."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from operations.clock import Instant, earlier, now_or_database
from operations.models import WorkerHeartbeat
from operations.periodic import PeriodicDatabaseThread

# Rows of workers that stopped without removing theirs (killed) are deleted after this long.
HEARTBEAT_FORGOTTEN_AFTER = timedelta(days=1)


def heartbeat_interval() -> float:
    """How often a worker beats: a quarter of the readiness window, between 1 and 10 seconds, so a
    live worker is never missed by a probe and an idle fleet writes little."""
    return max(1.0, min(10.0, settings.DPM_READY_MAX_PENDING_AGE_SECONDS / 4))


def worker_heartbeat_record(worker_id: str, *, started_at: datetime, now: datetime | None = None) -> None:
    """Records that `worker_id` is alive now, on the database's clock (one UPDATE; an INSERT on its
    first beat)."""
    at = now_or_database(now)
    if not WorkerHeartbeat.objects.filter(pk=worker_id).update(seen_at=at):
        WorkerHeartbeat.objects.update_or_create(
            worker_id=worker_id,
            defaults={"hostname": socket.gethostname()[:255], "pid": os.getpid(), "started_at": started_at, "seen_at": at},
        )


def worker_heartbeat_remove(worker_id: str) -> None:
    WorkerHeartbeat.objects.filter(pk=worker_id).delete()


def worker_heartbeats_forget_old(now: datetime | None = None) -> int:
    deleted, _ = WorkerHeartbeat.objects.filter(
        seen_at__lt=earlier(now_or_database(now), HEARTBEAT_FORGOTTEN_AFTER)
    ).delete()
    return deleted


def workers_seen_since(instant: Instant) -> bool:
    return WorkerHeartbeat.objects.filter(seen_at__gte=instant).exists()


class HeartbeatThread(PeriodicDatabaseThread):
    """Beats every `interval` seconds on its own connection until stopped; removes its row then.

    A separate thread, so a worker busy with a long batch still beats: a busy worker is alive,
    and readiness must not take it for a missing one. A beat that fails (an outage) is one WARNING
    line; killed workers' rows are forgotten by the others' beats after a day.
    """

    doing = "the worker's heartbeat"

    def __init__(self, worker_id: str, interval: float) -> None:
        super().__init__("worker-heartbeat", interval)
        self.worker_id = worker_id
        self.started_at = timezone.now()

    def work(self) -> None:
        worker_heartbeat_record(self.worker_id, started_at=self.started_at)
        worker_heartbeats_forget_old()

    def at_stop(self) -> None:
        worker_heartbeat_remove(self.worker_id)  # else the row ages out
