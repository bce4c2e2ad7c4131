#!/usr/bin/env python3
"""WORKER-mode throughput: operations per second with 1, 2 and 4 workers, and submit-to-SUCCEEDED time.

    .venv/bin/python bench/worker_throughput.py
    .venv/bin/python bench/worker_throughput.py --server postgres://postgres@127.0.0.1:5432 \
        --operations 300 --workers 1,2,4 --interval 0.1

It creates a scratch PostgreSQL database (dropped at the end), migrates it, and starts the service
with gunicorn in WORKER mode (2 workers x 4 threads, as `make run`). Then, for each worker count:

* throughput: the workers are started and wait, idle; they are frozen (SIGSTOP) while
  --operations small batches are submitted over HTTP (each enqueues its task on commit), then
  released together (SIGCONT). Throughput = operations / (last finished_at - release). So it counts
  the workers' drain only: neither their start-up nor the submissions;
* latency: with the same workers idle and polling every --interval seconds, --latency-operations
  submissions one at a time (each waits for the previous to finish, then a random pause), and
  the median (and 90th percentile) of finished_at - created_at, i.e. from the moment the
  submission was stored to the moment the result was.

A small batch is ../shared/bench/gen_batch.py -p 20 -t 20 -s 2 (or --gen PATH; --positions,
--scenarios). The check: throughput with 2 workers >= 1.6 x that with 1 worker (2-core machine).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from benchlib import FAIR_USE_OFF, free_port, load_gen_batch

REPO = Path(__file__).resolve().parent.parent
DEFAULT_GEN_BATCH = REPO.parent / "shared" / "bench" / "gen_batch.py"
SCALING_TARGET = 1.6


class Deployment:
    """A scratch database, the web service on it (WORKER mode), and worker processes on demand."""

    def __init__(self, server_url: str, workdir: Path, interval: float) -> None:
        self.server_url = server_url.rstrip("/")
        self.workdir = workdir
        self.interval = interval
        self.name = f"dpm_async_bench_workers_{secrets.token_hex(4)}"
        with psycopg.connect(f"{self.server_url}/postgres", autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {self.name}")
        self.database_url = f"{self.server_url}/{self.name}"
        self.env = {
            **os.environ,
            **FAIR_USE_OFF,
            "DATABASE_URL": self.database_url,
            "DJANGO_SETTINGS_MODULE": "dpm_async.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "DJANGO_DEBUG": "false",
            "DJANGO_LOG_LEVEL": "WARNING",
            "DJANGO_SECURE_HTTPS": "false",  # plain http on 127.0.0.1, as `make run`
            "DPM_API_AUTH_REQUIRED": "false",  # a scratch service on loopback: no tokens to manage
            "DPM_ASYNC_EXECUTION_MODE": "WORKER",
        }
        self.web: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
                       cwd=REPO, env=self.env, check=True)
        self.db = psycopg.connect(self.database_url, autocommit=True)

    def start_web(self) -> None:
        self.port = free_port()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.web = subprocess.Popen(
            [gunicorn, "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{self.port}", "--workers", "2",
             "--threads", "4", "--timeout", "600", "--log-level", "warning"],
            cwd=REPO, env=self.env,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/health/live")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the web service did not start")

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        payload = response.read()
        connection.close()
        return response.status, payload

    def submit(self, body: bytes, correlation_id: str) -> str:
        status, payload = self.request("POST", "/rebalance/analyze/async", body, {"X-Correlation-Id": correlation_id})
        if status != 202:
            raise SystemExit(f"submission answered {status}: {payload[:300]!r}")
        return json.loads(payload)["operation_id"]

    def start_workers(self, count: int) -> None:
        logs = [(self.workdir / f"worker-{len(self.workers) + n}.log").open("wb") for n in range(count)]
        started = [
            subprocess.Popen(
                [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay",
                 "--interval", str(self.interval), "-v", "0"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
            for log in logs
        ]
        self.workers.extend(started)
        # Ready when each has polled the (empty) queue once: give them time to import and connect.
        before = self.sessions()
        deadline = time.monotonic() + 60
        while self.sessions() < before + count and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)

    def sessions(self) -> int:
        return self.db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [self.name]
        ).fetchone()[0]

    def signal_workers(self, signum: int) -> None:
        for worker in self.workers:
            worker.send_signal(signum)

    def stop_workers(self) -> None:
        self.signal_workers(signal.SIGCONT)
        self.signal_workers(signal.SIGTERM)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        self.workers = []

    def finished(self, operation_ids: list[str]) -> list[tuple[str, datetime, datetime, int]]:
        return self.db.execute(
            "SELECT status, created_at, finished_at, attempt FROM operations_operation "
            "WHERE id = ANY(%s) AND finished_at IS NOT NULL", [operation_ids]
        ).fetchall()

    def wait_finished(self, operation_ids: list[str], timeout: float = 600) -> list[tuple[str, datetime, datetime, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rows = self.finished(operation_ids)
            if len(rows) == len(operation_ids):
                bad = [r for r in rows if r[0] != "SUCCEEDED" or r[3] != 1]
                if bad:
                    raise SystemExit(f"{len(bad)} operation(s) did not succeed on attempt 1: {bad[:3]}")
                return rows
            time.sleep(0.05)
        raise SystemExit("the operations did not finish in time")

    def close(self) -> None:
        if self.workers:
            self.stop_workers()
        if self.web is not None and self.web.poll() is None:
            self.web.send_signal(signal.SIGTERM)
            try:
                self.web.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.web.kill()
        self.db.close()
        with psycopg.connect(f"{self.server_url}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")


def measure(deployment: Deployment, workers: int, body: bytes, operations: int,
            latency_operations: int, run: str) -> dict[str, float]:
    deployment.start_workers(workers)
    try:
        # Throughput: a backlog submitted while the workers are frozen, drained once they are released.
        deployment.signal_workers(signal.SIGSTOP)
        ids = [deployment.submit(body, f"{run}-w{workers}-t{n}") for n in range(operations)]
        released = datetime.now(UTC)
        deployment.signal_workers(signal.SIGCONT)
        rows = deployment.wait_finished(ids)
        drain = (max(r[2] for r in rows) - released).total_seconds()

        # Latency: one operation at a time into idle workers, at random moments of their polling.
        latencies = []
        for n in range(latency_operations):
            time.sleep(random.uniform(0, deployment.interval))  # noqa: S311 - benchmark jitter
            operation_id = deployment.submit(body, f"{run}-w{workers}-l{n}")
            [(_, created_at, finished_at, _)] = deployment.wait_finished([operation_id])
            latencies.append((finished_at - created_at).total_seconds())
    finally:
        deployment.stop_workers()
    latencies.sort()
    return {
        "throughput": operations / drain,
        "drain": drain,
        "latency_median": statistics.median(latencies),
        "latency_p90": latencies[int(0.9 * (len(latencies) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432",
                        help="PostgreSQL server URL, without a database name (a scratch database is created)")
    parser.add_argument("--operations", type=int, default=300, help="backlog drained per worker count")
    parser.add_argument("--latency-operations", type=int, default=30)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="db_worker --interval (idle polling), as `make worker`")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all worker counts; medians reported")
    parser.add_argument("--gen", type=Path, default=DEFAULT_GEN_BATCH, help="path of gen_batch.py")
    parser.add_argument("-p", "--positions", type=int, default=20)
    parser.add_argument("-s", "--scenarios", type=int, default=2)
    args = parser.parse_args()

    counts = [int(c) for c in args.workers.split(",")]
    body = json.dumps(load_gen_batch(args.gen).build_request(
        positions=args.positions, targets=args.positions, scenarios=args.scenarios, seed=1)).encode()
    print(f"small batch: {args.positions} positions, {args.scenarios} scenarios ({len(body):,} bytes); "
          f"backlog {args.operations} operations; db_worker --interval {args.interval}; {os.cpu_count()} cores")

    results: dict[int, list[dict[str, float]]] = {c: [] for c in counts}
    with tempfile.TemporaryDirectory(prefix="dpm-worker-bench-") as workdir:
        deployment = Deployment(args.server, Path(workdir), args.interval)
        try:
            deployment.start_web()
            deployment.submit(body, "warm-up")  # first request of each web process imports the engine
            deployment.submit(body, "warm-up-2")
            for round_ in range(args.rounds):
                for count in counts:  # interleaved, so drift on the machine hits every count alike
                    measured = measure(deployment, count, body, args.operations, args.latency_operations,
                                       f"r{round_}")
                    results[count].append(measured)
                    print(f"  round {round_ + 1}: {count} worker(s): {measured['throughput']:6.1f} ops/s "
                          f"(drain {measured['drain']:.2f} s), submit->SUCCEEDED median "
                          f"{measured['latency_median'] * 1000:.0f} ms", flush=True)
        finally:
            deployment.close()

    print()
    print("| workers | operations/s | vs 1 worker | submit -> SUCCEEDED median | p90 |")
    print("| --- | --- | --- | --- | --- |")
    medians = {c: statistics.median(r["throughput"] for r in results[c]) for c in counts}
    for count in counts:
        latency = statistics.median(r["latency_median"] for r in results[count])
        p90 = statistics.median(r["latency_p90"] for r in results[count])
        ratio = medians[count] / medians[counts[0]]
        print(f"| {count} | {medians[count]:.1f} | {ratio:.2f}x | {latency * 1000:.0f} ms | {p90 * 1000:.0f} ms |")
    if 1 in medians and 2 in medians:
        ratio = medians[2] / medians[1]
        verdict = "meets" if ratio >= SCALING_TARGET else "MISSES"
        print(f"\n2 workers / 1 worker = {ratio:.2f} ({verdict} the {SCALING_TARGET}x target)")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          "(other work on the machine lowers and scatters the numbers)")


if __name__ == "__main__":
    main()
