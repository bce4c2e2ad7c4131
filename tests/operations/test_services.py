"""Every allowed and every forbidden transition of operations/services.py, rows moved underneath."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from operations import execution, maintenance, services, submission
from operations.access import OPERATIONS_ALL as ALL
from operations.errors import (
    OperationCorrelationConflict,
    OperationNotCancellable,
    OperationNotExecutable,
    OperationNotFound,
)
from operations.links import operation_status_url
from operations.models import Operation, OperationScenarioResult, OperationStatus
from rebalance.parsing import batch_request_parse
from rebalance.services import BatchProgress
from tests.factories.bodies import batch_body
from tests.factories.operations import (
    api_user,
    operation_row,
    rebuilt_json,
    stored_full_result,
    stored_outcome,
)

pytestmark = pytest.mark.django_db

PENDING, RUNNING, SUCCEEDED, FAILED = (OperationStatus.PENDING, OperationStatus.RUNNING,
                                       OperationStatus.SUCCEEDED, OperationStatus.FAILED)
ERROR = {"code": "ENGINE_ERROR", "message": "m", "details": {}}


def reload(operation: Operation) -> Operation:
    return Operation.objects.get(pk=operation.pk)


# --- PENDING -> RUNNING ----------------------------------------------------------------------

@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=300, DPM_ASYNC_OPERATIONS_TTL_SECONDS=1000)
def test_claim_moves_pending_to_running_with_a_lease():
    operation = operation_row()
    now = timezone.now()
    assert services.operation_claim(operation, now=now) == 1
    stored = reload(operation)
    assert (stored.status, stored.attempt, stored.started_at) == (RUNNING, 1, now)
    assert stored.lease_expires_at == now + timedelta(seconds=300)
    assert stored.expires_at == now + timedelta(seconds=1300)


@pytest.mark.parametrize("status", [RUNNING, SUCCEEDED, FAILED])
def test_claim_of_a_non_pending_operation_is_refused(status):
    operation = operation_row(status=status)
    before = reload(operation)
    assert services.operation_claim(operation) is None
    after = reload(operation)
    assert (after.status, after.attempt, after.started_at) == (before.status, before.attempt, before.started_at)


def test_claim_with_a_stale_read_is_refused():
    operation = operation_row()
    stale = reload(operation)
    assert services.operation_claim(operation) == 1
    assert services.operation_claim(stale) is None


def test_claim_sees_a_row_that_went_back_to_pending_meanwhile():
    operation = operation_row()
    stale = reload(operation)  # attempt 0
    services.operation_claim(operation)
    Operation.objects.filter(pk=operation.pk).update(status=PENDING, started_at=None, lease_expires_at=None)
    assert services.operation_claim(stale) is None  # the attempt moved on: 0 is not its token
    assert services.operation_claim(reload(operation)) == 2


def test_claim_of_an_expired_operation_is_refused():
    operation = operation_row(created_at=timezone.now() - timedelta(days=2))
    assert services.operation_claim(operation) is None


# --- RUNNING -> SUCCEEDED / FAILED -----------------------------------------------------------

@override_settings(DPM_ASYNC_OPERATIONS_TTL_SECONDS=60)
def test_complete_moves_running_to_succeeded():
    operation = operation_row()
    attempt = services.operation_claim(operation)
    outcome = stored_outcome(a={"options": {}}, b={"options": {"max_turnover_pct": "nope"}})
    assert services.operation_complete(operation.id, attempt, outcome) is True
    stored = reload(operation)
    assert (stored.status, stored.result_envelope, stored.error, stored.lease_expires_at) == (
        SUCCEEDED, outcome.envelope(), None, None
    )
    assert stored.expires_at == stored.finished_at + timedelta(seconds=60)
    # Every scenario done; the one that failed has no row, the other its stored frame.
    assert (stored.scenarios_total, stored.scenarios_done, stored.scenarios_failed, stored.current_scenario) == (
        2, 2, 1, None
    )
    assert stored.scenario_statuses == {"a": outcome.scenarios[0].status, "b": "FAILED"}
    rows = list(OperationScenarioResult.objects.filter(operation_id=operation.id).values_list("name", "body"))
    assert [(name, bytes(body)) for name, body in rows] == [("a", outcome.scenarios[0].body)]
    assert stored_full_result(operation.id) == rebuilt_json(outcome)


def test_fail_moves_running_to_failed():
    operation = operation_row()
    attempt = services.operation_claim(operation)
    assert services.operation_fail(operation.id, attempt, ERROR) is True
    stored = reload(operation)
    assert (stored.status, stored.error, stored.result_envelope) == (FAILED, ERROR, None)
    assert stored.finished_at is not None and stored.lease_expires_at is None


@pytest.mark.parametrize("status", [PENDING, SUCCEEDED, FAILED])
def test_complete_and_fail_need_a_running_operation(status):
    operation = operation_row(status=status, attempt=1)
    before = reload(operation)
    rows_before = OperationScenarioResult.objects.filter(operation_id=operation.id).count()
    assert services.operation_complete(operation.id, 1, stored_outcome()) is False
    assert services.operation_fail(operation.id, 1, ERROR) is False
    after = reload(operation)
    assert (after.status, after.result_envelope, after.error) == (before.status, before.result_envelope, before.error)
    assert OperationScenarioResult.objects.filter(operation_id=operation.id).count() == rows_before


def test_a_late_writer_never_overwrites_a_terminal_result():
    operation = operation_row()
    attempt = services.operation_claim(operation)
    first, second = stored_outcome(), stored_outcome()
    assert services.operation_complete(operation.id, attempt, first) is True
    assert services.operation_complete(operation.id, attempt, second) is False
    assert services.operation_fail(operation.id, attempt, ERROR) is False
    assert reload(operation).result_envelope == first.envelope()
    assert stored_full_result(operation.id) == rebuilt_json(first)


def test_a_run_fenced_off_by_a_newer_attempt_is_discarded():
    operation = operation_row()
    old_attempt = services.operation_claim(operation)
    # Its lease ran out and it was taken back and claimed again (attempt 2).
    Operation.objects.filter(pk=operation.pk).update(status=PENDING, started_at=None, lease_expires_at=None)
    new_attempt = services.operation_claim(reload(operation))
    late, current = stored_outcome(), stored_outcome()
    assert services.operation_complete(operation.id, old_attempt, late) is False
    assert not OperationScenarioResult.objects.filter(operation_id=operation.id).exists()
    assert services.operation_fail(operation.id, old_attempt, ERROR) is False
    assert services.operation_complete(operation.id, new_attempt, current) is True
    assert reload(operation).result_envelope == current.envelope()
    assert stored_full_result(operation.id) == rebuilt_json(current)


# --- PENDING -> FAILED (cancel) and RUNNING -> FAILED (cancel) -------------------------------

def test_cancel_of_pending_fails_it_at_once():
    operation = operation_row()
    cancelled = services.operation_cancel(operation.id, scope=ALL)
    assert cancelled.status == FAILED
    assert cancelled.error == {"code": "OPERATION_CANCELLED", "message": "The operation was cancelled.",
                               "details": {"cancelled_while": "PENDING"}}
    assert (cancelled.started_at, cancelled.attempt) == (None, 0)


def test_cancel_of_running_is_a_request_the_run_honours_before_its_next_scenario(monkeypatch):
    operation = operation_row(body=batch_body(a={"options": {}}, b={"options": {}}, c={"options": {}}))
    attempt = services.operation_claim(operation)
    started = []
    real = execution.rebalance_analyze_batch

    def run_and_cancel_after_first(batch, *, correlation_id, before_scenario, **kwargs):
        def hook(progress):
            before_scenario(progress)
            started.append(progress.current)
            if progress.current == "a":
                cancelled = services.operation_cancel(operation.id, scope=ALL)
                assert (cancelled.status, cancelled.cancel_requested) == (RUNNING, True)
        return real(batch, correlation_id=correlation_id, before_scenario=hook, **kwargs)

    monkeypatch.setattr(execution, "rebalance_analyze_batch", run_and_cancel_after_first)
    execution.operation_run_claimed(operation.id, attempt)
    stored = reload(operation)
    assert started == ["a"]
    assert (stored.status, stored.error["code"], stored.result_envelope, stored.cancel_requested) == (
        FAILED, "OPERATION_CANCELLED", None, False
    )
    # It stopped before `b`: one scenario done, as the cancelled resource shows.
    assert (stored.scenarios_done, stored.current_scenario, list(stored.scenario_statuses)) == (1, None, ["a"])


def test_a_cancel_during_the_last_scenario_still_ends_the_run_cancelled():
    operation = operation_row()
    attempt = services.operation_claim(operation)
    services.operation_cancel(operation.id, scope=ALL)
    assert services.operation_complete(operation.id, attempt, stored_outcome()) is True
    stored = reload(operation)
    assert (stored.status, stored.error["details"], stored.result_envelope) == (
        FAILED, {"cancelled_while": "RUNNING"}, None
    )
    assert not OperationScenarioResult.objects.filter(operation_id=operation.id).exists()


@pytest.mark.parametrize("status", [SUCCEEDED, FAILED])
def test_cancel_of_a_finished_operation_is_refused(status):
    operation = operation_row(status=status)
    with pytest.raises(OperationNotCancellable):
        services.operation_cancel(operation.id, scope=ALL)
    assert reload(operation).status == status


def test_cancel_of_an_unknown_operation_is_not_found():
    with pytest.raises(OperationNotFound):
        services.operation_cancel("dop_" + "a" * 32, scope=ALL)


# --- execute ---------------------------------------------------------------------------------

def test_execute_that_loses_the_claim_is_not_executable(monkeypatch):
    operation = operation_row()
    real_claim = services.operation_claim

    def claim_after_someone_else(op, **kwargs):
        real_claim(reload(op))  # another caller wins between our read and our UPDATE
        return real_claim(op, **kwargs)

    monkeypatch.setattr(execution, "operation_claim", claim_after_someone_else)
    with pytest.raises(OperationNotExecutable) as raised:
        execution.operation_execute(operation.id, scope=ALL)
    assert raised.value.extra == {"operation_id": operation.id, "operation_status": "RUNNING"}


def test_execute_records_a_result_only_once_even_if_the_row_is_cancelled_mid_run(monkeypatch):
    operation = operation_row()

    outcome = stored_outcome()

    def cancel_then_finish(batch, *, correlation_id, before_scenario, **kwargs):
        before_scenario(BatchProgress(1, "baseline", {}))
        services.operation_cancel(operation.id, scope=ALL)
        return outcome

    monkeypatch.setattr(execution, "rebalance_analyze_batch", cancel_then_finish)
    finished = execution.operation_execute(operation.id, scope=ALL)
    assert (finished.status, finished.result_envelope, finished.error["code"]) == (FAILED, None, "OPERATION_CANCELLED")
    assert not OperationScenarioResult.objects.filter(operation_id=operation.id).exists()


def test_a_lease_lost_mid_run_discards_the_result(monkeypatch):
    operation = operation_row(body=batch_body(a={"options": {}}, b={"options": {}}))

    def lose_lease_after_first(batch, *, correlation_id, before_scenario, **kwargs):
        before_scenario(BatchProgress(2, "a", {}))
        Operation.objects.filter(pk=operation.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        maintenance.operations_recover_expired_leases()
        before_scenario(BatchProgress(2, "b", {"a": "READY"}))  # fenced: raises, and the run ends without writing
        raise AssertionError("not reached")

    monkeypatch.setattr(execution, "rebalance_analyze_batch", lose_lease_after_first)
    execution.operation_execute(operation.id, scope=ALL)
    stored = reload(operation)
    assert (stored.status, stored.attempt, stored.result_envelope, stored.error) == (PENDING, 1, None, None)
    # Requeued from scratch: the next run's progress starts at 0.
    assert (stored.scenarios_done, stored.current_scenario, stored.scenario_statuses) == (0, None, {})


@override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=300)
def test_the_runner_renews_its_lease_between_scenarios(monkeypatch):
    operation = operation_row(body=batch_body(a={"options": {}}, b={"options": {}}))
    renewed = []
    progress = []

    def observe(batch, *, correlation_id, before_scenario, **kwargs):
        for name, done in (("a", {}), ("b", {"a": "BLOCKED"})):
            # A lease about to lapse; the renewal must push it a lease length ahead. (Comparing two
            # renewals would not do: SQLite's clock has millisecond steps, and both can fall in one.)
            almost = timezone.now() + timedelta(seconds=5)
            Operation.objects.filter(pk=operation.pk).update(lease_expires_at=almost)
            before_scenario(BatchProgress(2, name, done))
            stored = reload(operation)
            renewed.append(stored.lease_expires_at - almost > timedelta(seconds=250))
            progress.append((stored.scenarios_done, stored.scenarios_failed, stored.current_scenario,
                             stored.scenario_statuses))
        raise RuntimeError("stop here")

    monkeypatch.setattr(execution, "rebalance_analyze_batch", observe)
    execution.operation_execute(operation.id, scope=ALL)
    assert renewed == [True, True]
    # The same UPDATE wrote the progress: nothing done before `a`, `a` done before `b`.
    assert progress == [(0, 0, "a", {}), (1, 0, "b", {"a": "BLOCKED"})]


# --- lease recovery --------------------------------------------------------------------------

def _running_with_lapsed_lease(attempt: int, **fields) -> Operation:
    now = timezone.now()
    return operation_row(status=RUNNING, attempt=attempt, lease_expires_at=now - timedelta(seconds=1), **fields)


@override_settings(DPM_ASYNC_MAX_ATTEMPTS=3)
def test_lease_recovery_requeues_fails_or_cancels():
    requeued = _running_with_lapsed_lease(1)
    exhausted = _running_with_lapsed_lease(3)
    cancelled = _running_with_lapsed_lease(1, cancel_requested=True)
    alive = operation_row(status=RUNNING)
    assert maintenance.operations_recover_expired_leases(dry_run=True) == 3
    assert maintenance.operations_recover_expired_leases() == 3
    assert (reload(requeued).status, reload(requeued).started_at, reload(requeued).attempt) == (PENDING, None, 1)
    assert reload(exhausted).status == FAILED
    assert reload(exhausted).error == {
        "code": "EXECUTION_LEASE_EXPIRED",
        "message": "The operation's runner stopped responding on every attempt; it was given up.",
        "details": {"max_attempts": 3},
    }
    assert reload(cancelled).error["code"] == "OPERATION_CANCELLED"
    assert reload(alive).status == RUNNING
    assert maintenance.operations_recover_expired_leases() == 0


# --- submit and correlation ------------------------------------------------------------------

@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_submit_then_replay_then_conflict():
    batch, owner_id = batch_request_parse(batch_body()), api_user().pk
    first = submission.operation_submit(batch, correlation_id="svc-1", owner_id=owner_id)
    assert first.replayed is False and first.operation.status == PENDING
    again = submission.operation_submit(batch_request_parse(batch_body()), correlation_id="svc-1", owner_id=owner_id)
    assert again.replayed is True and again.operation.id == first.operation.id
    with pytest.raises(OperationCorrelationConflict) as raised:
        submission.operation_submit(batch_request_parse(batch_body(x={"options": {}})), correlation_id="svc-1",
                                  owner_id=owner_id)
    assert raised.value.extra == {"operation_id": first.operation.id, "status_url": operation_status_url(first.operation.id)}


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_submit_replaces_an_expired_holder_of_the_correlation_id_even_a_stuck_running_one():
    old = operation_row(status=RUNNING, correlation_id="svc-2", created_at=timezone.now() - timedelta(days=3),
                        lease_expires_at=timezone.now() - timedelta(days=2))
    submitted = submission.operation_submit(batch_request_parse(batch_body()), correlation_id="svc-2",
                                            owner_id=api_user().pk)
    assert submitted.replayed is False
    assert not Operation.objects.filter(pk=old.pk).exists()


# --- purge -----------------------------------------------------------------------------------

def test_purge_deletes_expired_rows_in_batches_and_never_running_ones(django_assert_max_num_queries):
    past = timezone.now() - timedelta(days=3)
    expired = [operation_row(status=s, created_at=past) for s in (PENDING, SUCCEEDED, FAILED) * 3]
    stuck_running = operation_row(status=RUNNING, created_at=past, lease_expires_at=past)
    live = [operation_row(status=s) for s in (PENDING, RUNNING, SUCCEEDED, FAILED)]
    assert services.operations_purge_expired(dry_run=True) == 9
    assert Operation.objects.count() == 14
    # 9 rows in batches of 2: 5 DELETE statements, nothing else.
    with django_assert_max_num_queries(5) as captured:
        assert services.operations_purge_expired(batch_size=2) == 9
    assert all(q["sql"].startswith("DELETE") for q in captured.captured_queries)
    assert set(Operation.objects.values_list("pk", flat=True)) == {stuck_running.pk} | {o.pk for o in live}
    assert not any(Operation.objects.filter(pk=o.pk).exists() for o in expired)
    assert services.operations_purge_expired() == 0


def test_purge_of_an_exact_multiple_of_the_batch_size():
    past = timezone.now() - timedelta(days=3)
    for _ in range(4):
        operation_row(created_at=past)
    assert services.operations_purge_expired(batch_size=2) == 4
    assert Operation.objects.count() == 0


def test_purge_refuses_a_batch_size_below_one():
    with pytest.raises(ValueError):
        services.operations_purge_expired(batch_size=0)
