#!/usr/bin/env python3
"""HTTP benchmark of the async operations: accept, GET of a finished 70 MB operation, list page.

    .venv/bin/python bench/operations_http.py                         # SQLite scratch database
    .venv/bin/python bench/operations_http.py --database-url postgres://postgres@127.0.0.1:5432/dpm_async_bench
    .venv/bin/python bench/operations_http.py --base-url http://127.0.0.1:8000 [--database-url …]

Without --base-url it migrates a scratch database, starts the service with gunicorn as `make run`
does (2 workers x 4 threads, ACCEPT_ONLY mode) on a free port, and stops it at the end; a scratch
PostgreSQL database is created and dropped. With --base-url it measures a running service (which
should be in ACCEPT_ONLY mode) with --token (a key from `manage.py issue_token`); the list
measurement then needs --database-url to store its 100,000 operations (owned by the token's user,
since a caller lists only its own) directly, and is skipped otherwise. Every request carries the
token: its lookup is part of what a real request costs.

It measures, each as the median of --runs timed requests (after two untimed warm-ups, one per worker):
  (a) POST /rebalance/analyze/async of `gen_batch.py -p 2000 -t 2000 -s 20 --seed 1`   target <= 100 ms
  (b) GET /rebalance/operations/{id} of that operation once executed (~71 MB result)   target <= 1.5 s
  (c) GET /rebalance/operations (first page, 50 items) with 100,000 operations stored  target <= 50 ms
Standard library client; each time is from sending the request to having read the whole body.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from benchlib import FAIR_USE_OFF, free_port, load_gen_batch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GEN_BATCH = REPO.parent / "shared" / "bench" / "gen_batch.py"
TARGETS_MS = {"accept": 100, "get": 1500, "list": 50}
WARMUP = 2  # untimed requests first: one per gunicorn worker
# `Authorization: Token …` of the benchmark's caller, sent with every request once known.
AUTH_HEADERS: dict[str, str] = {}


def request(base_url: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
    """One request on a fresh connection; returns (status, body, seconds until the body was read)."""
    url = urllib.parse.urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=900)
    all_headers = {"Content-Type": "application/json"} if body is not None else {}
    all_headers.update(AUTH_HEADERS)
    all_headers.update(headers or {})
    started = time.perf_counter()
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    payload = _read_body(response)
    elapsed = time.perf_counter() - started
    connection.close()
    return response.status, payload, elapsed


def _read_body(response: http.client.HTTPResponse) -> bytes:
    """The whole body, read into one preallocated buffer (http.client's read() of a 70 MB body
    spends longer joining its pieces than the server spends sending them)."""
    length = response.getheader("Content-Length")
    if length is None:
        return response.read()
    buffer = bytearray(int(length))
    view, got = memoryview(buffer), 0
    while got < len(buffer):
        count = response.readinto(view[got:])
        if not count:
            raise ConnectionError(f"body ended after {got} of {len(buffer)} bytes")
        got += count
    return bytes(buffer)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


class Service:
    """A gunicorn-served instance on a scratch database, as `make run` starts it."""

    def __init__(self, database_url: str | None, workdir: Path):
        self.workdir = workdir
        self.created_postgres_db: str | None = None
        if database_url is None:
            database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        elif database_url.startswith("postgres"):
            name = f"dpm_async_bench_{secrets.token_hex(4)}"
            admin_url = database_url.rsplit("/", 1)[0]
            subprocess.run(["psql", f"{admin_url}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
            self.created_postgres_db = name
            self.admin_url = admin_url
            database_url = f"{admin_url}/{name}"
        self.database_url = database_url
        self.env = {
            **os.environ,
            **FAIR_USE_OFF,
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "DJANGO_DEBUG": "false",
            "DJANGO_LOG_LEVEL": "WARNING",
            "DPM_ASYNC_EXECUTION_MODE": "ACCEPT_ONLY",
            "DJANGO_SETTINGS_MODULE": "dpm_async.settings",
        }
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=REPO, env=self.env, check=True)
        self.token = subprocess.run([python, "manage.py", "issue_token", "bench", "--create-user"], cwd=REPO,
                                    env=self.env, check=True, capture_output=True, text=True).stdout.split()[-1]
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        gunicorn = str(Path(python).with_name("gunicorn"))
        self.process = subprocess.Popen(
            [gunicorn, "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--threads", "4", "--timeout", "600", "--log-level", "warning"],
            cwd=REPO, env=self.env,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if request(self.base_url, "GET", "/health/live")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("the service did not start")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.created_postgres_db:
            subprocess.run(["psql", f"{self.admin_url}/postgres", "-qc",
                            f"DROP DATABASE IF EXISTS {self.created_postgres_db} WITH (FORCE)"], check=False)


def store_operations(database_url: str, count: int, token: str) -> None:
    """Stores `count` finished operations of the token's user directly (bulk INSERT in one
    transaction per 10,000)."""
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "dpm_async.settings",
           "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "bench-only")}
    script = f"""
import django; django.setup()
from datetime import timedelta
from django.db import transaction
from django.utils import timezone
from dpm_async.models import ApiToken
from dpm_async.tokens import api_token_digest
from operations.models import Operation, operation_id_generate

owner = ApiToken.objects.get(digest=api_token_digest({token!r})).user
now = timezone.now()
done = 0
while done < {count}:
    rows = []
    for i in range(done, min(done + 10000, {count})):
        created = now - timedelta(seconds={count} - i)
        rows.append(Operation(id=operation_id_generate(), owner=owner, operation_type="ANALYZE_SCENARIOS", status="SUCCEEDED",
            correlation_id=f"bench-list-{{i}}-{{operation_id_generate()[4:16]}}", request="{{}}",
            request_fingerprint="sha256:" + "0" * 64, result_envelope="{{}}", created_at=created, started_at=created,
            finished_at=created, expires_at=now + timedelta(days=1), attempt=1))
    with transaction.atomic():
        Operation.objects.bulk_create(rows, batch_size=2000)
    done += len(rows)
"""
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", help="measure this running service instead of starting one")
    parser.add_argument("--database-url", help="scratch database (default: a SQLite file in a temp dir)")
    parser.add_argument("--token", help="API token for --base-url (`manage.py issue_token <user>`)")
    parser.add_argument("--runs", type=int, default=7, help="timed runs per measurement (default 7, minimum 5)")
    parser.add_argument("--list-rows", type=int, default=100_000)
    parser.add_argument("--gen-batch", type=Path, default=DEFAULT_GEN_BATCH, help="path of gen_batch.py")
    parser.add_argument("-p", "--positions", type=int, default=2000)
    parser.add_argument("-t", "--targets", type=int, default=2000)
    parser.add_argument("-s", "--scenarios", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    runs = max(5, args.runs)

    gen_batch = load_gen_batch(args.gen_batch)
    body = json.dumps(gen_batch.build_request(positions=args.positions, targets=args.targets,
                                              scenarios=args.scenarios, seed=args.seed)).encode()
    print(f"request body: {len(body):,} bytes ({args.positions} positions, {args.targets} targets, "
          f"{args.scenarios} scenarios, seed {args.seed})")

    with tempfile.TemporaryDirectory(prefix="dpm-ops-bench-") as workdir:
        service = None if args.base_url else Service(args.database_url, Path(workdir))
        base_url = args.base_url or service.base_url
        token = args.token if args.base_url else service.token
        if not token:
            raise SystemExit("--base-url needs --token: every endpoint but the probes needs a caller")
        AUTH_HEADERS["Authorization"] = f"Token {token}"
        database_url = args.database_url if args.base_url else service.database_url
        try:
            results = measure(base_url, database_url, body, runs, args.list_rows, token)
        finally:
            if service:
                service.stop()
    print()
    print(json.dumps(results, indent=2))


def measure(base_url: str, database_url: str | None, body: bytes, runs: int, list_rows: int,
            token: str) -> dict[str, Any]:
    run_id = secrets.token_hex(4)
    results: dict[str, Any] = {"base_url": base_url, "database": (database_url or "?").split("://")[0]}

    # (a) accept
    samples, operation_ids = [], []
    for run in range(runs + WARMUP):
        status, payload, elapsed = request(base_url, "POST", "/rebalance/analyze/async", body,
                                           {"X-Correlation-Id": f"bench-{run_id}-accept-{run}"})
        assert status == 202, (status, payload[:500])
        resource = json.loads(payload)
        assert resource["status"] == "PENDING", "the service must run in ACCEPT_ONLY mode"
        operation_ids.append(resource["operation_id"])
        if run >= WARMUP:
            samples.append(elapsed)
    results["accept_ms"] = {"median": round(median_ms(samples), 1), "runs": [round(s * 1000, 1) for s in samples],
                            "target": TARGETS_MS["accept"]}
    print(f"(a) accept: median {results['accept_ms']['median']} ms over {runs} runs")

    # (b) execute one, then GET it
    status, payload, elapsed = request(base_url, "POST", f"/rebalance/operations/{operation_ids[0]}/execute")
    assert status == 200, (status, payload[:500])
    executed = json.loads(payload)
    assert executed["status"] == "SUCCEEDED", executed.get("error")
    result_bytes = len(json.dumps(executed["result"], separators=(",", ":")).encode())
    del executed
    print(f"    execute: {elapsed:.1f} s, response {len(payload):,} bytes")
    samples = []
    for run in range(runs + WARMUP):
        status, payload, elapsed = request(base_url, "GET", f"/rebalance/operations/{operation_ids[0]}")
        assert status == 200 and len(payload) > result_bytes, status
        if run >= WARMUP:
            samples.append(elapsed)
    results["get_finished_ms"] = {"median": round(median_ms(samples), 1), "runs": [round(s * 1000, 1) for s in samples],
                                  "response_bytes": len(payload), "target": TARGETS_MS["get"]}
    print(f"(b) GET of the finished operation ({len(payload):,} bytes): median "
          f"{results['get_finished_ms']['median']} ms over {runs} runs")
    del payload

    # (c) list with list_rows operations stored
    if database_url is None:
        print("(c) list: skipped (give --database-url to store the operations)")
        return results
    started = time.perf_counter()
    store_operations(database_url, list_rows, token)
    print(f"    stored {list_rows:,} operations in {time.perf_counter() - started:.1f} s")
    samples = []
    for run in range(runs + WARMUP):
        status, payload, elapsed = request(base_url, "GET", "/rebalance/operations")
        assert status == 200 and len(json.loads(payload)["items"]) == 50, status
        if run >= WARMUP:
            samples.append(elapsed)
    cursor = json.loads(payload)["next_cursor"]
    status, payload, deep = request(base_url, "GET", f"/rebalance/operations?limit=200&cursor={cursor}")
    assert status == 200
    results["list_first_page_ms"] = {"median": round(median_ms(samples), 1),
                                     "runs": [round(s * 1000, 1) for s in samples],
                                     "stored_operations": list_rows, "target": TARGETS_MS["list"]}
    print(f"(c) list, first page of 50 with {list_rows:,} stored: median "
          f"{results['list_first_page_ms']['median']} ms over {runs} runs (a 200-item second page: {deep * 1000:.1f} ms)")
    return results


if __name__ == "__main__":
    main()
