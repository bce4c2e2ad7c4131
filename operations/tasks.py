"""The django.tasks task of WORKER mode (docs/deployment.md).

A WORKER-mode submission stores the operation PENDING and, once that row is committed,
`operations.queue.operation_enqueue` enqueues `operation_run_task` with its id; a worker process
(`manage.py db_worker` with the default database backend) picks the task up and runs it. The task
carries nothing but the id: the request is read from the row, and whatever happened to the row
meanwhile (run by `.../execute`, cancelled, expired) decides whether there is anything to do.

The backend is the `TASKS` setting (`DPM_TASKS_BACKEND`), so nothing here depends on the database
backend except `operation_ids_queued`, which only the workers' sweep uses and which answers "cannot
tell" for any other backend.
"""

from __future__ import annotations

from django.db.models import CharField
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.tasks import TaskResultStatus, task
from django_tasks_db.backend import DatabaseBackend
from django_tasks_db.models import DBTaskResult

from operations.execution import QueuedRun, operation_run_queued


@task()
def operation_run_task(operation_id: str) -> QueuedRun:
    """Claims the operation if it is still PENDING and runs it; see `operation_run_queued`.

    Never raises for a normal outcome (lost claim, failed batch, cancel): those are in the
    operation. It fails only when the database does; the operation's lease then lapses and the
    workers' lease recovery runs it again, whatever the backend records about this task.
    """
    return operation_run_queued(operation_id)


def operation_ids_queued(operation_ids: list[str]) -> set[str] | None:
    """Which of `operation_ids` have an `operation_run_task` waiting in the queue.

    None when the backend cannot tell (any backend but django-tasks-db's DatabaseBackend). One
    query over the backend's READY tasks (a partial index keeps those apart from finished ones).
    """
    backend = operation_run_task.get_backend()
    if not isinstance(backend, DatabaseBackend):
        return None
    queued = (
        DBTaskResult.objects.filter(
            status=TaskResultStatus.READY, backend_name=backend.alias, task_path=operation_run_task.module_path
        )
        # The cast makes `__in` compare plain text (on a JSON key it would parse the ids as JSON).
        .annotate(operation_id=Cast(KT("args_kwargs__args__0"), CharField()))
        .filter(operation_id__in=operation_ids)
        .values_list("operation_id", flat=True)
    )
    return set(queued)
