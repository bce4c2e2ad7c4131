"""Runs tests/workers on PostgreSQL (127.0.0.1:5432) from a suite that runs on SQLite.

Worker processes share one database with the test, so the worker tests need a server database:
when the suite runs on SQLite, this runs them in a child pytest whose DATABASE_URL points at the
PostgreSQL server, with a database name of its own (`dpm_async_workers_<pid>`, so concurrent runs
never share one). When the suite itself runs on PostgreSQL (`make test-postgres`), they have just
run there and this is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.workers.processes import POSTGRES_URL, REPO, postgres_unreachable

pytestmark = [pytest.mark.postgres, pytest.mark.workers]


def test_worker_processes_on_postgresql():
    if connection.vendor == "postgresql":
        pytest.skip("the suite runs on PostgreSQL: tests/workers ran there directly")
    unreachable = postgres_unreachable()
    if unreachable:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (user postgres) is not reachable: {unreachable}")
    environment = {**os.environ, "DATABASE_URL": f"{POSTGRES_URL}/dpm_async_workers_{os.getpid()}"}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/workers/test_workers.py"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=600,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-8000:]
    assert " passed" in output and " skipped" not in output and " failed" not in output, output[-2000:]
