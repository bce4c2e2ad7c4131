"""The Operation table: ids, constraints that keep status and payloads consistent, raw JSON storage."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from dpm_async.encoding import zstd_compress
from operations.links import operation_execute_url, operation_status_url
from operations.models import (
    OPERATION_ID_PATTERN,
    Operation,
    OperationScenarioResult,
    OperationStatus,
    operation_id_generate,
)
from tests.factories.operations import operation_row

pytestmark = pytest.mark.django_db


def test_operation_ids_are_prefixed_and_carry_128_random_bits():
    ids = {operation_id_generate() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(OPERATION_ID_PATTERN.fullmatch(i) for i in ids)
    assert all(len(i) == 4 + 32 for i in ids)


def test_the_statuses_are_exactly_the_four():
    assert OperationStatus.values == ["PENDING", "RUNNING", "SUCCEEDED", "FAILED"]


def test_urls_match_the_routes():
    operation = Operation(id=operation_id_generate())
    assert operation_status_url(operation.id) == reverse("operation-detail", args=[operation.id])
    assert operation_execute_url(operation.id) == reverse("operation-execute", args=[operation.id])


def test_raw_json_is_stored_and_read_back_as_its_exact_text():
    text = '{"z": 1, "a": "1.10", "n": 2.50, "e": 1E+2, "u": "caf\u00e9 \u20ac", "nested": {"b": [], "a": null}}'
    operation = operation_row(request=text)
    assert Operation.objects.get(pk=operation.id).request == text.encode()


def test_bytes_are_stored_as_their_text():
    operation = operation_row(status=OperationStatus.SUCCEEDED, result_envelope=b'{"b":1,"a":2}')
    assert Operation.objects.get(pk=operation.id).result_envelope == b'{"b":1,"a":2}'


def test_scenario_results_are_stored_as_given_and_go_with_their_operation():
    operation = operation_row(status=OperationStatus.SUCCEEDED)
    frame = zstd_compress(b'{"status":"READY"}')
    OperationScenarioResult.objects.create(operation=operation, position=1, name="other", status="READY",
                                           size=18, body=frame)
    assert bytes(OperationScenarioResult.objects.get(operation=operation, name="other").body) == frame
    Operation.objects.filter(pk=operation.id).delete()  # the database cascades, not Django
    assert not OperationScenarioResult.objects.filter(operation_id=operation.id).exists()


SCENARIO_INCONSISTENT = {
    "unknown status": {"status": "FAILED"},
    "empty": {"size": 0},
    "same name twice": {"name": "baseline"},
    "same position twice": {"position": 0},
}


@pytest.mark.parametrize("fields", SCENARIO_INCONSISTENT.values(), ids=SCENARIO_INCONSISTENT.keys())
def test_inconsistent_scenario_results_are_refused_by_the_database(fields):
    operation = operation_row(status=OperationStatus.SUCCEEDED)  # its one scenario: `baseline`, position 0
    values = {"position": 1, "name": "other", "status": "READY", "size": 2, "body": zstd_compress(b"{}"), **fields}
    with pytest.raises(IntegrityError), transaction.atomic():
        OperationScenarioResult.objects.create(operation=operation, **values)


def test_correlation_id_is_unique():
    operation_row(correlation_id="dup-1")
    with pytest.raises(IntegrityError), transaction.atomic():
        operation_row(correlation_id="dup-1")


def _now():
    return timezone.now()


# Each row is inconsistent in exactly one way; the database must refuse every one of them.
INCONSISTENT = {
    "unknown status": {"status": "DONE"},
    "unknown type": {"operation_type": "SIMULATE"},
    "succeeded without result": {"status": "SUCCEEDED", "result_envelope": None},
    "result while pending": {"result_envelope": "{}"},
    "result on failure": {"status": "FAILED", "result_envelope": "{}"},
    "more done than there are": {"status": "RUNNING", "scenarios_done": 2},
    "more failed than done": {"status": "RUNNING", "scenarios_done": 0, "scenarios_failed": 1},
    "succeeded with scenarios left": {"status": "SUCCEEDED", "scenarios_done": 0},
    "current scenario while pending": {"current_scenario": "baseline"},
    "current scenario once succeeded": {"status": "SUCCEEDED", "current_scenario": "baseline"},
    "failed without error": {"status": "FAILED", "error": None},
    "error while running": {"status": "RUNNING", "error": {"code": "ENGINE_ERROR"}},
    "error on success": {"status": "SUCCEEDED", "error": {"code": "ENGINE_ERROR"}},
    "finished while pending": {"finished_at": "now"},
    "finished while running": {"status": "RUNNING", "finished_at": "now"},
    "succeeded without finish": {"status": "SUCCEEDED", "finished_at": None},
    "failed without finish": {"status": "FAILED", "finished_at": None},
    "started while pending": {"started_at": "now"},
    "running without start": {"status": "RUNNING", "started_at": None},
    "running without attempt": {"status": "RUNNING", "attempt": 0},
    "succeeded without start": {"status": "SUCCEEDED", "started_at": None},
    "running without lease": {"status": "RUNNING", "lease_expires_at": None},
    "lease while pending": {"lease_expires_at": "now"},
    "lease on success": {"status": "SUCCEEDED", "lease_expires_at": "now"},
    "cancel request while pending": {"cancel_requested": True},
    "cancel request when failed": {"status": "FAILED", "cancel_requested": True},
    "expires before created": {"expires_at": "past"},
}


@pytest.mark.parametrize("fields", INCONSISTENT.values(), ids=INCONSISTENT.keys())
def test_inconsistent_rows_are_refused_by_the_database(fields):
    now = _now()
    values = {k: (now if v == "now" else now - timedelta(days=1) if v == "past" else v) for k, v in fields.items()}
    status = values.pop("status", OperationStatus.PENDING)
    base = status if status in OperationStatus.values and "result_envelope" not in values else OperationStatus.PENDING
    operation = operation_row(status=base)
    with pytest.raises(IntegrityError), transaction.atomic():
        Operation.objects.filter(pk=operation.id).update(status=status, **values)


@pytest.mark.parametrize("status", OperationStatus.values)
def test_consistent_rows_of_every_status_are_accepted(status):
    assert operation_row(status=status).status == status


def test_a_failed_operation_may_never_have_started():
    operation = operation_row(status=OperationStatus.FAILED, started_at=None, attempt=0)
    assert operation.started_at is None


def test_queryset_live_expired_purgeable():
    now = timezone.now()
    live = operation_row()
    expired = operation_row(created_at=now - timedelta(days=3))
    stuck = operation_row(status=OperationStatus.RUNNING, created_at=now - timedelta(days=3),
                          lease_expires_at=now - timedelta(days=2))
    assert set(Operation.objects.live(now)) == {live}
    assert set(Operation.objects.expired(now)) == {expired, stuck}
    assert set(Operation.objects.purgeable(now)) == {expired}
    assert set(Operation.objects.lease_expired(now)) == {stuck}
    assert set(Operation.objects.pending()) == {live, expired}
    assert set(Operation.objects.running()) == {stuck}


def test_the_payload_columns_come_last():
    # SQLite reaches a column only past every large column before it (see the model's comment).
    assert [field.column for field in Operation._meta.concrete_fields][-2:] == ["result_envelope", "request"]
    assert [field.column for field in OperationScenarioResult._meta.concrete_fields][-1] == "body"
    if connection.vendor == "sqlite":  # and so are the tables the migrations made
        with connection.cursor() as cursor:
            columns = [row[1] for row in cursor.execute("PRAGMA table_info(operations_operation)").fetchall()]
            assert columns[-2:] == ["result_envelope", "request"] and columns.index("owner_id") < 5
            columns = [row[1] for row in cursor.execute("PRAGMA table_info(operations_operationscenarioresult)")]
            assert columns[-1] == "body"
