"""A run whose process died is settled without the cron, by the rules of the mode (docs/operations.md,
"When a run dies"), and leases are measured on the database's clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from operations import maintenance, services
from operations.models import Operation, OperationStatus
from tests.factories.operations import operation_row, parse

pytestmark = pytest.mark.django_db

RUNNING, PENDING, FAILED = OperationStatus.RUNNING, OperationStatus.PENDING, OperationStatus.FAILED


def dead_run(**fields) -> Operation:
    """A RUNNING operation whose runner stopped renewing its lease a second ago."""
    return operation_row(status=RUNNING, lease_expires_at=timezone.now() - timedelta(seconds=1), **fields)


@pytest.mark.parametrize(
    ("mode", "manual", "settled"),
    [("WORKER", "false", PENDING), ("ACCEPT_ONLY", "true", PENDING), ("INLINE", "true", PENDING),
     ("ACCEPT_ONLY", "false", FAILED), ("INLINE", "false", FAILED)],
)
def test_a_dead_run_is_run_again_where_something_can_and_failed_where_nothing_can(mode, manual, settled):
    operation = dead_run()
    with override_settings(DPM_ASYNC_EXECUTION_MODE=mode, DPM_ASYNC_MANUAL_EXECUTION_ENABLED=manual == "true"):
        maintenance.operations_recover_expired_leases(enqueue=False)
    stored = Operation.objects.get(pk=operation.pk)
    assert stored.status == settled
    if settled == FAILED:
        assert stored.error["code"] == "EXECUTION_LEASE_EXPIRED" and stored.error["details"]["rerun"] is False


@override_settings(DPM_ASYNC_EXECUTION_MODE="INLINE", DPM_ASYNC_MANUAL_EXECUTION_ENABLED=False)
def test_reading_a_dead_run_settles_it_first(client):
    operation = dead_run(correlation_id="dead-1")
    resource = parse(client.get(f"/rebalance/operations/{operation.id}"))
    assert (resource["status"], resource["error"]["code"]) == ("FAILED", "EXECUTION_LEASE_EXPIRED")
    other = dead_run(correlation_id="dead-2")
    assert parse(client.get("/rebalance/operations/by-correlation/dead-2"))["status"] == "FAILED"
    third = dead_run(correlation_id="dead-3")
    items = {item["operation_id"]: item["status"] for item in parse(client.get("/rebalance/operations"))["items"]}
    assert items[other.id] == items[third.id] == "FAILED"


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_reading_a_dead_run_in_accept_only_makes_it_executable_again(client):
    operation = dead_run()
    resource = parse(client.get(f"/rebalance/operations/{operation.id}"))
    assert (resource["status"], resource["is_executable"], resource["attempt"]) == ("PENDING", True, 1)
    assert parse(client.post(f"/rebalance/operations/{operation.id}/execute"))["status"] == "SUCCEEDED"


def test_a_healthy_run_is_not_settled_by_a_process_whose_clock_runs_fast(monkeypatch):
    # Leases are written and compared on the database's clock: a process 20 s ahead (its own
    # timezone.now()) takes no live run for dead.
    operation = operation_row()
    with override_settings(DPM_ASYNC_EXECUTION_LEASE_SECONDS=10):
        attempt = services.operation_claim(operation)  # the runner's process, its clock right
        assert services.operation_lease_renew(operation.id, attempt) is True
        real_now = timezone.now
        monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=20))  # another process
        assert maintenance.operations_recover_expired_leases(enqueue=False) == 0
    assert Operation.objects.get(pk=operation.pk).status == RUNNING
