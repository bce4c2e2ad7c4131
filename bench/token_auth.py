#!/usr/bin/env python3
"""What token authentication costs per request: the cheapest authenticated request, timed.

    .venv/bin/python bench/token_auth.py [--requests 3000] [--rounds 3]

Starts the service like `make run` on a scratch SQLite database but with one worker and one
thread (so every request meets the same process and connection), issues a token, and times
`GET /rebalance/operations/dop_000…` - authentication, then one primary-key lookup that finds
nothing (404) - over one keep-alive connection, against the same request without a token (401,
answered before any query). The difference of the medians is what authenticating costs.
Run it from a checkout to measure that checkout (it uses the checkout's manage.py and .venv).
"""

from __future__ import annotations

import argparse
import http.client
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import FAIR_USE_OFF, free_port

REPO = Path(__file__).resolve().parent.parent
PATH = "/rebalance/operations/dop_" + "0" * 32


def timed(port: int, headers: dict[str, str], count: int, expected: int) -> float:
    """Median seconds per request over `count` requests on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        connection.request("GET", PATH, headers=headers)
        response = connection.getresponse()
        response.read()
        samples.append(time.perf_counter() - started)
        assert response.status == expected, response.status
    connection.close()
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpm-token-bench-") as work:
        env = {**os.environ, **FAIR_USE_OFF, "DATABASE_URL": f"sqlite:///{work}/db.sqlite3", "DJANGO_ENV_FILE": "",
               "DJANGO_SECRET_KEY": secrets.token_urlsafe(40), "DJANGO_DEBUG": "false",
               "DJANGO_SECURE_HTTPS": "false", "DJANGO_LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "dpm_async.settings"}
        python = sys.executable
        subprocess.run([python, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=REPO, env=env, check=True)
        key = subprocess.run([python, "manage.py", "issue_token", "bench", "--create-user"], cwd=REPO, env=env,
                             check=True, capture_output=True, text=True).stdout.split()[-1]
        port = free_port()
        server = subprocess.Popen(
            [str(Path(python).with_name("gunicorn")), "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "1", "--log-level", "warning"],
            cwd=REPO, env=env, start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    timed(port, {}, 1, 401)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise SystemExit("the service did not start") from None
                    time.sleep(0.2)
            timed(port, {"Authorization": f"Token {key}"}, 200, 404)  # warm up
            with_token, without = [], []
            for _ in range(args.rounds):
                with_token.append(timed(port, {"Authorization": f"Token {key}"}, args.requests, 404))
                without.append(timed(port, {}, args.requests, 401))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    authenticated, anonymous = statistics.median(with_token), statistics.median(without)
    print(f"median per request: authenticated 404 {authenticated * 1e6:.0f} us, anonymous 401 {anonymous * 1e6:.0f} us, "
          f"difference {(authenticated - anonymous) * 1e6:.0f} us ({args.rounds} rounds of {args.requests})")


if __name__ == "__main__":
    main()
