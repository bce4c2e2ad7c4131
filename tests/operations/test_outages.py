"""Database outages and dead web processes (docs/deployment.md, "Database outages"; docs/operations.md,
"When a run dies"), black-box: the service as `make run` starts it, on a private PostgreSQL server
that the test stops, kills and freezes itself (tests/pgserver.py) - never the shared one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.factories.bodies import big_batch, small_batch
from tests.pgserver import PrivatePostgres, postgres_bindir
from tests.served import Server, served
from tests.workers.processes import WorkerProcess, wait_for

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(postgres_bindir() is None, reason="the PostgreSQL server binaries are not installed"),
]

TIMEOUTS = {"DPM_DB_CONNECT_TIMEOUT_SECONDS": "2", "DPM_DB_STATEMENT_TIMEOUT_SECONDS": "2"}


@pytest.fixture
def database() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    server.start()
    try:
        yield server
    finally:
        server.close()


def timed_call(server: Server, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, object, float]:
    started = time.monotonic()
    status, headers, answer = server.call(method, path, "alice", body, timeout=30)
    return status, headers, answer, time.monotonic() - started


def assert_unavailable(server: Server, seconds: float) -> None:
    """Every kind of endpoint answers 503 DATABASE_UNAVAILABLE with Retry-After within `seconds`,
    and readiness says so within 2 s."""
    for method, path, body in (("GET", "/rebalance/operations", None),
                               ("POST", "/rebalance/analyze/async", json.dumps(small_batch()).encode()),
                               ("GET", "/rebalance/operations/by-correlation/anything", None)):
        status, headers, problem, took = timed_call(server, method, path, body)
        assert (status, problem["code"]) == (503, "DATABASE_UNAVAILABLE"), (method, path, problem)
        assert int(headers["Retry-After"]) > 0 and took < seconds, (method, path, took)
    started = time.monotonic()
    status, _, problem = server.call("GET", "/health/ready", timeout=30)
    assert status == 503 and problem["code"] == "SERVICE_NOT_READY"
    assert time.monotonic() - started < 2.0


def test_a_database_that_refuses_connections_is_a_503_with_retry_after_and_not_ready(database):
    with served(database_url=database.create_database("service"), **TIMEOUTS) as server:
        assert server.call("GET", "/rebalance/operations", "alice")[0] == 200
        database.stop()
        assert_unavailable(server, seconds=3)
        database.start()
        wait_for(lambda: server.call("GET", "/rebalance/operations", "alice")[0] == 200, timeout=30,
                 what="the service to serve again")
        assert server.call("GET", "/health/ready")[0] == 200
    assert "Traceback" not in server.output.read_text()


def test_a_database_that_accepts_but_never_answers_is_a_503_within_the_timeouts(database):
    with served(database_url=database.create_database("service"), **TIMEOUTS) as server:
        assert server.call("GET", "/rebalance/operations", "alice")[0] == 200  # connections now kept open
        pids = [database.pid, *(int(p) for p in subprocess.run(
            ["pgrep", "-P", str(database.pid)], capture_output=True, text=True).stdout.split())]
        for pid in pids:  # the whole server: the postmaster and every backend
            os.kill(pid, signal.SIGSTOP)
        try:
            # Statement deadline (2 + 1 s) on kept connections, connect timeout (2 s) on new ones.
            assert_unavailable(server, seconds=6)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        wait_for(lambda: server.call("GET", "/rebalance/operations", "alice")[0] == 200, timeout=30,
                 what="the service to serve again")


def test_a_database_restart_of_a_few_seconds_during_a_worker_run_costs_no_rerun(database, tmp_path: Path):
    url = database.create_database("service")
    with served(database_url=url, DPM_ASYNC_EXECUTION_MODE="WORKER") as server:
        worker = WorkerProcess("w-outage", database=url, log_dir=tmp_path, DPM_ASYNC_EXECUTION_LEASE_SECONDS="30",
                               DPM_DB_WRITE_RETRY_SECONDS="60")
        try:
            wait_for(worker.ready, timeout=60, what="the worker to start")
            status, _, accepted = server.call("POST", "/rebalance/analyze/async", "alice",
                                              json.dumps(big_batch(lines=2000, scenarios=20)).encode())
            assert status == 202
            resource_url = accepted["status_url"]

            def progressed() -> bool:
                resource = server.call("GET", resource_url, "alice")[2]
                return resource["status"] == "RUNNING" and resource["progress"]["scenarios_done"] >= 2

            wait_for(progressed, timeout=60, every=0.05, what="the run to be mid-batch")
            database.stop()  # a restart: the run's next lease renewal meets no database
            time.sleep(3)
            database.start()
            wait_for(lambda: server.call("GET", resource_url, "alice")[2]["status"] == "SUCCEEDED", timeout=120,
                     every=0.2, what="the run to finish")
            resource = server.call("GET", resource_url, "alice")[2]
            assert (resource["attempt"], resource["progress"]["scenarios_done"]) == (1, 20)  # not run again
            assert "trying again" in worker.log()
        finally:
            worker.stop()


def _gunicorn_workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


@pytest.mark.parametrize(("manual_execution", "settled"), [("true", "PENDING"), ("false", "FAILED")])
def test_a_web_process_killed_during_an_inline_run_leaves_no_operation_running(database, manual_execution, settled):
    settings = {"DPM_ASYNC_EXECUTION_MODE": "INLINE", "DPM_ASYNC_EXECUTION_LEASE_SECONDS": "4",
                "DPM_ASYNC_RECOVERY_INTERVAL_SECONDS": "1", "DPM_ASYNC_MANUAL_EXECUTION_ENABLED": manual_execution}
    with served(database_url=database.create_database("service"), **settings) as server:
        submitted = threading.Thread(target=lambda: _submit_quietly(server), daemon=True)
        submitted.start()
        with psycopg.connect(database.url("service"), autocommit=True) as watcher:
            def running() -> str | None:
                row = watcher.execute("SELECT id FROM operations_operation WHERE status = 'RUNNING'").fetchone()
                return row[0] if row else None

            operation_id = wait_for(running, timeout=60, what="the INLINE run to start")
            for pid in _gunicorn_workers(server.process.pid):  # the master starts new ones
                os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()

            def left_running() -> str | None:
                status = watcher.execute("SELECT status FROM operations_operation WHERE id = %s",
                                         [operation_id]).fetchone()[0]
                return None if status == "RUNNING" else status

            # Nobody reads it and no cron runs: the new web processes' sweepers settle it.
            assert wait_for(left_running, timeout=30, every=0.1, what="the dead run to be settled") == settled
            assert time.monotonic() - killed_at < 4 + 5  # the lease, plus a few seconds
        resource = server.call("GET", f"/rebalance/operations/{operation_id}", "alice")[2]
        assert resource["status"] == settled
        if settled == "PENDING":
            assert resource["is_executable"] is True
        else:
            assert resource["error"]["code"] == "EXECUTION_LEASE_EXPIRED"


def _submit_quietly(server: Server) -> None:
    try:
        server.call("POST", "/rebalance/analyze/async", "alice", json.dumps(big_batch(lines=3000, scenarios=20)).encode(),
                    {"X-Correlation-Id": "inline-killed"}, timeout=120)
    except OSError:
        pass  # its web process was killed: no answer
