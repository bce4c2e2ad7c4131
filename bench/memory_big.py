#!/usr/bin/env python3
"""Memory of the biggest batch within the limits: 10,000 positions x 10,000 targets x 20 scenarios.

    .venv/bin/python bench/memory_big.py [--database-url postgres://postgres@127.0.0.1:5432/any]

On a scratch database (SQLite by default; a scratch PostgreSQL database with --database-url) it
measures, with `gen_batch.py -p 10000 -t 10000 -s 20 --seed 1` (~470 MB of result JSON):

  sync peak     the peak resident memory (VmHWM) of a gunicorn worker (1 worker, 1 thread) serving
                POST /rebalance/analyze of the batch once, identity answer;
  worker peak   the peak of a `manage.py db_worker` process running the batch as a WORKER-mode
                operation (target: no higher than the sync peak);
  web growth    on a fresh gunicorn worker, the growth of its resident memory (peak during the
                request minus resident before it) while it serves GET of the finished operation,
                for identity, zstd and gzip clients, and the summary and one scenario (target:
                at most 64 MB each).

Peaks are read from /proc/<pid>/status after resetting them (`echo 5 > /proc/<pid>/clear_refs`,
Linux 4.0+). The body of each answer is read and discarded in 1 MB pieces by the client.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import FAIR_USE_OFF, free_port, load_gen_batch, scratch_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_GROWTH_MB = 64


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)



def db_worker_started(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A `manage.py db_worker` (in a session of its own), past its start-up, its peak reset."""
    worker = subprocess.Popen([sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay",
                               "--interval", "0.1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(3)
    reset_peak(worker.pid)
    return worker

def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
         timeout: float = 1800) -> tuple[int, bytes, int]:
    """(status, the first 64 KB of the body, total body bytes): the body is read in 1 MB pieces."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    connection.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    head, total = b"", 0
    while piece := response.read(1 << 20):
        if len(head) < 65536:
            head += piece[:65536]
        total += len(piece)
    connection.close()
    return response.status, head, total


class Web:
    """One gunicorn worker with one thread, so every request lands in the process measured."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.master = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "dpm_async.wsgi:application", "--bind",
             f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "1", "--timeout", "1800"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if call(self.port, "GET", "/health/live")[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start") from None
                time.sleep(0.2)
        self.pid = int(Path(f"/proc/{self.master.pid}/task/{self.master.pid}/children").read_text().split()[0])

    def stop(self) -> None:
        os.killpg(self.master.pid, signal.SIGTERM)
        self.master.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL server URL (a scratch database is created); default SQLite")
    parser.add_argument("--gen", type=Path, default=ROOT.parent / "shared" / "bench" / "gen_batch.py")
    parser.add_argument("-p", "--positions", type=int, default=10_000)
    parser.add_argument("-s", "--scenarios", type=int, default=20)
    args = parser.parse_args()
    request = load_gen_batch(args.gen).build_request(positions=args.positions, targets=args.positions,
                                                     scenarios=args.scenarios, seed=1)
    body = json.dumps(request).encode()
    scenario = sorted(request["scenarios"])[10]
    print(f"request {len(body) / 1e6:.1f} MB ({args.positions} x {args.positions} x {args.scenarios})", flush=True)

    with (tempfile.TemporaryDirectory(prefix="dpm-memory-bench-") as workdir,
          scratch_database(args.database_url, workdir, "mem") as database_url):
        env = {**os.environ, **FAIR_USE_OFF, "DATABASE_URL": database_url, "DJANGO_DEBUG": "false", "DJANGO_LOG_LEVEL": "WARNING",
               "DJANGO_SECRET_KEY": secrets.token_urlsafe(40), "DJANGO_SECURE_HTTPS": "false",
               "DPM_API_AUTH_REQUIRED": "false", "DPM_ASYNC_EXECUTION_MODE": "WORKER",
               "DJANGO_SETTINGS_MODULE": "dpm_async.settings"}
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
        results = measure(env, body, scenario)
    print(json.dumps(results, indent=2))
    return 0


def measure(env: dict[str, str], body: bytes, scenario: str) -> dict:
    results: dict = {}
    # 1. The synchronous endpoint's peak.
    web = Web(env)
    try:
        reset_peak(web.pid)
        started = time.perf_counter()
        status, _, size = call(web.port, "POST", "/rebalance/analyze", body)
        assert status == 200, status
        results["sync"] = {"peak_mb": status_kib(web.pid, "VmHWM") // 1024, "seconds": round(time.perf_counter() - started, 1),
                           "result_mb": round(size / 1e6, 1)}
        print(f"sync endpoint: peak {results['sync']['peak_mb']} MB, {results['sync']['seconds']} s, "
              f"{results['sync']['result_mb']} MB answer", flush=True)
    finally:
        web.stop()

    # 2. A worker running it.
    web = Web(env)
    worker = db_worker_started(env)
    try:
        status, head, _ = call(web.port, "POST", "/rebalance/analyze/async", body, {"X-Correlation-Id": "mem-1"})
        assert status == 202, (status, head[:300])
        operation_id = json.loads(head)["operation_id"]
        started = time.perf_counter()
        while True:  # the list item: the status without the result (and a command that runs on older code)
            status, head, _ = call(web.port, "GET", "/rebalance/operations?correlation_id=mem-1")
            [resource] = json.loads(head)["items"]
            if resource["status"] in ("SUCCEEDED", "FAILED"):
                break
            time.sleep(1)
        assert resource["status"] == "SUCCEEDED", resource
        results["worker"] = {"peak_mb": status_kib(worker.pid, "VmHWM") // 1024,
                             "seconds": round(time.perf_counter() - started, 1)}
        print(f"worker: peak {results['worker']['peak_mb']} MB, {results['worker']['seconds']} s", flush=True)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=120)
        web.stop()
    results["worker_peak_le_sync_peak"] = results["worker"]["peak_mb"] <= results["sync"]["peak_mb"]

    # 3. A fresh web process serving the finished operation.
    web = Web(env)
    try:
        call(web.port, "GET", "/rebalance/operations?limit=1")  # warm-up: imports, connection
        url = f"/rebalance/operations/{operation_id}"
        growth = {}
        for name, path, headers in (("full identity", url, {}), ("full zstd", url, {"Accept-Encoding": "zstd"}),
                                    ("full gzip", url, {"Accept-Encoding": "gzip"}),
                                    ("summary", f"{url}/summary", {}),
                                    ("scenario", f"{url}/results/{scenario}", {})):
            before = status_kib(web.pid, "VmRSS")
            reset_peak(web.pid)
            started = time.perf_counter()
            status, _, size = call(web.port, "GET", path, headers=headers)
            if status == 404 and name in ("summary", "scenario"):
                continue  # code older than these endpoints
            assert status == 200, (name, status)
            grown = (status_kib(web.pid, "VmHWM") - before) // 1024
            growth[name] = {"growth_mb": grown, "wire_mb": round(size / 1e6, 1),
                            "seconds": round(time.perf_counter() - started, 2)}
            print(f"web serving {name}: +{grown} MB ({size / 1e6:.1f} MB on the wire)", flush=True)
        results["web"] = growth
        results["web_growth_le_64_mb"] = all(g["growth_mb"] <= TARGET_GROWTH_MB for g in growth.values())
    finally:
        web.stop()
    return results


if __name__ == "__main__":
    sys.exit(main())
