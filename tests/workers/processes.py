"""Real `manage.py db_worker` processes on the test database, for the worker tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]

# Short enough for the tests to finish in seconds: a dead worker's operation is settled within
# LEASE_SECONDS plus the sweep interval, which the workers derive from the lease (a quarter of it,
# at least 1 s) as they do in production.
LEASE_SECONDS = 4
POLL_INTERVAL = "0.1"


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database `settings_dict` names (the test database, once created)."""
    credentials = quote(settings_dict["USER"] or "", safe="")
    if settings_dict.get("PASSWORD"):
        credentials += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = settings_dict.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{quote(settings_dict['NAME'], safe='')}"


def wait_for(condition: Callable[[], Any], *, timeout: float, every: float = 0.05, what: str = "") -> Any:
    """Polls `condition` until it returns something truthy, which is returned; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(every)


class WorkerProcess:
    """One `manage.py db_worker` process, its output in a log file."""

    def __init__(self, worker_id: str, *, database: str, log_dir: Path, **env: str) -> None:
        self.worker_id = worker_id
        self.log_path = log_dir / f"{worker_id}.log"
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "dpm_async.settings",
            "DJANGO_SECRET_KEY": "tests-only-not-a-secret",
            "DJANGO_DEBUG": "false",
            "DJANGO_LOG_LEVEL": "INFO",
            "DATABASE_URL": database,
            "DPM_ASYNC_EXECUTION_LEASE_SECONDS": str(LEASE_SECONDS),
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay",
                 "--interval", POLL_INTERVAL, "--worker-id", worker_id],
                cwd=REPO, env=environment, stdout=log, stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"worker {self.worker_id} exited with {self.process.returncode}:\n{self.log()}")
        return "Starting worker" in self.log()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (the worker finishes its task and exits), then SIGKILL if it takes too long."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGCONT)  # in case a test left it stopped
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
