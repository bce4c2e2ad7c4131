"""Seeing it run, with the real components (docs/deployment.md, "Monitoring", "Logs", "Readiness").

The web service as `make run` starts it (gunicorn with gunicorn.conf.py, 2 workers x 4 threads),
a real `manage.py db_worker` serving metrics on DPM_WORKER_METRICS_PORT, and a real Prometheus
server (Debian's package) scraping both, /metrics with a staff token from a credentials file as
docs/deployment.md configures it. All on the suite's own database (SQLite file or PostgreSQL), in
WORKER mode with JSON logs. After a known sequence of requests, PromQL through Prometheus' HTTP
API returns the expected counts; readiness is 503 without a worker and 200 with one; and every
line the processes wrote is one JSON object carrying the right ids, with no token and no body.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from dpm_async.tokens import api_token_issue
from tests.workers.processes import wait_for

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SAMPLE = json.loads((REPO / "docs" / "examples" / "analyze-request.json").read_text())
PROMETHEUS = shutil.which("prometheus")
# Short, so that the test sees a stuck queue within seconds.
READY_WINDOW_SECONDS = 2
MARKER = "confidential-portfolio-marker"

pytestmark = pytest.mark.skipif(
    PROMETHEUS is None and not os.environ.get("CI"),
    reason="needs Debian's prometheus package (apt-get install prometheus; .ci/run installs it)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    from tests.workers.processes import database_url as postgres_url

    return postgres_url(settings)


@dataclass
class Stack:
    work: Path
    environment: dict[str, str]
    web_port: int
    worker_port: int
    prometheus_port: int
    keys: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, command: list[str], **extra: str) -> None:
        log = (self.work / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(command, cwd=REPO, env={**self.environment, **extra}, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, name: str) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def log(self, name: str) -> str:
        return (self.work / f"{name}.log").read_text(errors="replace")

    def call(self, method: str, path: str, user: str | None = "alice", body: Any = None,
             headers: dict[str, str] | None = None, port: int | None = None) -> tuple[int, Any]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if user is not None:
            all_headers["Authorization"] = f"Token {self.keys[user]}"
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        request = urllib.request.Request(f"http://127.0.0.1:{port or self.web_port}{path}", data=data,
                                         method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw, kind = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            status, raw, kind = error.code, error.read(), error.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in kind else raw.decode()

    def promql(self, query: str) -> float | None:
        """The value of an instant query through Prometheus' HTTP API (None: no series)."""
        url = f"http://127.0.0.1:{self.prometheus_port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        with urllib.request.urlopen(url, timeout=10) as response:
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        result = answer["data"]["result"]
        return float(result[0]["value"][1]) if result else None


def _up(check: Callable[[], bool]) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return check()
        except OSError:
            return False
    return probe


@pytest.fixture
def stack(transactional_db: None, tmp_path: Path) -> Iterator[Stack]:
    if PROMETHEUS is None:
        pytest.fail("Debian's prometheus package is missing: .ci/run installs it (apt-get install prometheus)")
    keys = {
        "prometheus": api_token_issue("prometheus", name="prometheus", create_user=True, staff=True).key,
        "alice": api_token_issue("alice", name="orchestrator", create_user=True).key,
    }
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("DJANGO_", "DPM_", "DATABASE_URL", "PROMETHEUS_"))}
    environment.update({
        "DJANGO_ENV_FILE": "", "DJANGO_SETTINGS_MODULE": "dpm_async.settings", "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_HTTPS": "false", "DJANGO_SECRET_KEY": "observability-" + os.urandom(16).hex(),
        "DATABASE_URL": database_url(), "DPM_LOG_FORMAT": "json", "DPM_ASYNC_EXECUTION_MODE": "WORKER",
        "DPM_READY_MAX_PENDING_AGE_SECONDS": str(READY_WINDOW_SECONDS), "PYTHONUNBUFFERED": "1",
    })
    running = Stack(tmp_path, environment, free_port(), free_port(), free_port(), keys)
    (tmp_path / "prometheus.token").write_text(keys["prometheus"] + "\n")
    # The scrape configuration of docs/deployment.md, with one-second intervals.
    (tmp_path / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, scrape_timeout: 1s}}
scrape_configs:
  - job_name: dpm-web
    metrics_path: /metrics
    authorization: {{type: Token, credentials_file: {tmp_path / 'prometheus.token'}}}
    static_configs: [{{targets: ['127.0.0.1:{running.web_port}']}}]
  - job_name: dpm-worker
    static_configs: [{{targets: ['127.0.0.1:{running.worker_port}']}}]
""")
    try:
        running.start("web", [str(BIN / "gunicorn"), "dpm_async.wsgi:application", "--bind",
                              f"127.0.0.1:{running.web_port}", "--workers", "2", "--threads", "4",
                              "--timeout", "600", "--access-logfile", "-"])
        running.start("prometheus", [PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                     f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                                     f"--web.listen-address=127.0.0.1:{running.prometheus_port}"])
        wait_for(_up(lambda: running.call("GET", "/health/live", None)[0] == 200), timeout=60, what="gunicorn")
        wait_for(_up(lambda: urllib.request.urlopen(
            f"http://127.0.0.1:{running.prometheus_port}/-/ready", timeout=2).status == 200),
            timeout=60, what="prometheus")
        yield running
    finally:
        for name in list(running.processes):
            running.stop(name)


def start_worker(stack: Stack) -> None:
    stack.start("worker", [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay",
                           "--interval", "0.1", "--worker-id", "observed-1"],
                DPM_WORKER_METRICS_PORT=str(stack.worker_port))
    wait_for(lambda: "Starting worker" in stack.log("worker"), timeout=60, what="the worker to start")


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line as a JSON object (fails on any line that is not one)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line[:300]!r}") from None
        assert isinstance(entry, dict) and {"time", "level", "logger", "message", "correlation_id"} <= set(entry)
        lines.append(entry)
    return lines


def test_prometheus_scrapes_the_web_and_the_worker_and_readiness_tells_the_truth(stack: Stack):
    body = {**SAMPLE, "portfolio_snapshot": {**SAMPLE["portfolio_snapshot"], "portfolio_id": MARKER}}

    # No worker yet: the first submission waits, and once it is older than the window the web
    # process is not ready, and says why.
    status, first = stack.call("POST", "/rebalance/analyze/async", body=body, headers={"X-Correlation-Id": "obs-0"})
    assert (status, first["status"]) == (202, "PENDING")
    status, problem = wait_for(lambda: (lambda answer: answer if answer[0] == 503 else None)(
        stack.call("GET", "/health/ready", None)), timeout=30, what="readiness to turn 503")
    assert problem["code"] == "SERVICE_NOT_READY"
    assert problem["checks"]["workers"].startswith("PENDING operations have waited")
    assert "no worker has sent a heartbeat within 2 s" in problem["detail"]

    start_worker(stack)
    wait_for(lambda: stack.call("GET", first["status_url"])[1]["status"] == "SUCCEEDED", timeout=60,
             what="the worker to run the first operation")
    status, ready = wait_for(lambda: (lambda answer: answer if answer[0] == 200 else None)(
        stack.call("GET", "/health/ready", None)), timeout=30, what="readiness to turn 200")
    assert ready == {"status": "ok", "checks": {"database": "ok", "migrations": "ok", "workers": "ok"}}

    # The known sequence: 3 more submissions, 2 synchronous batches, a bad body, a caller without
    # a token, and /metrics refused to a non-staff token.
    operation_ids = [first["operation_id"]]
    for index in range(1, 4):
        status, operation = stack.call("POST", "/rebalance/analyze/async", body=body,
                                       headers={"X-Correlation-Id": f"obs-{index}"})
        assert status == 202
        operation_ids.append(operation["operation_id"])
    for index in range(2):
        assert stack.call("POST", "/rebalance/analyze", body=body, headers={"X-Correlation-Id": f"sync-{index}"})[0] == 200
    assert stack.call("POST", "/rebalance/analyze", body=b"{", headers={"X-Correlation-Id": "bad-1"})[0] == 400
    assert stack.call("GET", "/rebalance/operations", None, headers={"X-Correlation-Id": "anon-1"})[0] == 401
    assert stack.call("GET", "/metrics", "alice")[0] == 403
    wait_for(lambda: all(stack.call("GET", f"/rebalance/operations/{oid}")[1]["status"] == "SUCCEEDED"
                         for oid in operation_ids), timeout=60, what="the worker to run every operation")

    scenarios = len(SAMPLE["scenarios"])
    expected = {
        'up{job="dpm-web"}': 1,
        'up{job="dpm-worker"}': 1,
        'sum(dpm_http_requests_total{job="dpm-web",route="rebalance/analyze/async",method="POST",status="202"})': 4,
        'sum(dpm_http_requests_total{job="dpm-web",route="rebalance/analyze",status="200"})': 2,
        'sum(dpm_http_requests_total{job="dpm-web",route="rebalance/analyze",status="400"})': 1,
        'sum(dpm_http_requests_total{job="dpm-web",route="rebalance/operations",status="401"})': 1,
        'sum(dpm_http_requests_total{job="dpm-web",route="metrics",status="403"})': 1,
        'sum(dpm_http_request_duration_seconds_count{job="dpm-web",route="rebalance/analyze",status="200"})': 2,
        'sum(dpm_operations_submitted_total{job="dpm-web",mode="WORKER"})': 4,
        'sum(dpm_operations_finished_total{job="dpm-worker",mode="WORKER",status="SUCCEEDED"})': 4,
        'sum(dpm_operation_execution_seconds_count{job="dpm-worker",mode="WORKER"})': 4,
        'dpm_scenarios_run_total{job="dpm-worker"}': 4 * scenarios,
        'sum(dpm_scenarios_run_total{job="dpm-web"})': 2 * scenarios,
        'dpm_operations_pending{job="dpm-web"}': 0,
        'dpm_operations_oldest_pending_age_seconds{job="dpm-web"}': 0,
        'dpm_workers_alive{job="dpm-web"}': 1,
        'dpm_operations_store_up{job="dpm-web"}': 1,
    }

    def all_as_expected() -> bool:
        return all(stack.promql(query) == value for query, value in expected.items())

    try:
        wait_for(all_as_expected, timeout=60, every=0.5, what="Prometheus to scrape the expected counts")
    except AssertionError:
        raise AssertionError({query: (stack.promql(query), value) for query, value in expected.items()}) from None

    # --- the logs of both processes ------------------------------------------------------------
    stack.stop("worker")
    stack.stop("web")
    web, worker = json_lines(stack.log("web")), json_lines(stack.log("worker"))
    everything = stack.log("web") + stack.log("worker")
    for secret in (*stack.keys.values(), MARKER, '"positions"'):
        assert secret not in everything
    assert "authorization" not in everything.lower()

    access = [entry for entry in web if entry["logger"] == "gunicorn.access"]
    by_correlation = {entry["correlation_id"]: entry for entry in access}
    for correlation_id, path, status in (("obs-0", "/rebalance/analyze/async", 202),
                                         ("sync-1", "/rebalance/analyze", 200),
                                         ("bad-1", "/rebalance/analyze", 400),
                                         ("anon-1", "/rebalance/operations", 401)):
        assert by_correlation[correlation_id]["http"]["path"] == path
        assert by_correlation[correlation_id]["http"]["status"] == status
    # Every access line carries an id (generated when the caller sent none).
    assert access and all(entry["correlation_id"] for entry in access)

    # Each task line of the worker names the operation it runs and that operation's correlation id.
    tasks = [entry for entry in worker if entry["logger"] == "django.tasks"]
    ran = {entry["operation_id"]: entry["correlation_id"] for entry in tasks}
    assert ran == {operation_id: f"obs-{index}" for index, operation_id in enumerate(operation_ids)}
    assert all(entry.get("operation_id") for entry in tasks)
