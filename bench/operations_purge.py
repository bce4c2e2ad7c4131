#!/usr/bin/env python3
"""Purge benchmark: 1,000,000 expired operations on PostgreSQL, purged with flat memory.

    .venv/bin/python bench/operations_purge.py [--rows 1000000] [--batch-size 1000]
                                               [--server postgres://postgres@127.0.0.1:5432]

Creates a scratch database on the server, migrates it, stores the expired rows with one
`INSERT ... SELECT ... FROM generate_series` (plus live and stuck RUNNING rows that must survive),
then runs `manage.py purge_expired_operations` in this process while a thread samples the
process's resident memory. Reports rows per second, the RSS before and during the purge, and the
peak RSS; drops the scratch database at the end (--keep to keep it).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

INSERT_EXPIRED = """
INSERT INTO operations_operation (id, operation_type, status, correlation_id, request, request_fingerprint,
    result, error, created_at, started_at, finished_at, expires_at, attempt, lease_expires_at, cancel_requested)
SELECT 'dop_' || md5('expired' || g), 'ANALYZE_SCENARIOS',
    (ARRAY['PENDING', 'SUCCEEDED', 'FAILED'])[g %% 3 + 1],
    'purge-bench-' || g, '{"scenarios": {}}', 'sha256:' || md5(g::text) || md5(g::text),
    CASE WHEN g %% 3 = 1 THEN '{"results": {}, "warnings": []}'::json END,
    CASE WHEN g %% 3 = 2 THEN '{"code": "OPERATION_CANCELLED", "message": "m", "details": {}}'::jsonb END,
    now() - interval '3 days' - g * interval '1 millisecond',
    CASE WHEN g %% 3 = 1 THEN now() - interval '3 days' END,
    CASE WHEN g %% 3 <> 0 THEN now() - interval '2 days' END,
    now() - interval '1 day' - (g %% 100000) * interval '1 millisecond',
    CASE WHEN g %% 3 = 1 THEN 1 ELSE 0 END, NULL, false
FROM generate_series(1, %s) AS g
"""

INSERT_SURVIVORS = """
INSERT INTO operations_operation (id, operation_type, status, correlation_id, request, request_fingerprint,
    result, error, created_at, started_at, finished_at, expires_at, attempt, lease_expires_at, cancel_requested)
SELECT 'dop_' || md5('live' || g), 'ANALYZE_SCENARIOS', CASE WHEN g %% 2 = 0 THEN 'PENDING' ELSE 'RUNNING' END,
    'purge-bench-live-' || g, '{"scenarios": {}}', 'sha256:' || md5(g::text) || md5(g::text), NULL, NULL,
    now(), CASE WHEN g %% 2 = 1 THEN now() END, NULL,
    now() + interval '1 day', CASE WHEN g %% 2 = 1 THEN 1 ELSE 0 END,
    CASE WHEN g %% 2 = 1 THEN now() + interval '5 minutes' END, false
FROM generate_series(1, %s) AS g
"""


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler(threading.Thread):
    def __init__(self, interval: float = 0.02):
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[int] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            self.samples.append(rss_kib())
            time.sleep(self.interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--survivors", type=int, default=1000, help="live PENDING/RUNNING rows that must stay")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the command's default")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    args = parser.parse_args()

    name = f"dpm_async_purge_bench_{secrets.token_hex(4)}"
    subprocess.run(["psql", f"{args.server}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    os.environ.update(DATABASE_URL=f"{args.server}/{name}", DJANGO_SETTINGS_MODULE="dpm_async.settings",
                      DJANGO_LOG_LEVEL="WARNING")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-" + secrets.token_hex(8))
    sys.path.insert(0, str(REPO))
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        from operations.models import Operation

        call_command("migrate", verbosity=0)
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(INSERT_EXPIRED, [args.rows])
            cursor.execute(INSERT_SURVIVORS, [args.survivors])
            cursor.execute("VACUUM ANALYZE operations_operation")
        print(f"stored {args.rows:,} expired and {args.survivors:,} live operations in "
              f"{time.perf_counter() - started:.1f} s")

        command_args = [] if args.batch_size is None else ["--batch-size", str(args.batch_size)]
        out = io.StringIO()
        call_command("purge_expired_operations", "--dry-run", *command_args, stdout=out)
        print(out.getvalue().strip())

        sampler = RssSampler()
        rss_before = rss_kib()
        sampler.start()
        out = io.StringIO()
        started = time.perf_counter()
        call_command("purge_expired_operations", *command_args, stdout=out)
        elapsed = time.perf_counter() - started
        sampler.stopped.set()
        sampler.join()
        print(out.getvalue().strip())

        remaining = Operation.objects.count()
        assert remaining == args.survivors, remaining
        samples = sampler.samples or [rss_before]
        report = {
            "rows_purged": args.rows,
            "batch_size": args.batch_size or "default",
            "seconds": round(elapsed, 2),
            "rows_per_second": round(args.rows / elapsed),
            "rss_before_mib": round(rss_before / 1024, 1),
            "rss_during_min_mib": round(min(samples) / 1024, 1),
            "rss_during_max_mib": round(max(samples) / 1024, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "survivors_untouched": remaining,
        }
        print(json.dumps(report, indent=2))
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            subprocess.run(["psql", f"{args.server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                           check=False)


if __name__ == "__main__":
    main()
