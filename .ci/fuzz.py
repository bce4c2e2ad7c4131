#!/usr/bin/env python3
"""Schemathesis against the running service's /schema/, every endpoint, authenticated (`make fuzz`).

Starts the service the way `make run` does (gunicorn, 2 workers x 4 threads) on a scratch SQLite
database, issues a token, stores a few operations so that get, by-correlation, execute and cancel
reach real rows (not only 404s), and runs schemathesis with a bounded number of examples per
operation. A run passes when schemathesis finds no 5xx, no status code, content type, header or
body that the document does not describe, no endpoint that answers without credentials, and the
server logged no traceback. The last line counts the requests the fuzzer made (the access log's
lines, less the set-up's) and the time it took.

    .venv/bin/python .ci/fuzz.py                   # FUZZ_EXAMPLES=100, FUZZ_SEED=20261128
    FUZZ_EXAMPLES=500 FUZZ_SEED=7 .venv/bin/python .ci/fuzz.py

Each bug found here becomes a regression test in tests/ (see tests/api/test_hostile_input.py).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / ".venv" / "bin"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
SEED = int(os.environ.get("FUZZ_SEED", "20261128"))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "ignored_auth",  # every endpoint the document says needs credentials refuses a caller without
])
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms corr=%({x-correlation-id}o)s'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def call(base: str, method: str, path: str, token: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        base + path, data=body, method=method,
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def wait_ready(base: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"fuzz: the service exited with status {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/health/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise SystemExit("fuzz: the service did not become ready")


def seed_operations(base: str, token: str) -> tuple[list[str], list[str]]:
    """Stores operations to aim at: PENDING ones (execute, cancel) and a SUCCEEDED one (get)."""
    body = (REPO / "docs" / "examples" / "analyze-request.json").read_bytes()
    ids, correlation_ids = [], []
    for index in range(4):
        correlation_id = f"fuzz-seed-{index}"
        status, operation = call(base, "POST", "/rebalance/analyze/async", token, body,
                                 {"X-Correlation-Id": correlation_id})
        if status != 202:
            raise SystemExit(f"fuzz: seeding an operation answered {status}: {operation}")
        ids.append(operation["operation_id"])
        correlation_ids.append(correlation_id)
    status, executed = call(base, "POST", f"/rebalance/operations/{ids[0]}/execute", token)
    if status != 200 or executed["status"] != "SUCCEEDED":
        raise SystemExit(f"fuzz: executing the seed operation answered {status}: {executed}")
    return ids, correlation_ids


def schemathesis_config(ids: list[str], correlation_ids: list[str], scenario_names: list[str]) -> str:
    """Half of the generated ids are real ones; the other half stay random (404s, hostile text).
    The first id is a SUCCEEDED operation, so summaries and scenario results (real names half of
    the time) are reached too, not only their 404s and 409s."""
    return "\n".join([
        "[dictionaries.operation_ids]",
        f"values = {json.dumps(ids)}",
        "[dictionaries.correlation_ids]",
        f"values = {json.dumps(correlation_ids)}",
        "[dictionaries.scenario_names]",
        f"values = {json.dumps(scenario_names)}",
        "[parameters]",
        '"path.operation_id" = { dictionary = "operation_ids", probability = 0.5 }',
        '"path.correlation_id" = { dictionary = "correlation_ids", probability = 0.5 }',
        '"path.scenario_name" = { dictionary = "scenario_names", probability = 0.5 }',
        "",
    ])


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="dpm_fuzz_"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{work / 'fuzz.sqlite3'}",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_HTTPS": "false",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY") or "fuzz-" + os.urandom(24).hex(),
        # PENDING on submit, so the fuzzer's executes and cancels meet every status.
        "DPM_ASYNC_EXECUTION_MODE": "ACCEPT_ONLY",
        "DPM_API_AUTH_REQUIRED": "true",
        # Thousands of requests from one caller, hundreds of PENDING operations, deliberately
        # wrong tokens: every fair-use limit would answer 429 (a documented answer, but one that
        # would hide the endpoints' own behaviour from the fuzzer).
        "DPM_THROTTLE_ANALYZE_RATE": "off",
        "DPM_THROTTLE_SUBMIT_RATE": "off",
        "DPM_AUTH_FAILURE_RATE": "off",
        "DPM_ASYNC_MAX_UNFINISHED_PER_OWNER": "0",
    }
    manage = [str(BIN / "python"), "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=REPO, env=environment, check=True)
    token = subprocess.run([*manage, "issue_token", "fuzz", "--create-user"], cwd=REPO, env=environment,
                           check=True, capture_output=True, text=True).stdout.strip()
    access_log, error_log = work / "access.log", work / "error.log"
    server = subprocess.Popen(
        [str(BIN / "gunicorn"), "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "2", "--threads", "4", "--timeout", "120",
         "--access-logfile", str(access_log), "--access-logformat", ACCESS_LOG_FORMAT,
         "--error-logfile", str(error_log)],
        cwd=REPO, env=environment, start_new_session=True,
    )
    try:
        wait_ready(base, server)
        ids, correlation_ids = seed_operations(base, token)
        scenario_names = list(json.loads((REPO / "docs" / "examples" / "analyze-request.json").read_bytes())["scenarios"])
        (work / "schemathesis.toml").write_text(schemathesis_config(ids, correlation_ids, scenario_names))
        before = len(access_log.read_text().splitlines())
        started = time.monotonic()
        # Run from the scratch folder: schemathesis' caches land there, not in the repository.
        fuzz = subprocess.run(
            [str(BIN / "st"), "--config-file", str(work / "schemathesis.toml"), "run", f"{base}/schema/",
             "--header", f"Authorization: Token {token}", "--checks", CHECKS,
             "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "2",
             "--request-timeout", "60", "--output-sanitize", "true"],
            cwd=work, env=environment,
        )
        elapsed = time.monotonic() - started
        time.sleep(0.5)  # the access log is written after each response
        requests = len(access_log.read_text().splitlines()) - before
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    errors = error_log.read_text()
    tracebacks = errors.count("Traceback")
    # Each line ends `"<request line>" <status> <bytes> <ms>ms corr=<id>`.
    statuses = [line.rsplit(" ", 4)[1] for line in access_log.read_text().splitlines() if line.strip()]
    server_errors = sum(1 for status in statuses if status.startswith("5"))
    print(f"fuzz: {requests} requests in {elapsed:.0f} s ({EXAMPLES} examples per operation, seed {SEED}); "
          f"schemathesis exit status {fuzz.returncode}; {server_errors} 5xx answers; {tracebacks} tracebacks logged")
    if tracebacks:
        print(errors[-5000:])
    return 0 if fuzz.returncode == 0 and not tracebacks and not server_errors else 1


if __name__ == "__main__":
    sys.exit(main())
