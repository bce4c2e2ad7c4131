"""The service as `make run` starts it, on a database of the test's choosing, for black-box tests.

gunicorn with the Makefile's workers, threads and access log format; the database migrated and
tokens issued with the real management commands. `served(...)` yields a `Server` that calls it
over HTTP and stops it (the whole process group) at the end.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def makefile_access_log_format() -> str:
    match = re.search(r"^ACCESS_LOG_FORMAT := (.*)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert match, "the Makefile defines ACCESS_LOG_FORMAT"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    port: int
    tokens: dict[str, str]
    access_log: Path
    error_log: Path  # gunicorn's own log
    output: Path  # the processes' stdout and stderr: the service's log
    process: subprocess.Popen[bytes]

    def call(self, method: str, path: str, user: str | None = None, body: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], Any]:
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if user:
            all_headers["Authorization"] = f"Token {self.tokens[user]}"
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                         headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, response_headers, raw = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, response_headers, raw = error.code, dict(error.headers), error.read()
        is_json = "json" in response_headers.get("Content-Type", "")
        return status, response_headers, json.loads(raw) if is_json else raw


@contextmanager
def served(*, database_url: str | None = None, users: dict[str, list[str]] | None = None,
           **settings: str) -> Iterator[Server]:
    """The service on `database_url` (default: a scratch SQLite file), with a token per user
    (`{"alice": [], "support": ["--staff"]}`) and `settings` as environment variables."""
    work = Path(tempfile.mkdtemp(prefix="dpm_served_"))
    port = free_port()
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "dpm_async.settings",
        "DATABASE_URL": database_url or f"sqlite:///{work / 'db.sqlite3'}",
        "DJANGO_DEBUG": "false",
        "DJANGO_SECURE_HTTPS": "false",
        "DJANGO_SECRET_KEY": "served-tests-" + os.urandom(24).hex(),
        "DPM_API_AUTH_REQUIRED": "true",
        **settings,
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=REPO, env=environment, check=True, timeout=300)
    tokens = {}
    for user, flags in (users or {"alice": []}).items():
        issued = subprocess.run([*manage, "issue_token", user, "--create-user", *flags], cwd=REPO,
                                env=environment, check=True, capture_output=True, text=True)
        tokens[user] = issued.stdout.strip().splitlines()[-1]
    access_log, error_log, output = work / "access.log", work / "error.log", work / "service.log"
    process = subprocess.Popen(
        [str(BIN / "gunicorn"), "dpm_async.wsgi:application", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--threads", "4", "--timeout", "120", "--access-logfile", str(access_log),
         "--access-logformat", makefile_access_log_format(), "--error-logfile", str(error_log)],
        cwd=REPO, env=environment, start_new_session=True, stdout=output.open("wb"), stderr=subprocess.STDOUT,
    )
    running = Server(port, tokens, access_log, error_log, output, process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if running.call("GET", "/health/live", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, error_log.read_text()
            time.sleep(0.2)
        yield running
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
