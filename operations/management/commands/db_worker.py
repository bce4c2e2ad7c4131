"""`manage.py db_worker`: django-tasks-db's worker, plus the operations' lease recovery.

This command shadows the backend's own `db_worker` (the first app in INSTALLED_APPS wins, and
"operations" comes before "django_tasks_db"), so a worker started the documented way - `make worker`
or any `manage.py db_worker ...` line - also recovers dead workers' operations, with nobody acting:

- a sweeper thread runs at start and then every DPM_ASYNC_RECOVERY_INTERVAL_SECONDS (jittered, so
  a fleet started together does not sweep in step): it settles RUNNING operations whose lease ran
  out (`operations_recover_expired_leases`) and enqueues a task for each one it took back to
  PENDING, and enqueues one for PENDING operations whose task was never enqueued
  (`operations_enqueue_stranded`). Every worker sweeps; the conditional UPDATEs make concurrent
  sweeps harmless. So a SIGKILLed worker's operation runs again within the lease plus one sweep
  interval plus the queue's polling interval;
- a database restart does not end the worker: the backend's loop raises on a lost connection, and
  this command starts it again after a short pause (a task interrupted by it leaves its operation
  RUNNING, and the lease recovery takes it from there).

All arguments are the backend's (`--interval`, `--queue-name`, `--max-tasks`, `--batch`, ...).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand

from operations.maintenance import operations_enqueue_stranded, operations_recover_expired_leases

logger = logging.getLogger("operations.worker")

# Pause before the worker loop is started again after the database went away.
RESTART_PAUSE_SECONDS = 5.0


class OperationsSweeper(threading.Thread):
    """Every `interval` seconds: lease recovery and stranded-PENDING enqueue, on its own connection."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="operations-sweeper", daemon=True)
        self.interval = interval
        self.stopping = threading.Event()
        # Set after each round (tests wait on it instead of polling the database).
        self.swept = threading.Event()

    def sweep_once(self) -> None:
        """One round; never raises (the sweeper must outlive any one bad round)."""
        try:
            recovered = operations_recover_expired_leases(enqueue=True)
            stranded = operations_enqueue_stranded()
            if recovered or stranded:
                logger.info("settled %s operation(s) with an expired lease; enqueued %s stranded one(s)",
                            recovered, stranded)
        except (DatabaseError, InterfaceError):
            logger.warning("the operations sweep could not reach the database", exc_info=True)
        except Exception:
            logger.exception("the operations sweep failed")
        finally:
            connections.close_all()  # this thread's connection; a fresh one next round
            self.swept.set()

    def run(self) -> None:
        while True:
            self.sweep_once()
            if self.stopping.wait(self.interval * random.uniform(0.8, 1.2)):  # noqa: S311 - jitter
                return


class Command(DatabaseWorkerCommand):
    help = (
        "Runs a database tasks worker (django-tasks-db), which runs WORKER-mode operations; it also "
        "settles operations whose worker died (expired lease) and enqueues them again, at start and "
        "every DPM_ASYNC_RECOVERY_INTERVAL_SECONDS."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # With --reload the parent process only watches files; the child does the work.
        works = not options["reload"] or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"
        sweeper = OperationsSweeper(settings.DPM_ASYNC_RECOVERY_INTERVAL_SECONDS) if works else None
        if sweeper is not None:
            sweeper.start()
        try:
            while True:
                try:
                    super().handle(*args, **options)
                    return
                except (DatabaseError, InterfaceError):
                    if options["batch"] or not works:
                        raise
                    logger.exception("the worker lost the database; starting again in %s s", RESTART_PAUSE_SECONDS)
                    connections.close_all()
                    time.sleep(RESTART_PAUSE_SECONDS)
        finally:
            if sweeper is not None:
                sweeper.stopping.set()
