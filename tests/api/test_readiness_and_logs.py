"""Readiness that tells the truth, workers' heartbeats, and what a log line carries, in process
(real processes: tests/api/test_observability.py)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import override_settings
from django.utils import timezone

from dpm_async.correlation import (
    CORRELATION_REQUEST_KEY,
    CorrelationIdLogFilter,
    correlation_id_bound,
    operation_id_bound,
)
from dpm_async.logs import JsonLogFormatter
from operations.heartbeats import HeartbeatThread, worker_heartbeat_record, workers_seen_since
from operations.models import WorkerHeartbeat
from tests.factories.operations import operation_row, parse

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("readiness_on_the_test_connection")]


WINDOW = 60


def ready(client) -> tuple[int, dict]:
    response = client.get("/health/ready")
    return response.status_code, parse(response)


def test_ready_names_each_check(anonymous_client):
    assert ready(anonymous_client) == (200, {"status": "ok", "checks": {
        "database": "ok", "migrations": "ok", "workers": "not checked (execution mode INLINE)"}})


@override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER", DPM_READY_MAX_PENDING_AGE_SECONDS=WINDOW)
def test_worker_mode_is_not_ready_when_old_work_waits_and_no_worker_beats(anonymous_client):
    now = timezone.now()
    operation_row(created_at=now - timedelta(seconds=WINDOW - 5))
    assert ready(anonymous_client)[0] == 200  # young work: no verdict yet
    operation_row(created_at=now - timedelta(seconds=WINDOW + 30))
    status, problem = ready(anonymous_client)
    assert status == 503
    assert problem["code"] == "SERVICE_NOT_READY" and problem["status"] == 503
    assert problem["checks"]["workers"] == (
        f"PENDING operations have waited {WINDOW + 30} s and no worker has sent a heartbeat within {WINDOW} s"
    )
    assert problem["detail"] == f"Not ready: workers: {problem['checks']['workers']}."
    # A worker that beat long ago does not count; one that beat within the window does (busy, not missing).
    WorkerHeartbeat.objects.create(worker_id="old", hostname="h", pid=1, started_at=now,
                                   seen_at=now - timedelta(seconds=WINDOW + 1))
    assert ready(anonymous_client)[0] == 503
    worker_heartbeat_record("w-1", started_at=now)
    assert ready(anonymous_client)[0] == 200


def test_a_migration_not_applied_is_named(anonymous_client):
    # The newest migration of the operations app, whichever it is.
    [(_, latest)] = [node for node in MigrationLoader(connection).graph.leaf_nodes() if node[0] == "operations"]
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM django_migrations WHERE app = 'operations' AND name = %s", [latest])
    status, problem = ready(anonymous_client)
    assert status == 503
    assert problem["checks"] == {
        "database": "ok",
        "migrations": f"not applied: operations.{latest} (run manage.py migrate)",
    }


@pytest.mark.breaks_the_contract
def test_a_database_that_fails_is_not_ready_and_the_probe_answers(anonymous_client, monkeypatch):
    from dpm_async import health

    def broken() -> str:
        raise connection.Database.OperationalError("connection refused")

    monkeypatch.setattr(health, "_migrations_state", broken)
    status, problem = ready(anonymous_client)
    assert status == 503 and problem["checks"] == {"database": "unreachable"}


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_and_removes_its_row_when_it_stops():
    thread = HeartbeatThread("w-9", interval=0.05)
    thread.start()
    assert thread.round_done.wait(10)
    assert workers_seen_since(timezone.now() - timedelta(seconds=5))
    thread.stopping.set()
    thread.join(10)
    assert not WorkerHeartbeat.objects.filter(pk="w-9").exists()


@pytest.fixture
def captured() -> list[logging.LogRecord]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    handler.addFilter(CorrelationIdLogFilter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.propagate = False
    yield records
    logger.removeHandler(handler)
    logger.propagate = True


def test_json_lines_carry_the_correlation_and_operation_ids_on_one_line(captured):
    logger = logging.getLogger("tests.logs")
    with correlation_id_bound("orch-7"), operation_id_bound("dop_" + "a" * 32):
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logger.exception("run failed")
    logger.warning("outside")
    lines = [JsonLogFormatter().format(record) for record in captured]
    assert all("\n" not in line for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert first["correlation_id"] == "orch-7" and first["operation_id"] == "dop_" + "a" * 32
    assert first["message"] == "run failed" and "ValueError: boom\nsecond line" in first["exception"]
    assert first["level"] == "ERROR" and first["logger"] == "tests.logs" and first["time"].endswith("Z")
    assert second["correlation_id"] is None and "operation_id" not in second


def test_djangos_request_error_line_carries_the_requests_correlation_id(captured, rf):
    # Django writes "Internal Server Error: /path" after the middleware returned, with the request
    # attached to the record: the id the middleware left on it is used.
    request = rf.get("/x")
    request.META[CORRELATION_REQUEST_KEY] = "orch-8"
    logging.getLogger("tests.logs").error("Internal Server Error: %s", "/x", extra={"request": request})
    assert captured[-1].correlation_id == "orch-8"
