#!/usr/bin/env python3
"""Rebalance benchmark: one command, medians of repeated runs.

    make bench                      # or: .venv/bin/python bench/run.py [--runs 5]

Prints, as medians of --runs runs (default 5):
  * the in-process engine time for the 2000 x 2000 x 20 batch (gen_batch.py -p 2000 -t 2000 -s 20
    --seed 1): engine only, and engine + JSON encoding (what the service does per request);
  * the HTTP round trip of that batch against a gunicorn server started like `make run`
    (one worker, so every request lands in the same process), the response size, the worker's
    peak resident memory, and its resident memory after each of ten requests in a row;
  * the single-scenario times for 2000 and 4000 lines, in process and over HTTP, and their ratio.

The request generator is ../shared/bench/gen_batch.py (or --gen PATH); it is imported, not copied.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchlib import FAIR_USE_OFF, free_port, load_gen_batch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dpm_async.settings")
os.environ.setdefault("DJANGO_DEBUG", "false")


def median_time(fn, runs: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def post(url: str, body: bytes) -> tuple[int, int]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.status, len(response.read())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gen", type=Path, default=ROOT.parent / "shared" / "bench" / "gen_batch.py")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    if not args.gen.exists():
        print(f"request generator not found at {args.gen}; pass --gen", file=sys.stderr)
        return 2
    gen = load_gen_batch(args.gen)

    import django

    django.setup()
    from dpm_async.parsers import json_decode_body
    from rebalance.engine import prepare_inputs, run_rebalance
    from rebalance.options import engine_options_parse
    from rebalance.parsing import batch_request_parse
    from rebalance.services import rebalance_analyze_batch

    bodies = {
        "batch": gen.dumps(gen.build_request(positions=2000, targets=2000, scenarios=20, seed=1)).encode(),
        "single2000": gen.dumps(gen.build_request(positions=2000, targets=2000, scenarios=1, seed=1)).encode(),
        "single4000": gen.dumps(gen.build_request(positions=4000, targets=4000, scenarios=1, seed=1)).encode(),
    }

    def engine_only(raw: bytes):
        batch = batch_request_parse(json_decode_body(raw))
        options = {name: engine_options_parse(s.options) for name, s in batch.scenarios.items()}

        def run():
            prepared = prepare_inputs(batch.inputs)
            for name in sorted(options):
                run_rebalance(prepared, options[name], request_hash=name, correlation_id=name)

        return run

    def service(raw: bytes):
        batch = batch_request_parse(json_decode_body(raw))
        return lambda: rebalance_analyze_batch(batch, correlation_id=None).json()

    def parse(raw: bytes):
        return lambda: batch_request_parse(json_decode_body(raw))

    print(f"runs per figure: {args.runs} (medians)")
    t_parse, _ = median_time(parse(bodies["batch"]), args.runs)
    t_engine, _ = median_time(engine_only(bodies["batch"]), args.runs)
    t_service, encoded = median_time(service(bodies["batch"]), args.runs)
    print(f"batch 2000x2000x20  body {len(bodies['batch']) / 1e6:.2f} MB  parse+validate {t_parse * 1000:.1f} ms")
    print(f"batch 2000x2000x20  engine {t_engine:.3f} s   engine+encode {t_service:.3f} s   result {len(encoded) / 1e6:.1f} MB")
    single = {}
    for key in ("single2000", "single4000"):
        single[key], _ = median_time(engine_only(bodies[key]), args.runs)
    print(f"single scenario     engine 2000 lines {single['single2000'] * 1000:.1f} ms   "
          f"4000 lines {single['single4000'] * 1000:.1f} ms   ratio {single['single4000'] / single['single2000']:.2f}")

    if args.skip_http:
        return 0
    port = free_port()
    # A scratch server on loopback that measures the engine and the sync endpoint: no caller to
    # authenticate, so it needs no migrated database (a token lookup would add ~0.2 ms).
    env = {**os.environ, **FAIR_USE_OFF, "DJANGO_DEBUG": "false", "DPM_API_AUTH_REQUIRED": "false"}
    env.setdefault("DJANGO_SECRET_KEY", "bench-only-not-a-secret")
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", "1", "--threads", "1", "--timeout", "600"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    print("server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/rebalance/analyze"
        post(url, bodies["single2000"])  # warm up imports
        pid = worker_pid(server.pid)
        http = {}
        for key in ("single2000", "single4000"):
            http[key], _ = median_time(lambda k=key: post(url, bodies[k]), args.runs)
        print(f"single scenario     HTTP 2000 lines {http['single2000'] * 1000:.1f} ms   "
              f"4000 lines {http['single4000'] * 1000:.1f} ms   ratio {http['single4000'] / http['single2000']:.2f}")
        t_http, (status, size) = median_time(lambda: post(url, bodies["batch"]), args.runs)
        print(f"batch 2000x2000x20  HTTP round trip {t_http:.3f} s   status {status}   response {size / 1e6:.1f} MB")
        rss_after = []
        for _ in range(10):
            post(url, bodies["batch"])
            rss_after.append(rss_kib(pid, "VmRSS") // 1024)
        print(f"server worker peak RSS {rss_kib(pid, 'VmHWM') // 1024} MB; RSS after each of 10 batches (MB): {rss_after}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
