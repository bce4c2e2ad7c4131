#!/usr/bin/env python3
"""The support console on the finished 2000 x 2000 x 20 operation: detail page and result download.

    .venv/bin/python bench/support_console.py [--database-url postgres://postgres@127.0.0.1:5432/any] [--runs 7]

On a scratch database (SQLite by default; a scratch PostgreSQL database with --database-url) it
runs `gen_batch.py -p 2000 -t 2000 -s 20 --seed 1` as an INLINE operation, makes a support user
(`manage.py support_user`), logs in to the admin like a browser, then on a fresh gunicorn worker
(1 worker, 1 thread, so every request lands in the process measured) measures `--runs` times:

  detail     GET of the operation's admin page (verdicts, rules, envelope, timeline, tasks):
             the median time, and the worst growth of the worker's resident memory (its peak
             during the request minus its resident size before it). Targets: 1 s, 50 MB.
  download   GET of the result download link, read and discarded in 1 MB pieces: the same two
             figures, and the size. Target: 50 MB of growth.

Peaks are read from /proc/<pid>/status after resetting them (`echo 5 > /proc/<pid>/clear_refs`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import load_gen_batch, scratch_database
from memory_big import Web, call, reset_peak, status_kib

ROOT = Path(__file__).resolve().parent.parent
TARGET_SECONDS = 1.0
TARGET_GROWTH_MB = 50
PASSWORD = secrets.token_urlsafe(16)


def admin_client(port: int) -> httpx.Client:
    """An httpx client logged in to the admin as the support user (session and CSRF cookies)."""
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
    page = client.get("/admin/login/").text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    answer = client.post("/admin/login/", data={"username": "support", "password": PASSWORD,
                                                "csrfmiddlewaretoken": token.group(1), "next": "/admin/"})
    assert answer.status_code == 302, ("login failed", answer.status_code)
    return client


def measure(web: Web, client: httpx.Client, path: str, runs: int) -> dict[str, float]:
    seconds, growths, size = [], [], 0
    for _ in range(runs):
        before = status_kib(web.pid, "VmRSS")
        reset_peak(web.pid)
        started = time.perf_counter()
        size = 0
        with client.stream("GET", path) as response:
            assert response.status_code == 200, (path, response.status_code)
            for piece in response.iter_raw(1 << 20):
                size += len(piece)
        seconds.append(time.perf_counter() - started)
        growths.append((status_kib(web.pid, "VmHWM") - before) / 1024)
    return {"median_s": round(statistics.median(seconds), 3), "max_growth_mb": round(max(growths), 1),
            "bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", help="PostgreSQL server URL (a scratch database is created); default SQLite")
    parser.add_argument("--gen", type=Path, default=ROOT.parent / "shared" / "bench" / "gen_batch.py")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("-p", "--positions", type=int, default=2000)
    parser.add_argument("-s", "--scenarios", type=int, default=20)
    args = parser.parse_args()
    request = load_gen_batch(args.gen).build_request(positions=args.positions, targets=args.positions,
                                                     scenarios=args.scenarios, seed=1)
    body = json.dumps(request).encode()
    print(f"request {len(body) / 1e6:.1f} MB ({args.positions} x {args.positions} x {args.scenarios})", flush=True)

    with (tempfile.TemporaryDirectory(prefix="dpm-console-bench-") as workdir,
          scratch_database(args.database_url, workdir, "console") as database_url):
        env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "false", "DJANGO_LOG_LEVEL": "WARNING",
               "DJANGO_SECRET_KEY": secrets.token_urlsafe(40), "DJANGO_SECURE_HTTPS": "false",
               "DPM_API_AUTH_REQUIRED": "false", "DPM_ASYNC_EXECUTION_MODE": "INLINE",
               "DJANGO_SETTINGS_MODULE": "dpm_async.settings", "DPM_SUPPORT_PASSWORD": PASSWORD}
        subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
        subprocess.run([sys.executable, "manage.py", "support_user", "support"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        results = run(env, body, args.runs)
    results["database"] = "postgresql" if args.database_url else "sqlite"
    results["meets_targets"] = (results["detail"]["median_s"] <= TARGET_SECONDS
                                and results["detail"]["max_growth_mb"] <= TARGET_GROWTH_MB
                                and results["download"]["max_growth_mb"] <= TARGET_GROWTH_MB)
    print(json.dumps(results, indent=2))
    return 0 if results["meets_targets"] else 1


def run(env: dict[str, str], body: bytes, runs: int) -> dict:
    web = Web(env)
    try:
        started = time.perf_counter()
        status, head, _ = call(web.port, "POST", "/rebalance/analyze/async", body, {"X-Correlation-Id": "console-1"})
        assert status in (200, 202), (status, head[:300])
        # The answer carries the whole result; its first 64 KB name the operation and its status.
        found = re.match(rb'\{"operation_id":"(dop_[0-9a-f]{32})","operation_type":"[A-Z_]+","status":"([A-Z]+)"', head)
        assert found and found.group(2) == b"SUCCEEDED", head[:300]
        operation_id = found.group(1).decode()
        print(f"operation {operation_id} run in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        web.stop()

    key = operation_id.replace("_", "_5F")  # the admin's quoting of "_" in primary keys
    paths = {"detail": f"/admin/operations/operation/{key}/change/",
             "download": f"/admin/operations/operation/{key}/result.json"}
    results: dict = {}
    for name, path in paths.items():
        # A fresh worker for each, warmed up on the list page only: the first measured request
        # pays for everything the page itself imports and allocates.
        web = Web(env)
        try:
            client = admin_client(web.port)
            client.get("/admin/operations/operation/")
            results[name] = measure(web, client, path, runs)
        finally:
            web.stop()
    results["download"]["mb"] = round(results["download"].pop("bytes") / 1e6, 1)
    results["detail"]["page_kb"] = round(results["detail"].pop("bytes") / 1024, 1)
    print(f"detail page: median {results['detail']['median_s']} s, +{results['detail']['max_growth_mb']} MB; "
          f"download ({results['download']['mb']} MB): median {results['download']['median_s']} s, "
          f"+{results['download']['max_growth_mb']} MB", flush=True)
    return results


if __name__ == "__main__":
    sys.exit(main())
