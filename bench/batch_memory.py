#!/usr/bin/env python3
"""Peak memory of one batch at the default cost limit (DPM_MAX_BATCH_CELLS, 100,000 cells).

    .venv/bin/python bench/batch_memory.py [--cells 100000] [--shapes 20,10,5]

A cell is one instrument (the distinct ids of positions, model targets and shelf entries) in one
scenario: the limit allows 5,000 instruments x 20 scenarios, 10,000 x 10 or 20,000 x 5. For each
shape (scenario counts; `gen_batch.py` with as many lines as fill the limit) it serves the batch
from a fresh gunicorn worker (1 worker, 1 thread) and reads that worker's peak resident memory
(VmHWM, reset before the request), for an identity and a zstd client. Then the idle worker, and
a `manage.py db_worker` running the first shape as a WORKER-mode operation. One request over the
limit is checked to be refused with 413. The figure goes to docs/deployment.md, "Request cost".
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import FAIR_USE_OFF, load_gen_batch
from memory_big import Web, call, db_worker_started, reset_peak, status_kib

ROOT = Path(__file__).resolve().parent.parent


def distinct_instruments(request: dict[str, Any]) -> int:
    ids = {p["instrument_id"] for p in request["portfolio_snapshot"]["positions"]}
    ids |= {t["instrument_id"] for t in request["model_portfolio"]["targets"]}
    ids |= {e["instrument_id"] for e in request["shelf_entries"]}
    return len(ids)


def filling(gen: Any, cells: int, scenarios: int) -> dict[str, Any]:
    """The largest gen_batch request of `scenarios` scenarios within `cells` (positions = targets)."""
    low, high = 1, 10_000
    best = None
    while low <= high:
        lines = (low + high) // 2
        request = gen.build_request(positions=lines, targets=lines, scenarios=scenarios, seed=1)
        if distinct_instruments(request) * scenarios <= cells:
            best, low = request, lines + 1
        else:
            high = lines - 1
    assert best is not None
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gen", type=Path, default=ROOT.parent / "shared" / "bench" / "gen_batch.py")
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--shapes", default="20,10,5", help="scenario counts, comma-separated")
    args = parser.parse_args()
    gen = load_gen_batch(args.gen)
    results: dict[str, Any] = {"cells_limit": args.cells, "shapes": {}}
    with tempfile.TemporaryDirectory(prefix="dpm-batch-memory-") as workdir:
        env = {**os.environ, **FAIR_USE_OFF, "DPM_MAX_BATCH_CELLS": str(args.cells),
               "DATABASE_URL": f"sqlite:///{workdir}/bench.sqlite3", "DJANGO_DEBUG": "false",
               "DJANGO_LOG_LEVEL": "WARNING", "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
               "DJANGO_SECURE_HTTPS": "false", "DPM_API_AUTH_REQUIRED": "false",
               "DPM_ASYNC_EXECUTION_MODE": "WORKER", "DJANGO_SETTINGS_MODULE": "dpm_async.settings",
               "DJANGO_ENV_FILE": ""}
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
        first_body = None
        for scenarios in (int(s) for s in args.shapes.split(",")):
            request = filling(gen, args.cells, scenarios)
            instruments = distinct_instruments(request)
            body = json.dumps(request).encode()
            first_body = first_body or body
            shape = f"{instruments} x {scenarios}"
            results["shapes"][shape] = {"cells": instruments * scenarios, "request_mb": round(len(body) / 1e6, 1)}
            for coding, headers in (("identity", {}), ("zstd", {"Accept-Encoding": "zstd"})):
                web = Web(env)
                try:
                    call(web.port, "GET", "/health/ready")
                    idle = status_kib(web.pid, "VmRSS") // 1024
                    results.setdefault("idle_mb", idle)
                    reset_peak(web.pid)
                    started = time.perf_counter()
                    status, head, size = call(web.port, "POST", "/rebalance/analyze", body, headers)
                    assert status == 200, (status, head[:300])
                    peak = status_kib(web.pid, "VmHWM") // 1024
                    results["shapes"][shape][coding] = {"peak_mb": peak, "seconds": round(time.perf_counter() - started, 1),
                                                        "answer_mb": round(size / 1e6, 1)}
                    print(f"{shape} ({len(body) / 1e6:.1f} MB request), {coding}: peak {peak} MB, "
                          f"{results['shapes'][shape][coding]['seconds']} s, {size / 1e6:.1f} MB answer", flush=True)
                    if coding == "identity" and scenarios == int(args.shapes.split(",")[0]):
                        extra = args.cells // scenarios + 1 - instruments
                        over = dict(request, shelf_entries=request["shelf_entries"] + [
                            {"instrument_id": f"OVER_{n}", "status": "APPROVED"} for n in range(extra)])
                        status, head, _ = call(web.port, "POST", "/rebalance/analyze", json.dumps(over).encode())
                        assert status == 413 and json.loads(head)["code"] == "BATCH_TOO_LARGE", (status, head[:300])
                finally:
                    web.stop()
        print(f"idle worker: {results['idle_mb']} MB", flush=True)

        # WORKER mode: the db_worker's peak running the first shape.
        web = Web(env)
        worker = db_worker_started(env)
        try:
            status, head, _ = call(web.port, "POST", "/rebalance/analyze/async", first_body,
                                   {"X-Correlation-Id": "cells-1"})
            assert status == 202, (status, head[:300])
            while True:
                status, head, _ = call(web.port, "GET", "/rebalance/operations?correlation_id=cells-1")
                [resource] = json.loads(head)["items"]
                if resource["status"] in ("SUCCEEDED", "FAILED"):
                    break
                time.sleep(1)
            assert resource["status"] == "SUCCEEDED", resource
            results["worker_peak_mb"] = status_kib(worker.pid, "VmHWM") // 1024
            print(f"db_worker running the first shape: peak {results['worker_peak_mb']} MB", flush=True)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=120)
            web.stop()
    peaks = [run[coding]["peak_mb"] for run in results["shapes"].values() for coding in ("identity", "zstd")]
    results["peak_mb"] = max(peaks)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
