"""WORKER mode with real `manage.py db_worker` processes on PostgreSQL (spec/api.md section 3).

The submissions and the cancel go through the HTTP API in this process (WORKER mode: each
submission enqueues its task on commit); the workers are separate processes on the same test
database, with a 4 s lease so that recovery takes seconds. Killing (SIGKILL) and freezing (SIGSTOP)
a worker are the real thing. What a task did is read back from its result row in the tasks backend:
`{"operation_id", "ran", "attempt", "recorded"}` (see operations.execution.operation_run_queued).
"""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import orjson
import pytest
from django.db import connection
from django.tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from operations import queue
from operations.models import Operation, OperationStatus
from tests.factories.bodies import big_batch, small_batch
from tests.factories.operations import ASYNC_URL
from tests.workers.processes import LEASE_SECONDS, WorkerProcess, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.workers, pytest.mark.django_db(transaction=True)]

SUCCEEDED, FAILED, RUNNING = OperationStatus.SUCCEEDED, OperationStatus.FAILED, OperationStatus.RUNNING


def submit(client: Any, body: dict[str, Any], correlation_id: str) -> str:
    response = client.post(ASYNC_URL, data=json.dumps(body), content_type="application/json",
                           headers={"X-Correlation-Id": correlation_id})
    assert response.status_code == 202, response.content[:500]
    resource = json.loads(response.content)
    assert resource["status"] == "PENDING"  # WORKER mode answers at once
    return resource["operation_id"]


def row(operation_id: str) -> Operation:
    return Operation.objects.only("status", "attempt", "error", "finished_at", "scenarios_done",
                                  "scenarios_total", "current_scenario").get(pk=operation_id)


def mid_batch(operation_id: str, done: int = 1) -> Operation:
    """Waits until the run has finished `done` scenarios (and is still RUNNING): its progress, not a clock."""
    def reached() -> Operation | None:
        current = row(operation_id)
        return current if current.status == RUNNING and current.scenarios_done >= done else None

    return wait_for(reached, timeout=60, every=0.02, what=f"{done} scenario(s) done")


def tasks_of(operation_id: str) -> list[DBTaskResult]:
    return [t for t in DBTaskResult.objects.order_by("enqueued_at") if t.args_kwargs["args"] == [operation_id]]


def runner_of(operation_id: str, workers: list[WorkerProcess]) -> WorkerProcess:
    """The worker running the operation, once it is RUNNING (from the task's worker id)."""
    def running_task() -> DBTaskResult | None:
        if row(operation_id).status != RUNNING:
            return None
        return next((t for t in tasks_of(operation_id) if t.status == TaskResultStatus.RUNNING), None)

    task = wait_for(running_task, timeout=30, what="the operation to be RUNNING")
    return next(w for w in workers if w.worker_id == task.worker_ids[-1])


def result_digest(operation_id: str) -> str:
    with connection.cursor() as cursor:  # md5 on the server: the envelope and every stored scenario frame
        cursor.execute(
            "SELECT md5(o.result_envelope::text || string_agg(md5(r.body), '' ORDER BY r.position)) "
            "FROM operations_operation o JOIN operations_operationscenarioresult r ON r.operation_id = o.id "
            "WHERE o.id = %s GROUP BY o.result_envelope::text", [operation_id])
        return cursor.fetchone()[0]


def test_two_workers_drain_thirty_operations_exactly_once(client, start_workers):
    workers = start_workers("w-a", "w-b")
    # Frozen while the submissions land, released together: both drain the same backlog.
    for worker in workers:
        worker.signal(signal.SIGSTOP)
    operation_ids = [submit(client, small_batch(), f"drain-{n}") for n in range(30)]
    for worker in workers:
        worker.signal(signal.SIGCONT)

    wait_for(lambda: Operation.objects.filter(pk__in=operation_ids, status=SUCCEEDED).count() == 30,
             timeout=60, what="30 operations to succeed")
    assert set(Operation.objects.filter(pk__in=operation_ids).values_list("status", "attempt")) == {(SUCCEEDED, 1)}
    # One task per operation, each ran its batch once (the engine ran 30 times, no more). A task
    # row is settled just after its operation.
    wait_for(lambda: DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == 30,
             timeout=30, what="the tasks to end")
    task_rows = list(DBTaskResult.objects.all())
    assert len(task_rows) == 30
    assert sorted(t.return_value["operation_id"] for t in task_rows if t.return_value["ran"]) == sorted(operation_ids)
    assert {t.status for t in task_rows} == {TaskResultStatus.SUCCESSFUL}
    assert {t.worker_ids[-1] for t in task_rows} == {"w-a", "w-b"}  # both took part
    batch_run_ids = {orjson.loads(o.result_envelope)["batch_run_id"] for o in Operation.objects.filter(pk__in=operation_ids)}
    assert len(batch_run_ids) == 30


def test_duplicate_tasks_taken_by_two_workers_at_once_run_each_operation_once(client, start_workers):
    workers = start_workers("w-a", "w-b")
    for worker in workers:
        worker.signal(signal.SIGSTOP)
    operation_ids = []
    for n in range(15):
        operation_ids.append(submit(client, small_batch(), f"dup-{n}"))
        queue.operation_enqueue(operation_ids[-1])  # right behind the first: the two workers race
    for worker in workers:
        worker.signal(signal.SIGCONT)

    wait_for(lambda: DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).count() == 30,
             timeout=60, what="30 tasks to end")
    assert set(Operation.objects.filter(pk__in=operation_ids).values_list("status", "attempt")) == {(SUCCEEDED, 1)}
    ran = sorted((t.return_value["operation_id"], t.return_value["ran"]) for t in DBTaskResult.objects.all())
    assert ran == sorted([(o, True) for o in operation_ids] + [(o, False) for o in operation_ids])


def test_a_worker_killed_mid_batch_is_replaced_by_another_with_attempt_2(client, start_workers):
    workers = start_workers("w-a", "w-b")
    operation_id = submit(client, big_batch(lines=3000, scenarios=20), "killed-1")
    victim = runner_of(operation_id, workers)
    survivor = next(w for w in workers if w is not victim)
    assert mid_batch(operation_id).attempt == 1

    victim.kill()
    killed_at = time.monotonic()
    wait_for(lambda: row(operation_id).status == SUCCEEDED, timeout=90, every=0.2, what="the rerun to succeed")
    took = time.monotonic() - killed_at

    assert row(operation_id).attempt == 2
    # The task row is settled just after the operation (its return value is the run's summary).
    wait_for(lambda: tasks_of(operation_id)[-1].status == TaskResultStatus.SUCCESSFUL, timeout=30,
             what="the second task to end")
    first, second = tasks_of(operation_id)
    # django-tasks-db never settles the killed worker's task: it stays RUNNING in its table.
    # Recovery did not need it: the lapsed lease of the operation is what counts.
    assert (first.status, first.worker_ids) == (TaskResultStatus.RUNNING, [victim.worker_id])
    assert (second.status, second.worker_ids) == (TaskResultStatus.SUCCESSFUL, [survivor.worker_id])
    assert second.return_value == {"operation_id": operation_id, "ran": True, "attempt": 2, "recorded": True}
    # Lease, then at most one sweep interval (a quarter of the lease here), then the rerun itself.
    assert took < LEASE_SECONDS + 30, took


def test_a_frozen_worker_that_wakes_up_late_cannot_overwrite_the_rerun(client, start_workers):
    workers = start_workers("w-a", "w-b")
    operation_id = submit(client, big_batch(lines=3000, scenarios=20), "stale-1")
    stale = runner_of(operation_id, workers)
    mid_batch(operation_id)
    stale.signal(signal.SIGSTOP)  # a hung VM, a GC pause: alive, but its lease runs out

    wait_for(lambda: row(operation_id).status == SUCCEEDED, timeout=90, every=0.2, what="the rerun to succeed")
    finished = row(operation_id)
    assert finished.attempt == 2
    digest = result_digest(operation_id)

    stale.signal(signal.SIGCONT)
    stale_task = tasks_of(operation_id)[0]
    wait_for(lambda: DBTaskResult.objects.get(pk=stale_task.pk).status == TaskResultStatus.SUCCESSFUL,
             timeout=60, every=0.2, what="the stale worker to finish its task")
    # It ran (attempt 1), but nothing it wrote landed: fenced off by the attempt number.
    assert DBTaskResult.objects.get(pk=stale_task.pk).return_value == {
        "operation_id": operation_id, "ran": True, "attempt": 1, "recorded": False
    }
    after = row(operation_id)
    assert (after.status, after.attempt, after.finished_at) == (SUCCEEDED, 2, finished.finished_at)
    assert result_digest(operation_id) == digest


def test_cancel_reaches_a_running_operation_between_scenarios(client, start_workers):
    [worker] = start_workers("w-a")
    operation_id = submit(client, big_batch(lines=3000, scenarios=20), "cancel-1")
    runner_of(operation_id, [worker])
    mid_batch(operation_id)

    response = client.post(f"/rebalance/operations/{operation_id}/cancel")
    assert response.status_code == 200
    answered = json.loads(response.content)
    # The answer says so at once (unless the run already stopped, which it cannot before its next scenario).
    assert (answered["status"], answered["cancel_requested"]) in (("RUNNING", True), ("FAILED", False))
    done_when_cancelled = answered["progress"]["scenarios_done"]

    wait_for(lambda: row(operation_id).status == FAILED, timeout=60, every=0.02, what="the run to stop")
    resource = json.loads(client.get(f"/rebalance/operations/{operation_id}").content)
    assert (resource["status"], resource["attempt"], resource["result"]) == ("FAILED", 1, None)
    # It stopped at the next scenario, not at the end of the batch: at most one more scenario was
    # finished after the cancel, and the last one never ran.
    progress = resource["progress"]
    assert done_when_cancelled <= progress["scenarios_done"] <= done_when_cancelled + 1 < 20
    assert (progress["scenarios_total"], progress["current_scenario"]) == (20, None)
    assert len(resource["scenario_statuses"]) == progress["scenarios_done"]
    assert "s19" not in resource["scenario_statuses"]
    assert not Operation.objects.get(pk=operation_id).scenario_results.exists()
    assert resource["error"] == {"code": "OPERATION_CANCELLED", "message": "The operation was cancelled.",
                                 "details": {"cancelled_while": "RUNNING"}}
    wait_for(lambda: tasks_of(operation_id)[0].status == TaskResultStatus.SUCCESSFUL, timeout=10,
             what="the task to end")
    assert tasks_of(operation_id)[0].return_value["recorded"] is True  # it recorded the cancel


def test_a_poll_sees_the_progress_of_a_worker_run_advance(client, start_workers):
    [worker] = start_workers("w-a")
    operation_id = submit(client, big_batch(lines=3000, scenarios=20), "progress-1")
    url = f"/rebalance/operations/{operation_id}"
    seen: list[int] = []
    etag = None

    def finished() -> bool:  # polls the summary, as a client should: it never carries the ~100 MB result
        nonlocal etag
        response = client.get(f"{url}/summary", headers={"If-None-Match": etag} if etag else {})
        if response.status_code == 304:  # nothing moved since the last poll
            return False
        etag = response["ETag"]
        resource = json.loads(response.content)
        if resource["status"] == "RUNNING":
            seen.append(resource["progress"]["scenarios_done"])
            assert 1 <= int(response["Retry-After"]) <= 30
            # Claimed but not yet at its first scenario (the request is being read): none current yet.
            assert resource["progress"]["current_scenario"] is not None or resource["progress"]["scenarios_done"] == 0
        return resource["status"] == "SUCCEEDED"

    wait_for(finished, timeout=120, every=0.05, what="the run to succeed")
    intermediate = sorted(set(seen) - {0})
    assert seen == sorted(seen)  # never backwards
    assert len([n for n in intermediate if 0 < n < 20]) >= 3, seen  # seen advancing through the batch
    summary = json.loads(client.get(f"{url}/summary").content)
    assert summary["progress"] == {"scenarios_total": 20, "scenarios_done": 20, "scenarios_failed": 0,
                                   "current_scenario": None}
    assert list(summary["scenario_statuses"]) == [f"s{n:02d}" for n in range(20)]
    assert list(summary["result_summary"]["comparison_metrics"]) == [f"s{n:02d}" for n in range(20)]
