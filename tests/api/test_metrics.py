"""/metrics and what it counts (docs/deployment.md, "Monitoring"), in process; the real gunicorn,
worker and Prometheus server are in tests/api/test_observability.py."""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from operations.maintenance import operations_recover_expired_leases
from operations.metrics import OperationsCollector
from operations.models import MaintenanceTally, Operation, OperationStatus, WorkerHeartbeat
from tests.factories.bodies import batch_body
from tests.factories.operations import ASYNC_URL, api_headers, api_user, operation_row, parse

pytestmark = pytest.mark.django_db


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    client = Client(headers=api_headers(api_user("metrics-staff", is_staff=True)))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"] == CONTENT_TYPE_LATEST
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }


def test_metrics_answers_a_staff_token_and_nobody_else(client, anonymous_client):
    assert anonymous_client.get("/metrics").status_code == 401
    assert parse(client.get("/metrics"))["code"] == "PERMISSION_DENIED"
    staff = api_user("metrics-staff", is_staff=True)
    assert Client(headers=api_headers(staff)).get("/metrics").status_code == 200
    # A staff session is not a token; and turning authentication off does not open it.
    session = Client()
    session.force_login(staff)
    assert session.get("/metrics").status_code == 401
    with override_settings(DPM_API_AUTH_REQUIRED=False):
        assert anonymous_client.get("/metrics").status_code == 401


def test_requests_are_counted_by_route_method_and_status(client):
    labels = {"route": "rebalance/operations/<str:operation_id>", "method": "GET", "status": "404"}
    before = sample("dpm_http_requests_total", **labels)
    seconds_before = sample("dpm_http_request_duration_seconds_count", **labels)
    for _ in range(3):
        assert client.get("/rebalance/operations/dop_" + "0" * 32).status_code == 404
    assert sample("dpm_http_requests_total", **labels) == before + 3
    assert sample("dpm_http_request_duration_seconds_count", **labels) == seconds_before + 3
    # Answered by the middleware before routing, still counted under its route; unknown paths share one label.
    bad = {"route": "rebalance/analyze", "method": "POST", "status": "400"}
    before_bad = sample("dpm_http_requests_total", **bad)
    client.post("/rebalance/analyze", data="{}", content_type="application/json",
                headers={"X-Correlation-Id": "not valid"})
    assert sample("dpm_http_requests_total", **bad) == before_bad + 1
    unknown = {"route": "(none)", "method": "GET", "status": "404"}
    before_unknown = sample("dpm_http_requests_total", **unknown)
    client.get("/no/such/path/12345")
    assert sample("dpm_http_requests_total", **unknown) == before_unknown + 1


def test_submissions_and_inline_runs_are_counted_by_mode_and_status(client):
    mode, runner, status = "INLINE", "INLINE", "SUCCEEDED"
    submitted = sample("dpm_operations_submitted_total", mode=mode)
    finished = sample("dpm_operations_finished_total", mode=runner, status=status)
    scenarios = sample("dpm_scenarios_run_total")
    with override_settings(DPM_ASYNC_EXECUTION_MODE=mode):
        response = client.post(ASYNC_URL, data=json.dumps(batch_body()), content_type="application/json",
                               headers={"X-Correlation-Id": "m-1"})
        assert parse(response)["status"] == status
        # A replay is not a submission.
        client.post(ASYNC_URL, data=json.dumps(batch_body()), content_type="application/json",
                    headers={"X-Correlation-Id": "m-1"})
    assert sample("dpm_operations_submitted_total", mode=mode) == submitted + 1
    assert sample("dpm_operations_finished_total", mode=runner, status=status) == finished + 1
    assert sample("dpm_scenarios_run_total") == scenarios + len(batch_body()["scenarios"])


def test_an_executed_operation_is_counted_under_execute(client):
    operation = operation_row()
    finished = sample("dpm_operations_finished_total", mode="EXECUTE", status="SUCCEEDED")
    timed = sample("dpm_operation_execution_seconds_count", mode="EXECUTE")
    assert parse(client.post(f"/rebalance/operations/{operation.id}/execute"))["status"] == "SUCCEEDED"
    assert sample("dpm_operations_finished_total", mode="EXECUTE", status="SUCCEEDED") == finished + 1
    assert sample("dpm_operation_execution_seconds_count", mode="EXECUTE") == timed + 1


def test_the_queue_workers_and_maintenance_are_read_from_the_database_at_scrape_time():
    now = timezone.now()
    operation_row(created_at=now - timedelta(seconds=90))
    operation_row(created_at=now - timedelta(seconds=10))
    operation_row(status=OperationStatus.SUCCEEDED)
    # Expired PENDING work is gone for every endpoint: not in the queue.
    operation_row(created_at=now - timedelta(days=3), ttl=timedelta(days=1))
    operation_row(status=OperationStatus.RUNNING, attempt=1, lease_expires_at=now - timedelta(seconds=1))
    WorkerHeartbeat.objects.create(worker_id="w-1", hostname="h", pid=1, started_at=now, seen_at=now)
    WorkerHeartbeat.objects.create(worker_id="w-2", hostname="h", pid=2, started_at=now,
                                   seen_at=now - timedelta(hours=1))
    MaintenanceTally.objects.all().delete()  # counted from zero here (and created again on first use)
    assert operations_recover_expired_leases(enqueue=False) == 1
    out = io.StringIO()
    call_command("purge_expired_operations", stdout=out)
    assert out.getvalue().startswith("purged 1 expired operation(s)")

    metrics = scrape()
    assert metrics[("dpm_operations_pending", ())] == 3  # two, and the requeued one
    assert 90 <= metrics[("dpm_operations_oldest_pending_age_seconds", ())] < 120
    assert metrics[("dpm_operations_running", ())] == 0
    assert metrics[("dpm_workers_alive", ())] == 1
    assert metrics[("dpm_operations_lease_recoveries_total", (("outcome", "requeued"),))] == 1
    assert metrics[("dpm_operations_lease_recoveries_total", (("outcome", "failed"),))] == 0
    assert metrics[("dpm_operations_purged_total", ())] == 1
    assert metrics[("dpm_operations_store_up", ())] == 1


def test_an_empty_queue_is_zero_pending_of_age_zero():
    metrics = scrape()
    assert metrics[("dpm_operations_pending", ())] == 0
    assert metrics[("dpm_operations_oldest_pending_age_seconds", ())] == 0


@pytest.mark.postgres
def test_the_queue_query_walks_the_status_index_on_postgresql():
    now = timezone.now()
    owner = api_user()
    Operation.objects.bulk_create([
        Operation(id=f"dop_{index:032x}", owner=owner, operation_type="ANALYZE_SCENARIOS", status="FAILED",
                  correlation_id=f"idx-{index}", request=b"{}", request_fingerprint="sha256:" + "0" * 64,
                  error={"code": "OPERATION_CANCELLED", "message": "cancelled", "details": {}},
                  created_at=now, finished_at=now,
                  expires_at=now + timedelta(days=1))
        for index in range(20_000)
    ], batch_size=5000)
    operation_row(created_at=now - timedelta(seconds=30))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE operations_operation")
    with CaptureQueriesContext(connection) as captured:
        list(OperationsCollector().collect())
    queue_sql = next(query["sql"] for query in captured.captured_queries
                     if "COUNT" in query["sql"] and "operations_operation" in query["sql"] and "PENDING" in query["sql"])
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + queue_sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "operation_status_list_idx" in plan, plan
    assert "Seq Scan" not in plan, plan


@pytest.mark.django_db(False)
def test_the_metrics_directory_is_emptied_at_start_and_kept_when_gunicorn_reloads(monkeypatch, tmp_path):
    from dpm_async import server

    monkeypatch.delenv(server.PREPARED_ENV, raising=False)
    monkeypatch.setenv(server.MULTIPROC_ENV, str(tmp_path))
    (tmp_path / "counter_123.db").write_bytes(b"a previous instance's counts")
    assert server.metrics_directory_prepare() == (str(tmp_path), False)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "counter_456.db").write_bytes(b"this instance's counts")
    assert server.metrics_directory_prepare() == (str(tmp_path), False)  # SIGHUP reads the config again
    assert [path.name for path in tmp_path.iterdir()] == ["counter_456.db"]

    monkeypatch.delenv(server.MULTIPROC_ENV)
    monkeypatch.delenv(server.PREPARED_ENV)
    created, ours = server.metrics_directory_prepare()
    try:
        assert ours and os.environ[server.MULTIPROC_ENV] == created and os.listdir(created) == []
    finally:
        server.metrics_directory_remove(created)
