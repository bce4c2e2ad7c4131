"""`manage.py purge_expired_operations`: a thin shell over the purge and lease-recovery services."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from operations.models import Operation, OperationStatus
from tests.factories.operations import operation_row

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("purge_expired_operations", *args, stdout=out)
    return out.getvalue()


def _stale_running() -> Operation:
    past = timezone.now() - timedelta(minutes=10)
    return operation_row(status=OperationStatus.RUNNING, attempt=1, lease_expires_at=past)


def test_purge_prints_how_many_it_removed():
    past = timezone.now() - timedelta(days=3)
    for _ in range(3):
        operation_row(created_at=past)
    live = operation_row()
    assert run("--batch-size", "2") == (
        "purged 3 expired operation(s); settled 0 RUNNING operation(s) with an expired lease\n"
    )
    assert list(Operation.objects.values_list("pk", flat=True)) == [live.pk]


def test_dry_run_changes_nothing():
    operation_row(created_at=timezone.now() - timedelta(days=3))
    stale = _stale_running()
    assert run("--dry-run") == (
        "dry run: would purge 1 expired operation(s); 1 RUNNING operation(s) have an expired lease\n"
    )
    assert Operation.objects.count() == 2
    assert Operation.objects.get(pk=stale.pk).status == OperationStatus.RUNNING


def test_runs_settle_stale_leases():
    stale = _stale_running()
    assert run() == "purged 0 expired operation(s); settled 1 RUNNING operation(s) with an expired lease\n"
    assert Operation.objects.get(pk=stale.pk).status == OperationStatus.PENDING


def test_batch_size_must_be_positive():
    with pytest.raises(CommandError, match="--batch-size must be at least 1"):
        run("--batch-size", "0")
