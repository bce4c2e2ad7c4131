#!/usr/bin/env python3
"""Watching and fetching a finished 2000 x 2000 x 20 operation: summary, one scenario, the full result
in each coding, and the bytes it takes in PostgreSQL.

    .venv/bin/python bench/operations_results.py                       # SQLite scratch database
    .venv/bin/python bench/operations_results.py --database-url postgres://postgres@127.0.0.1:5432/any

Starts the service as `make run` does (gunicorn, 2 workers x 4 threads, ACCEPT_ONLY) on a scratch
database (bench/operations_http.py's Service), submits `gen_batch.py -p 2000 -t 2000 -s 20 --seed 1`
and executes it, then reports medians of --runs timed requests per figure, the figures measured in
alternation (round-robin) so that other load on the machine hits each alike. Each time is from
sending the request to having the whole body, read on a fresh connection with the standard library
(no decoding: the wire bytes are what is counted):

  summary             GET …/summary                                 target <= 20 ms, < 16 KB
  scenario            GET …/results/<one 2000-line scenario>         target <= 100 ms
  full, zstd          GET the operation, Accept-Encoding: zstd      target <= 0.3 s, <= 10 MB
  full, gzip          GET the operation, Accept-Encoding: gzip      target <= 1.0 s
  full, identity      GET the operation (for reference)

With PostgreSQL it also executes --storage-operations more operations (default 20) and reports the
growth of pg_total_relation_size of the operations' two tables per operation (target <= 8 MB).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg
from benchlib import load_gen_batch
from operations_http import AUTH_HEADERS, DEFAULT_GEN_BATCH, Service, request

TARGETS = {"summary_ms": 20, "summary_bytes": 16 * 1024, "scenario_ms": 100, "zstd_s": 0.3, "zstd_bytes": 10_000_000,
           "gzip_s": 1.0, "storage_bytes": 8_000_000}
TABLES = ("operations_operation", "operations_operationscenarioresult")


def submit_and_execute(base_url: str, body: bytes, correlation_id: str) -> str:
    status, payload, _ = request(base_url, "POST", "/rebalance/analyze/async", body, {"X-Correlation-Id": correlation_id})
    assert status == 202, (status, payload[:300])
    operation_id = json.loads(payload)["operation_id"]
    status, payload, _ = request(base_url, "POST", f"/rebalance/operations/{operation_id}/execute",
                                 headers={"Accept-Encoding": "zstd"})
    assert status == 200, (status, payload[:300])
    return operation_id


def relation_bytes(database_url: str) -> int:
    with psycopg.connect(database_url) as connection:
        return sum(connection.execute("SELECT pg_total_relation_size(%s)", [table]).fetchone()[0] for table in TABLES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="scratch database server (default: a SQLite file in a temp dir)")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--storage-operations", type=int, default=20)
    parser.add_argument("--gen-batch", type=Path, default=DEFAULT_GEN_BATCH)
    args = parser.parse_args()
    gen_batch = load_gen_batch(args.gen_batch)
    body = json.dumps(gen_batch.build_request(positions=2000, targets=2000, scenarios=20, seed=1)).encode()
    scenario = sorted(json.loads(body)["scenarios"])[10]

    with tempfile.TemporaryDirectory(prefix="dpm-results-bench-") as workdir:
        service = Service(args.database_url, Path(workdir))
        AUTH_HEADERS["Authorization"] = f"Token {service.token}"
        try:
            results = measure(service, body, scenario, args.runs, args.storage_operations)
        finally:
            service.stop()
    print(json.dumps(results, indent=2))
    misses = [name for name, ok in results["meets"].items() if not ok]
    print("every target met" if not misses else f"MISSED: {', '.join(misses)}")
    sys.exit(0)


def measure(service: Service, body: bytes, scenario: str, runs: int, storage_operations: int) -> dict:
    base_url = service.base_url
    operation_id = submit_and_execute(base_url, body, "bench-results-0")
    url = f"/rebalance/operations/{operation_id}"
    figures = {
        "summary": (f"{url}/summary", {}),
        "scenario": (f"{url}/results/{scenario}", {}),
        "full_zstd": (url, {"Accept-Encoding": "zstd"}),
        "full_gzip": (url, {"Accept-Encoding": "gzip"}),
        "full_identity": (url, {}),
    }
    times: dict[str, list[float]] = {name: [] for name in figures}
    sizes: dict[str, int] = {}
    for round_ in range(runs + 2):  # two untimed rounds first: one per gunicorn worker
        for name, (path, headers) in figures.items():
            status, payload, elapsed = request(base_url, "GET", path, headers=headers)
            assert status == 200, (name, status, payload[:300])
            sizes[name] = len(payload)
            if round_ >= 2:
                times[name].append(elapsed)
        print(f"  round {round_ + 1}: " + ", ".join(f"{n} {times[n][-1] * 1000:.0f} ms" for n in figures if times[n]),
              flush=True)
    median = {name: statistics.median(samples) for name, samples in times.items()}
    results: dict = {
        "database": service.database_url.split("://")[0],
        "runs": runs,
        "median_ms": {name: round(value * 1000, 1) for name, value in median.items()},
        "wire_bytes": sizes,
    }
    meets = {
        "summary <= 20 ms": median["summary"] * 1000 <= TARGETS["summary_ms"],
        "summary < 16 KB": sizes["summary"] < TARGETS["summary_bytes"],
        "scenario <= 100 ms": median["scenario"] * 1000 <= TARGETS["scenario_ms"],
        "full zstd <= 0.3 s": median["full_zstd"] <= TARGETS["zstd_s"],
        "full zstd <= 10 MB": sizes["full_zstd"] <= TARGETS["zstd_bytes"],
        "full gzip <= 1.0 s": median["full_gzip"] <= TARGETS["gzip_s"],
    }
    if service.database_url.startswith("postgres") and storage_operations:
        before = relation_bytes(service.database_url)
        for n in range(storage_operations):
            submit_and_execute(base_url, body, f"bench-storage-{n}")
        with psycopg.connect(service.database_url, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")  # settle the free-space map; sizes only grow by what is stored
        grown = relation_bytes(service.database_url) - before
        results["postgres_bytes_per_operation"] = grown // storage_operations
        meets["postgres <= 8 MB per operation"] = grown / storage_operations <= TARGETS["storage_bytes"]
        print(f"  storage: {grown / storage_operations / 1e6:.2f} MB per operation over {storage_operations}")
    results["meets"] = meets
    return results


if __name__ == "__main__":
    main()
