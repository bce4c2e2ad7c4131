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
  RUNNING, and the lease recovery takes it from there);
- a heartbeat thread records every few seconds that the worker is alive (operations/heartbeats.py),
  which readiness reads in WORKER mode; the row is removed when the worker stops;
- with DPM_WORKER_METRICS_PORT set, it serves its Prometheus metrics on that port (runs finished,
  their durations, scenarios run);
- every log line about a task - the backend's own "Task … state=RUNNING" lines included - carries
  the operation id and correlation id of the operation it runs.

All arguments are the backend's (`--interval`, `--queue-name`, `--max-tasks`, `--batch`, ...).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import DatabaseError, InterfaceError, connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV
from django_tasks_db.management.commands import db_worker as database_worker
from django_tasks_db.management.commands.db_worker import Command as DatabaseWorkerCommand
from django_tasks_db.models import DBTaskResult
from prometheus_client import start_http_server

from dpm_async.correlation import correlation_id_bound, operation_id_bound
from operations.heartbeats import HeartbeatThread, heartbeat_interval
from operations.maintenance import OperationsSweeper
from operations.models import Operation
from operations.tasks import operation_run_task

logger = logging.getLogger("operations.worker")

# Pause before the worker loop is started again after the database went away.
RESTART_PAUSE_SECONDS = 5.0


class OperationsWorker(database_worker.Worker):
    """django-tasks-db's worker, running each task with its operation's ids bound for the log."""

    def run_task(self, db_task_result: DBTaskResult[Any, Any]) -> None:
        operation_id = _operation_id_of(db_task_result)
        if operation_id is None:
            super().run_task(db_task_result)
            return
        # One primary-key read, so that the backend's own lines before the task runs ("state=RUNNING")
        # carry the correlation id too.
        correlation_id = Operation.objects.filter(pk=operation_id).values_list("correlation_id", flat=True).first()
        with operation_id_bound(operation_id):
            if correlation_id is None:
                super().run_task(db_task_result)
                return
            with correlation_id_bound(correlation_id):
                super().run_task(db_task_result)


def _operation_id_of(db_task_result: DBTaskResult[Any, Any]) -> str | None:
    if db_task_result.task_path != operation_run_task.module_path:
        return None
    arguments = (db_task_result.args_kwargs or {}).get("args") or []
    return arguments[0] if arguments and isinstance(arguments[0], str) else None


# The backend's command builds its `Worker` by this module-level name; pointing the name at the
# subclass is the one seam it offers short of copying its `handle`.
database_worker.Worker = OperationsWorker  # type: ignore[misc]


class Command(DatabaseWorkerCommand):
    help = (
        "Runs a database tasks worker (django-tasks-db), which runs WORKER-mode operations; it also "
        "settles operations whose worker died (expired lease) and enqueues them again, at start and "
        "every DPM_ASYNC_RECOVERY_INTERVAL_SECONDS."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # With --reload the parent process only watches files; the child does the work.
        works = not options["reload"] or os.environ.get(DJANGO_AUTORELOAD_ENV) == "true"
        sweeper = OperationsSweeper(settings.DPM_ASYNC_RECOVERY_INTERVAL_SECONDS, enqueue=True) if works else None
        heartbeat = HeartbeatThread(options["worker_id"], heartbeat_interval()) if works else None
        if works and settings.DPM_WORKER_METRICS_PORT is not None:
            self._serve_metrics(settings.DPM_WORKER_METRICS_ADDRESS, settings.DPM_WORKER_METRICS_PORT)
        for thread in (sweeper, heartbeat):
            if thread is not None:
                thread.start()
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
            if heartbeat is not None:
                heartbeat.stopping.set()
                heartbeat.join(timeout=5)  # so that its row is removed before the process ends

    def _serve_metrics(self, address: str, port: int) -> None:
        try:
            start_http_server(port, addr=address)
        except OSError as error:
            raise CommandError(
                f"DPM_WORKER_METRICS_PORT={port}: cannot serve metrics on {address}:{port} ({error.strerror}); "
                "give each worker on a host its own port"
            ) from None
        logger.info("serving metrics on http://%s:%s/metrics", address, port)
