#!/usr/bin/env python3
"""Credential guessing against the service, with the failed-credential limit off and on.

    .venv/bin/python bench/guessing.py [--redis-url redis://127.0.0.1:6379/13] [--seconds 20]

Starts the service as `make run` does (gunicorn, 2 workers x 4 threads, a scratch SQLite
database) twice: DPM_AUTH_FAILURE_RATE=off, then its default (20/min). Each time an attacker
(--attackers threads, from 127.0.0.2) guesses at full speed, half of its threads wrong API tokens
(GET /rebalance/operations), half admin passwords (POST /admin/login/ with a valid CSRF token),
while a legitimate client (from 127.0.0.1, its own address) calls GET /rebalance/operations?limit=1
with a good token one request after the other and measures each latency.

With --login-rate and/or --token-rate the attacker is open-loop instead: it sends that many
admin logins (tokens) per second whatever the answers take, as issue 12's attacker did (5.5 logins
a second), from a pool of threads - so a cheap 429 does not buy it more requests.

Reported per run: the legitimate client's median and p95 latency and requests served; the
attacker's requests, token lookups per second (its 401s: each one a hash and a query), admin
passwords hashed (its login forms shown again: each one a PBKDF2 check) and its 429s. With
--redis-url the counters are in Redis (keys under a prefix of this run, removed at the end), so
both gunicorn workers share one budget; without it each worker counts for itself.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchlib import FAIR_USE_OFF, free_port

REPO = Path(__file__).resolve().parent.parent
ATTACKER, CLIENT = "127.0.0.2", "127.0.0.1"
ADMIN_PASSWORD = "bench-" + secrets.token_urlsafe(16)


def request(port: int, source: str, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


class Service:
    def __init__(self, env: dict[str, str]) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="dpm-guessing-"))
        self.env = {**env, "DATABASE_URL": f"sqlite:///{self.work}/db.sqlite3"}
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=REPO, env=self.env, check=True)
        self.token = subprocess.run([*manage, "issue_token", "legit", "--create-user"], cwd=REPO, env=self.env,
                                    check=True, capture_output=True, text=True).stdout.split()[-1]
        subprocess.run([*manage, "createsuperuser", "--no-input", "--username", "admin", "--email", "a@example.com"],
                       cwd=REPO, env={**self.env, "DJANGO_SUPERUSER_PASSWORD": ADMIN_PASSWORD}, check=True,
                       capture_output=True)
        self.port = free_port()
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "dpm_async.wsgi:application", "--bind",
             f"127.0.0.1:{self.port}", "--workers", "2", "--threads", "4", "--timeout", "120"],
            cwd=REPO, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                if request(self.port, CLIENT, "GET", "/health/live")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the service did not start")
            time.sleep(0.2)

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=60)


def csrf(port: int) -> tuple[str, str]:
    """(the csrftoken cookie, the form's csrfmiddlewaretoken) of the admin login page."""
    _, headers, page = request(port, ATTACKER, "GET", "/admin/login/")
    cookie = re.search(r"csrftoken=([^;]+)", headers.get("set-cookie", ""))
    field = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert cookie and field, "no CSRF token on the login page"
    return cookie.group(1), field.group(1).decode()


def run(env: dict[str, str], seconds: float, attackers: int, rates: dict[str, float]) -> dict[str, Any]:
    service = Service(env)
    try:
        stop = threading.Event()
        counts: dict[str, int] = {"token_401": 0, "login_200": 0, "429": 0, "other": 0, "sent": 0}
        lock = threading.Lock()
        cookie, field = csrf(service.port)
        login_body = f"csrfmiddlewaretoken={field}&username=admin&password=wrong&next=/admin/".encode()
        login_headers = {"Cookie": f"csrftoken={cookie}", "Content-Type": "application/x-www-form-urlencoded",
                         "Referer": f"http://127.0.0.1:{service.port}/admin/login/"}

        def one(kind: str, n: int) -> None:
            """One guess, a token or an admin password, counted by its answer."""
            try:
                if kind == "token":
                    status = request(service.port, ATTACKER, "GET", "/rebalance/operations",
                                     headers={"Authorization": f"Token dpm_guess{n}"})[0]
                    counted = "token_401" if status == 401 else None
                else:
                    status = request(service.port, ATTACKER, "POST", "/admin/login/", login_body, login_headers)[0]
                    counted = "login_200" if status == 200 else None
            except OSError:
                return
            with lock:
                counts["sent"] += 1
                counts[counted or ("429" if status == 429 else "other")] += 1

        def attack(index: int) -> None:
            # Closed loop: half the threads guess tokens, half passwords, each as fast as answered.
            n = 0
            while not stop.is_set():
                n += 1
                one("token" if index % 2 == 0 else "login", n)

        def paced(kind: str, rate: float) -> None:
            # Open loop: the n-th request leaves at start + n / rate, however long the others take.
            with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
                start, n = time.monotonic(), 0
                while not stop.is_set():
                    pause = start + n / rate - time.monotonic()
                    if pause > 0:
                        stop.wait(pause)
                        continue
                    pool.submit(one, kind, n)
                    n += 1

        if rates:
            threads = [threading.Thread(target=paced, args=(kind, rate), daemon=True)
                       for kind, rate in rates.items() if rate > 0]
        else:
            threads = [threading.Thread(target=attack, args=(i,), daemon=True) for i in range(attackers)]
        for thread in threads:
            thread.start()
        time.sleep(1)  # the attack is under way
        latencies: list[float] = []
        served = refused = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status = request(service.port, CLIENT, "GET", "/rebalance/operations?limit=1",
                             headers={"Authorization": f"Token {service.token}"})[0]
            latencies.append((time.perf_counter() - started) * 1000)
            served, refused = (served + 1, refused) if status == 200 else (served, refused + 1)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = seconds + 1
        quantiles = statistics.quantiles(latencies, n=20)
        return {
            "api_median_ms": round(statistics.median(latencies), 1),
            "api_p95_ms": round(quantiles[18], 1),
            "api_served": served,
            "api_refused": refused,
            "attacker_requests": counts["sent"],
            "token_lookups_per_s": round(counts["token_401"] / elapsed, 1),
            "passwords_hashed": counts["login_200"],
            "attacker_429": counts["429"],
            "attacker_other": counts["other"],
        }
    finally:
        service.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", help="count in Redis (e.g. redis://127.0.0.1:6379/13); default local memory")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--login-rate", type=float, default=0, help="open loop: admin logins per second")
    parser.add_argument("--token-rate", type=float, default=0, help="open loop: token guesses per second")
    args = parser.parse_args()
    prefix = f"dpm_bench_guessing_{secrets.token_hex(4)}"
    base = {**os.environ, **FAIR_USE_OFF, "DJANGO_DEBUG": "false", "DJANGO_LOG_LEVEL": "ERROR",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40), "DJANGO_SECURE_HTTPS": "false",
            "DJANGO_SETTINGS_MODULE": "dpm_async.settings", "DJANGO_ENV_FILE": "", "DPM_CACHE_KEY_PREFIX": prefix}
    if args.redis_url:
        base["REDIS_URL"] = args.redis_url
    results = {}
    try:
        for name, rate in (("limit off", "off"), ("limit on (20/min)", "20/min")):
            results[name] = run({**base, "DPM_AUTH_FAILURE_RATE": rate}, args.seconds, args.attackers,
                                {"login": args.login_rate, "token": args.token_rate}
                                if args.login_rate or args.token_rate else {})
            print(name, json.dumps(results[name]), flush=True)
    finally:
        if args.redis_url:
            import redis

            client = redis.Redis.from_url(args.redis_url)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
