"""Races, really run: threads released together by a barrier, each on its own database connection.

These run on whatever database the suite runs on (a SQLite file by default; PostgreSQL when
DATABASE_URL points at it, as in CI's second pass), and test_races_postgres.py runs this module
against PostgreSQL whenever the server is reachable.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import Client, override_settings
from django.utils import timezone

from operations import execution, maintenance, services
from operations.models import Operation, OperationScenarioResult, OperationStatus
from tests.factories.bodies import batch_body
from tests.factories.operations import ASYNC_URL, api_headers, api_token, operation_row, stored_outcome

pytestmark = pytest.mark.django_db(transaction=True)

THREADS = 8


def race(*actions: Callable[[], Any]) -> list[Any]:
    """Runs the actions in threads released at the same instant; returns their results in order.

    Each thread gets its own connection (Django's are per thread) and closes it when done, so the
    test database can be flushed and dropped afterwards.
    """
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int, action: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = action()
        except BaseException as error:  # reported to the test below, not lost in the thread
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def post(url: str, body: Any = None, **headers: str) -> Callable[[], tuple[int, dict]]:
    # The token is looked up (or created) here, in the test's thread, never by the racing threads.
    headers = {**api_headers(), **headers}

    def action() -> tuple[int, dict]:
        kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
        response = Client().post(url, headers=headers, **kwargs)
        return response.status_code, json.loads(response.content)
    return action


@pytest.fixture
def engine_calls(monkeypatch) -> Counter:
    """Counts batch runs per correlation id (the wrapper sees every run, in every thread)."""
    calls: Counter = Counter()
    lock = threading.Lock()
    real = execution.rebalance_analyze_batch

    def counting(batch, *, correlation_id, **kwargs):
        with lock:
            calls[correlation_id] += 1
        return real(batch, correlation_id=correlation_id, **kwargs)

    monkeypatch.setattr(execution, "rebalance_analyze_batch", counting)
    return calls


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_executes_run_the_operation_exactly_once(engine_calls, round_):
    operation = operation_row(correlation_id=f"race-exec-{round_}")
    outcomes = race(*[post(f"/rebalance/operations/{operation.id}/execute") for _ in range(THREADS)])
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [200] + [409] * (THREADS - 1)
    winner = next(body for status, body in outcomes if status == 200)
    assert (winner["status"], winner["attempt"]) == ("SUCCEEDED", 1)
    for status, body in outcomes:
        if status == 409:
            assert body["code"] == "DPM_ASYNC_OPERATION_NOT_EXECUTABLE"
            assert body["operation_status"] in ("RUNNING", "SUCCEEDED")
    assert engine_calls == Counter({f"race-exec-{round_}": 1})
    stored = Operation.objects.get(pk=operation.id)
    assert (stored.status, stored.attempt) == (OperationStatus.SUCCEEDED, 1)


@pytest.mark.parametrize("round_", range(6))
def test_cancel_racing_execute_has_one_consistent_outcome(engine_calls, round_):
    operation = operation_row()
    (execute_status, executed), (cancel_status, cancelled) = race(
        post(f"/rebalance/operations/{operation.id}/execute"),
        post(f"/rebalance/operations/{operation.id}/cancel"),
    )
    stored = Operation.objects.get(pk=operation.id)
    assert stored.status in (OperationStatus.SUCCEEDED, OperationStatus.FAILED)
    if cancel_status == 200:
        # The cancel was accepted: whatever the execute did, the operation ends cancelled.
        assert stored.status == OperationStatus.FAILED
        assert stored.error["code"] == "OPERATION_CANCELLED" and stored.result_envelope is None
        assert not OperationScenarioResult.objects.filter(operation_id=stored.id).exists()
        if execute_status == 200:
            assert executed["status"] == "FAILED" and executed["error"]["code"] == "OPERATION_CANCELLED"
        else:
            assert execute_status == 409 and sum(engine_calls.values()) == 0
    else:
        # The cancel came too late: the execute ran it to success.
        assert cancel_status == 409 and cancelled["code"] == "DPM_ASYNC_OPERATION_NOT_CANCELLABLE"
        assert execute_status == 200 and executed["status"] == "SUCCEEDED"
        assert stored.status == OperationStatus.SUCCEEDED and stored.error is None
    assert sum(engine_calls.values()) <= 1


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_concurrent_identical_submissions_create_one_operation():
    outcomes = race(*[post(ASYNC_URL, batch_body(), **{"X-Correlation-Id": "race-sub-1"}) for _ in range(THREADS)])
    assert sorted(status for status, _ in outcomes) == [200] * (THREADS - 1) + [202]
    assert len({body["operation_id"] for _, body in outcomes}) == 1
    assert Operation.objects.count() == 1


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_concurrent_conflicting_submissions_create_one_operation_and_409_the_other_body():
    bodies = [batch_body() if i % 2 else batch_body(other={"options": {}}) for i in range(THREADS)]
    outcomes = race(*[post(ASYNC_URL, body, **{"X-Correlation-Id": "race-sub-2"}) for body in bodies])
    stored = Operation.objects.get()
    created = [i for i, (status, _) in enumerate(outcomes) if status == 202]
    assert len(created) == 1
    winner_body = bodies[created[0]]
    for body, (status, payload) in zip(bodies, outcomes, strict=True):
        if status == 202:
            continue
        if body == winner_body:
            assert status == 200 and payload["operation_id"] == stored.id
        else:
            assert status == 409 and payload["code"] == "DPM_ASYNC_OPERATION_CORRELATION_CONFLICT"
            assert payload["operation_id"] == stored.id


def test_cancel_while_running_stops_the_run_between_scenarios(monkeypatch):
    """The runner is held inside scenario `a`; a cancel arrives; scenario `b` never starts."""
    operation = operation_row(body=batch_body(a={"options": {}}, b={"options": {}}, c={"options": {}}))
    inside_first, release = threading.Event(), threading.Event()
    started: list[str] = []
    real = execution.rebalance_analyze_batch

    def held(batch, *, correlation_id, before_scenario, **kwargs):
        def hook(progress):
            before_scenario(progress)
            started.append(progress.current)
            if progress.current == "a":
                inside_first.set()
                assert release.wait(timeout=30)
        return real(batch, correlation_id=correlation_id, before_scenario=hook, **kwargs)

    monkeypatch.setattr(execution, "rebalance_analyze_batch", held)

    def cancel_once_running():
        assert inside_first.wait(timeout=30)
        outcome = post(f"/rebalance/operations/{operation.id}/cancel")()
        release.set()
        return outcome

    (execute_status, executed), (cancel_status, cancelled) = race(
        post(f"/rebalance/operations/{operation.id}/execute"), cancel_once_running
    )
    assert (cancel_status, cancelled["status"], cancelled["cancel_requested"]) == (200, "RUNNING", True)
    assert cancelled["progress"] == {"scenarios_total": 3, "scenarios_done": 0, "scenarios_failed": 0,
                                     "current_scenario": "a"}
    assert execute_status == 200
    assert (executed["status"], executed["result"]) == ("FAILED", None)
    assert executed["error"] == {"code": "OPERATION_CANCELLED", "message": "The operation was cancelled.",
                                 "details": {"cancelled_while": "RUNNING"}}
    assert started == ["a"]


@pytest.mark.parametrize("round_", range(4))
def test_lease_recovery_racing_completion_leaves_one_outcome(round_):
    operation = operation_row()
    attempt = services.operation_claim(operation)
    Operation.objects.filter(pk=operation.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    outcome = stored_outcome()
    completed, recovered = race(
        lambda: services.operation_complete(operation.id, attempt, outcome),
        lambda: maintenance.operations_recover_expired_leases(),
    )
    stored = Operation.objects.get(pk=operation.id)
    rows = OperationScenarioResult.objects.filter(operation_id=operation.id).count()
    assert completed != bool(recovered)  # exactly one of them moved the row
    if completed:
        assert (stored.status, stored.result_envelope, rows) == (OperationStatus.SUCCEEDED, outcome.envelope(), 1)
    else:  # the results of the run that lost its lease never became visible
        assert (stored.status, stored.result_envelope, stored.attempt, rows) == (OperationStatus.PENDING, None, 1, 0)


def test_purge_running_beside_the_service_deletes_only_expired_rows():
    past = timezone.now() - timedelta(days=3)
    for _ in range(30):
        operation_row(created_at=past)
    live = [operation_row() for _ in range(10)]

    def purge() -> int:
        return sum(services.operations_purge_expired(batch_size=4) for _ in range(3))

    def execute_live() -> list[int]:
        return [post(f"/rebalance/operations/{op.id}/execute")()[0] for op in live[:5]]

    def cancel_live() -> list[int]:
        return [post(f"/rebalance/operations/{op.id}/cancel")()[0] for op in live[5:]]

    purged, executed, cancelled = race(purge, execute_live, cancel_live)
    assert purged == 30
    assert executed == [200] * 5 and cancelled == [200] * 5
    assert set(Operation.objects.values_list("pk", flat=True)) == {op.id for op in live}


# --- per-owner correlation ids (spec/api.md section 9) ---------------------------------------

@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_concurrent_submissions_of_two_owners_with_one_correlation_id_create_one_operation_each():
    from tests.factories.operations import api_user


    bob = f"Token {api_token(api_user('bob'))}"
    actions = [post(ASYNC_URL, batch_body(), **{"X-Correlation-Id": "race-own-1"}) for _ in range(THREADS // 2)]
    actions += [post(ASYNC_URL, batch_body(), Authorization=bob, **{"X-Correlation-Id": "race-own-1"})
                for _ in range(THREADS // 2)]
    outcomes = race(*actions)
    assert sorted(status for status, _ in outcomes) == [200] * (THREADS - 2) + [202] * 2
    assert Operation.objects.filter(correlation_id="race-own-1").count() == 2
    assert Operation.objects.values("owner").distinct().count() == 2


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY", DPM_API_AUTH_REQUIRED=False)
def test_concurrent_anonymous_submissions_create_one_operation():
    # NULLs never collide in a unique index: the partial unique index on anonymous rows does it.
    def anonymous() -> tuple[int, dict]:
        response = Client().post(ASYNC_URL, data=json.dumps(batch_body()), content_type="application/json",
                                 headers={"X-Correlation-Id": "race-anon-1"})
        return response.status_code, json.loads(response.content)

    outcomes = race(*[anonymous for _ in range(THREADS)])
    assert sorted(status for status, _ in outcomes) == [200] * (THREADS - 1) + [202]
    stored = Operation.objects.get()
    assert stored.owner_id is None and stored.correlation_id == "race-anon-1"
