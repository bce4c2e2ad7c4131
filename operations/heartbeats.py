"""Workers' heartbeats: each `manage.py db_worker` says every few seconds that it is alive, and
readiness (WORKER mode) asks whether anyone did lately (docs/deployment.md, "Readiness")."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, InterfaceError, connections
from django.utils import timezone

from operations.clock import Instant, earlier, now_or_database
from operations.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

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


class HeartbeatThread(threading.Thread):
    """Beats every `interval` seconds on its own connection until stopped; removes its row then.

    A separate thread, so a worker busy with a long batch still beats: a busy worker is alive,
    and readiness must not take it for a missing one.
    """

    def __init__(self, worker_id: str, interval: float) -> None:
        super().__init__(name="worker-heartbeat", daemon=True)
        self.worker_id = worker_id
        self.interval = interval
        self.started_at = timezone.now()
        self.stopping = threading.Event()
        # Set after each beat (tests wait on it instead of polling the database).
        self.beaten = threading.Event()

    def beat_once(self) -> None:
        """One beat; never raises (a database outage must not end the thread)."""
        try:
            worker_heartbeat_record(self.worker_id, started_at=self.started_at)
            worker_heartbeats_forget_old()
        except (DatabaseError, InterfaceError) as error:
            logger.warning("the worker's heartbeat could not reach the database (%s)", type(error).__name__)
        except Exception:
            logger.exception("the worker's heartbeat failed")
        finally:
            connections.close_all()  # this thread's connection; a fresh one next beat
            self.beaten.set()

    def run(self) -> None:
        while not self.stopping.is_set():
            self.beat_once()
            self.stopping.wait(self.interval)
        try:
            worker_heartbeat_remove(self.worker_id)
        except Exception:  # noqa: BLE001 - the row then ages out; stopping must not fail
            logger.warning("the worker could not remove its heartbeat", exc_info=True)
        finally:
            connections.close_all()
