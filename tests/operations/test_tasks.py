"""WORKER mode in process: the enqueue seam, the task, the lease keeper, recovery and the sweep.

The suite keeps the production tasks backend (django-tasks-db's DatabaseBackend), so a WORKER-mode
submission leaves a real task row in the test database, and `call_command("db_worker", "--batch")`
runs the real worker loop over it. The immediate backend is not used on purpose: it would run the
batch inside the submission's on-commit hook, in the request, which hides exactly the hand-off
these tests are about. Several worker processes, SIGKILL and SIGSTOP are in tests/workers.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command, get_commands
from django.db import OperationalError, connections
from django.tasks import TaskResultStatus
from django.test import override_settings
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from dpm_async.correlation import correlation_id_current
from operations import execution, leases, maintenance, queue, services, submission
from operations.maintenance import OperationsSweeper
from operations.models import Operation, OperationStatus
from operations.tasks import operation_run_task
from rebalance.parsing import batch_request_parse
from tests.factories.bodies import batch_body
from tests.factories.operations import operation_row, stored_outcome

PENDING, RUNNING, SUCCEEDED, FAILED = (OperationStatus.PENDING, OperationStatus.RUNNING,
                                       OperationStatus.SUCCEEDED, OperationStatus.FAILED)
TASK_PATH = "operations.tasks.operation_run_task"


def reload(operation: Operation) -> Operation:
    return Operation.objects.get(pk=operation.pk)


def queued_for(operation: Operation) -> list[DBTaskResult]:
    return [t for t in DBTaskResult.objects.filter(task_path=TASK_PATH) if t.args_kwargs["args"] == [operation.id]]


def submit(correlation_id: str) -> Operation:
    batch = batch_request_parse(batch_body())
    return submission.operation_submit(batch, correlation_id=correlation_id, owner_id=None).operation


# --- the enqueue seam ------------------------------------------------------------------------

@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER")
def test_worker_mode_enqueues_one_task_once_the_submission_commits(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        operation = submit("w-1")
    assert DBTaskResult.objects.count() == 0  # nothing before the commit: a worker could not see the row
    for callback in callbacks:
        callback()
    [queued] = DBTaskResult.objects.all()
    assert (queued.task_path, queued.args_kwargs, queued.status) == (
        TASK_PATH, {"args": [operation.id], "kwargs": {}}, TaskResultStatus.READY
    )
    assert reload(operation).status == PENDING


@pytest.mark.django_db
@pytest.mark.parametrize("mode", ["ACCEPT_ONLY", "INLINE"])
def test_other_modes_enqueue_nothing(mode, django_capture_on_commit_callbacks):
    with override_settings(DPM_ASYNC_EXECUTION_MODE=mode), django_capture_on_commit_callbacks(execute=True):
        submit("w-2")
    assert DBTaskResult.objects.count() == 0


@pytest.mark.django_db
def test_a_failed_enqueue_is_logged_not_raised(monkeypatch, caplog):
    operation = operation_row()

    class Unreachable:
        def enqueue(self, *args, **kwargs):
            raise ConnectionError("queue down")

    monkeypatch.setattr(queue, "operation_run_task", Unreachable())
    assert queue.operation_enqueue(operation.id) is False
    assert f"could not enqueue operation {operation.id}" in caplog.text


# --- the task --------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_the_task_claims_and_runs_the_operation_and_a_duplicate_does_nothing():
    operation = operation_row()
    first = operation_run_task.call(operation.id)
    stored = reload(operation)
    assert (stored.status, stored.attempt) == (SUCCEEDED, 1)
    assert first == {"operation_id": operation.id, "ran": True, "attempt": 1, "recorded": True}
    finished_at = stored.finished_at
    assert operation_run_task.call(operation.id) == {
        "operation_id": operation.id, "ran": False, "attempt": None, "recorded": False
    }
    assert reload(operation).finished_at == finished_at


@pytest.mark.django_db
@pytest.mark.parametrize("status", [RUNNING, SUCCEEDED, FAILED])
def test_a_task_for_an_operation_no_longer_pending_does_nothing(status):
    operation = operation_row(status=status)
    before = Operation.objects.filter(pk=operation.pk).values().get()
    assert operation_run_task.call(operation.id)["ran"] is False
    assert Operation.objects.filter(pk=operation.pk).values().get() == before


@pytest.mark.django_db
def test_a_task_for_an_expired_or_purged_operation_does_nothing():
    expired = operation_row(created_at=timezone.now() - timedelta(days=2))
    assert operation_run_task.call(expired.id)["ran"] is False
    assert reload(expired).status == PENDING
    assert operation_run_task.call("dop_" + "0" * 32)["ran"] is False


@pytest.mark.django_db
def test_the_task_logs_under_the_operation_s_correlation_id(monkeypatch):
    operation = operation_row(correlation_id="orch-77")
    seen = []

    def observe(batch, *, correlation_id, before_scenario, **kwargs):
        seen.append(correlation_id_current())
        return stored_outcome()

    monkeypatch.setattr(execution, "rebalance_analyze_batch", observe)
    operation_run_task.call(operation.id)
    assert seen == ["orch-77"]
    assert correlation_id_current() is None  # unbound afterwards


@pytest.mark.django_db(transaction=True)
@override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER")
def test_the_worker_loop_drains_the_queue_and_runs_each_operation_once():
    operations = [submit(f"w-loop-{i}") for i in range(3)]
    queue.operation_enqueue(operations[0].id)  # a duplicate task: harmless
    call_command("db_worker", "--batch", "--no-reload", "--no-startup-delay", "--interval", "0", verbosity=0)
    assert [(reload(o).status, reload(o).attempt) for o in operations] == [(SUCCEEDED, 1)] * 3
    outcomes = sorted(
        (t.args_kwargs["args"][0], t.return_value["ran"]) for t in DBTaskResult.objects.filter(task_path=TASK_PATH)
    )
    assert outcomes == sorted([(o.id, True) for o in operations] + [(operations[0].id, False)])
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {TaskResultStatus.SUCCESSFUL}


def test_db_worker_is_the_operations_command():
    # "operations" is listed before "django_tasks_db": its db_worker (with lease recovery) wins.
    assert get_commands()["db_worker"] == "operations"


def test_the_worker_starts_its_loop_again_after_losing_the_database(monkeypatch):
    from operations.management.commands import db_worker

    calls = []

    def backend_loop(self, *args, **options):
        calls.append(options["interval"])
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")

    monkeypatch.setattr(db_worker.DatabaseWorkerCommand, "handle", backend_loop)
    monkeypatch.setattr(db_worker, "RESTART_PAUSE_SECONDS", 0)
    monkeypatch.setattr(db_worker.OperationsSweeper, "run", lambda self: None)
    monkeypatch.setattr(db_worker.HeartbeatThread, "run", lambda self: None)
    call_command("db_worker", "--no-reload", "--interval", "0.5", verbosity=0)
    assert calls == [0.5, 0.5]


# --- the lease keeper: time is moved by the test, never slept -------------------------------

class Clock:
    """A stand-in for the keeper's clocks: the wall-clock instant and monotonic seconds move together."""

    def __init__(self) -> None:
        self.start = timezone.now()
        self.seconds = 0.0

    def advance(self, seconds: float) -> None:
        self.seconds += seconds

    def monotonic(self) -> float:
        return self.seconds

    def now(self):
        return self.start + timedelta(seconds=self.seconds)


def keeper_for(operation: Operation, attempt: int, clock: Clock, *, patience: float = 60) -> leases.LeaseKeeper:
    return leases.LeaseKeeper(operation.id, attempt, interval=1 / 3, patience=patience, clock=clock.monotonic,
                              now=clock.now)


@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=1)
def test_a_scenario_longer_than_the_lease_keeps_its_operation():
    clock = Clock()
    operation = operation_row()
    attempt = services.operation_claim(operation, now=clock.now())
    keeper = keeper_for(operation, attempt, clock)
    for _ in range(8):  # 8 renewal periods (2.7 leases) without reaching another scenario
        clock.advance(1 / 3)
        assert keeper.renew_once() is True
        assert maintenance.operations_recover_expired_leases(now=clock.now(), enqueue=False) == 0
    outcome = stored_outcome()
    assert services.operation_complete(operation.id, attempt, outcome) is True
    stored = reload(operation)
    assert (stored.status, stored.attempt, stored.result_envelope) == (SUCCEEDED, 1, outcome.envelope())


@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=1)
def test_without_the_keeper_the_same_scenario_loses_its_operation():
    # The control for the test above: the between-scenario heartbeat alone lets the lease lapse.
    clock = Clock()
    operation = operation_row()
    attempt = services.operation_claim(operation, now=clock.now())
    clock.advance(1.1)
    assert maintenance.operations_recover_expired_leases(now=clock.now(), enqueue=False) == 1
    assert services.operation_complete(operation.id, attempt, stored_outcome()) is False
    assert (reload(operation).status, reload(operation).attempt) == (PENDING, 1)


@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=1)
def test_the_keeper_ends_once_the_row_is_not_its_run():
    clock = Clock()
    operation = operation_row()
    attempt = services.operation_claim(operation, now=clock.now())
    keeper = keeper_for(operation, attempt, clock)
    clock.advance(1 / 3)
    assert keeper.renew_once() is True
    renewed = reload(operation).lease_expires_at
    assert renewed == clock.now() + timedelta(seconds=1)
    Operation.objects.filter(pk=operation.pk).update(attempt=attempt + 1)  # taken by another run
    clock.advance(1 / 3)
    assert keeper.renew_once() is False
    assert reload(operation).lease_expires_at == renewed  # its late renewal matched nothing


@pytest.mark.django_db(transaction=True)
@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=1)
def test_the_keeper_thread_renews_until_the_row_is_taken_then_ends():
    operation = operation_row()
    attempt = services.operation_claim(operation)
    keeper = leases.LeaseKeeper(operation.id, attempt, interval=0.01, patience=60)
    keeper.start()
    claimed_until = reload(operation).lease_expires_at
    keeper_renewed = False
    while not keeper_renewed:  # each renewal moves the lease on; no sleep, no deadline of our own
        keeper_renewed = reload(operation).lease_expires_at > claimed_until
    Operation.objects.filter(pk=operation.pk).update(attempt=attempt + 1)
    keeper.join(timeout=30)
    assert not keeper.is_alive()


@pytest.mark.django_db(transaction=True)
@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=300)
def test_the_keeper_stops_when_the_run_ends_and_closes_its_connection(monkeypatch):
    operation = operation_row()
    attempt = services.operation_claim(operation)
    closed = []
    original = connections.close_all

    def spy() -> None:
        closed.append(True)
        original()

    monkeypatch.setattr(leases.connections, "close_all", spy)
    with leases.operation_lease_kept(operation.id, attempt) as keeper:
        assert keeper.interval == 100  # a third of the lease
    # Told to stop, it ended at once: a keeper still waiting for its 100 s period would be alive.
    assert not keeper.is_alive()
    assert closed


@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=1)
def test_the_keeper_gives_up_on_a_run_stuck_in_one_scenario():
    # A hung runner must not hold its operation forever: without progress the lease lapses.
    clock = Clock()
    operation = operation_row()
    attempt = services.operation_claim(operation, now=clock.now())
    keeper = keeper_for(operation, attempt, clock, patience=1)
    for _ in range(5):  # 1.25 s with progress: kept alive
        clock.advance(0.25)
        keeper.progressed()
        assert keeper.renew_once() is True
    clock.advance(1.1)  # then none for longer than its patience: it stops renewing
    assert keeper.renew_once() is False
    clock.advance(1)
    assert maintenance.operations_recover_expired_leases(now=clock.now(), enqueue=False) == 1


def test_the_lease_kept_by_a_worker_is_renewed_every_third_of_the_lease_with_ten_leases_of_patience():
    with override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=300), \
            leases.operation_lease_kept("dop_" + "0" * 32, 1) as keeper:
        keeper.stopping.set()
        assert (keeper.interval, keeper.patience) == (100, 3000)


@pytest.mark.django_db
def test_a_database_error_between_scenarios_abandons_the_run_without_failing_it(monkeypatch):
    operation = operation_row()
    attempt = services.operation_claim(operation)

    def unreachable(operation_id, attempt, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(execution, "operation_lease_renew", unreachable)
    with pytest.raises(OperationalError):
        execution.operation_run_claimed(operation.id, attempt)
    stored = reload(operation)
    assert (stored.status, stored.error) == (RUNNING, None)  # left to lease recovery, not ENGINE_ERROR


# --- recovery and the sweep ------------------------------------------------------------------

def _lapsed(attempt: int = 1, **fields) -> Operation:
    return operation_row(status=RUNNING, attempt=attempt, lease_expires_at=timezone.now() - timedelta(seconds=1),
                         **fields)


@pytest.mark.django_db
@pytest.mark.parametrize(("mode", "enqueue", "tasks_expected"), [
    ("WORKER", None, 1), ("ACCEPT_ONLY", None, 0), ("INLINE", None, 0), ("ACCEPT_ONLY", True, 1),
])
def test_recovery_enqueues_what_it_requeued(mode, enqueue, tasks_expected, django_capture_on_commit_callbacks):
    requeued = _lapsed(1)
    exhausted = _lapsed(3)
    with override_settings(DPM_ASYNC_EXECUTION_MODE=mode, DPM_ASYNC_MAX_ATTEMPTS=3), \
            django_capture_on_commit_callbacks(execute=True):
        assert maintenance.operations_recover_expired_leases(enqueue=enqueue) == 2
    assert len(queued_for(requeued)) == tasks_expected
    assert queued_for(exhausted) == []
    assert (reload(exhausted).status, reload(exhausted).error["code"]) == (FAILED, "EXECUTION_LEASE_EXPIRED")


@pytest.mark.django_db
@override_settings(DPM_ASYNC_MAX_ATTEMPTS=2)
def test_a_run_that_dies_on_every_attempt_fails_with_lease_expired(django_capture_on_commit_callbacks):
    operation = operation_row()
    for attempt in (1, 2):
        assert services.operation_claim(reload(operation)) == attempt
        Operation.objects.filter(pk=operation.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            maintenance.operations_recover_expired_leases(enqueue=True)
    stored = reload(operation)
    assert (stored.status, stored.attempt, stored.error["code"]) == (FAILED, 2, "EXECUTION_LEASE_EXPIRED")
    assert stored.error["details"] == {"max_attempts": 2}
    assert len(queued_for(operation)) == 1  # after the first death only


@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER")
def test_the_sweep_enqueues_pending_operations_that_have_no_task():
    old = timezone.now() - maintenance.STRANDED_PENDING_AFTER - timedelta(seconds=1)
    stranded = operation_row(created_at=old)
    queued = operation_row(created_at=old)
    queue.operation_enqueue(queued.id)
    fresh = operation_row()  # its enqueue may still be on its way
    running = operation_row(status=RUNNING, created_at=old)
    assert maintenance.operations_enqueue_stranded() == 1
    assert (len(queued_for(stranded)), len(queued_for(queued)), queued_for(fresh), queued_for(running)) == (1, 1, [], [])
    assert maintenance.operations_enqueue_stranded() == 0  # now it has one


@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_the_sweep_leaves_pending_operations_alone_outside_worker_mode():
    operation_row(created_at=timezone.now() - timedelta(minutes=5))
    assert maintenance.operations_enqueue_stranded() == 0


@pytest.mark.django_db
@override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER")
def test_the_sweep_cannot_tell_with_another_backend(monkeypatch):
    operation_row(created_at=timezone.now() - timedelta(minutes=5))
    monkeypatch.setattr(maintenance, "operation_ids_queued", lambda ids: None)
    assert maintenance.operations_enqueue_stranded() == 0


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_thread_recovers_and_requeues_at_start():
    operation = _lapsed(1)
    sweeper = OperationsSweeper(interval=60, enqueue=True)
    sweeper.start()
    try:
        assert sweeper.round_done.wait(timeout=30)  # its first round runs at start
    finally:
        sweeper.stopping.set()
        sweeper.join(timeout=30)
    assert not sweeper.is_alive()
    assert (reload(operation).status, len(queued_for(operation))) == (PENDING, 1)


# --- database outages during a run -----------------------------------------------------------

class FakeTime:
    """A clock and a sleep that move time without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def outage(monkeypatch, module, name: str, failures: int) -> list[int]:
    """Makes `module.name` fail with OperationalError `failures` times, then work."""
    real = getattr(module, name)
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) <= failures:
            raise OperationalError("server closed the connection unexpectedly")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, flaky)
    return calls


@pytest.mark.django_db(transaction=True)
def test_a_short_outage_between_scenarios_costs_a_retry_not_a_rerun(monkeypatch):
    from operations import retries

    time_ = FakeTime()
    monkeypatch.setattr(retries.Retry, "from_settings", classmethod(lambda cls: cls(30, time_.sleep, time_.clock)))
    operation = operation_row(body=batch_body(a={"options": {}}, b={"options": {}}))
    attempt = services.operation_claim(operation)
    calls = outage(monkeypatch, execution, "operation_lease_renew", failures=3)
    assert execution.operation_run_claimed(operation.id, attempt) is True
    stored = reload(operation)
    assert (stored.status, stored.attempt, stored.scenarios_done) == (SUCCEEDED, 1, 2)
    assert time_.pauses == [0.1, 0.2, 0.4] and len(calls) == 3 + 2


@pytest.mark.django_db(transaction=True)
def test_a_short_outage_while_storing_the_result_is_retried_not_reported_as_the_engines_fault(monkeypatch):
    from operations import retries

    time_ = FakeTime()
    monkeypatch.setattr(retries.Retry, "from_settings", classmethod(lambda cls: cls(30, time_.sleep, time_.clock)))
    operation = operation_row()
    attempt = services.operation_claim(operation)
    outage(monkeypatch, execution, "operation_complete", failures=2)
    assert execution.operation_run_claimed(operation.id, attempt) is True
    stored = reload(operation)
    assert (stored.status, stored.error) == (SUCCEEDED, None)


@pytest.mark.django_db(transaction=True)
def test_a_long_outage_gives_the_run_up_without_failing_the_operation(monkeypatch):
    from operations import retries

    time_ = FakeTime()
    monkeypatch.setattr(retries.Retry, "from_settings", classmethod(lambda cls: cls(10, time_.sleep, time_.clock)))
    operation = operation_row()
    attempt = services.operation_claim(operation)
    outage(monkeypatch, execution, "operation_complete", failures=1000)
    with pytest.raises(OperationalError):
        execution.operation_run_claimed(operation.id, attempt)
    assert 10 - 5 <= time_.now <= 10
    stored = reload(operation)
    assert (stored.status, stored.error) == (RUNNING, None)  # its lease lapses; recovery runs it again


@pytest.mark.django_db(transaction=True)
def test_a_result_the_database_refuses_fails_the_operation_as_not_stored(monkeypatch):
    from django.db import DataError

    operation = operation_row()
    attempt = services.operation_claim(operation)

    def refuse(*args, **kwargs):
        raise DataError("value too long")

    monkeypatch.setattr(services.OperationScenarioResult.objects, "bulk_create", refuse)
    assert execution.operation_run_claimed(operation.id, attempt) is True
    stored = reload(operation)
    assert (stored.status, stored.error["code"]) == (FAILED, "RESULT_NOT_STORED")
    assert not stored.scenario_results.exists()
