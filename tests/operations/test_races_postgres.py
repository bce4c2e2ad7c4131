"""The races of test_races.py, always against PostgreSQL (127.0.0.1:5432) when it is reachable.

The suite's database is SQLite unless DATABASE_URL says otherwise, so this runs test_races.py in a
child pytest whose DATABASE_URL points at the PostgreSQL server, with a database name of its own
(concurrent runs never share a test database). When the suite itself already runs on PostgreSQL,
test_races.py has just run there and this is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

pytestmark = pytest.mark.postgres

POSTGRES_URL = "postgres://postgres@127.0.0.1:5432"
REPO = Path(__file__).resolve().parents[2]


def _postgres_reachable() -> str | None:
    """None when the server answers, else why not."""
    try:
        import psycopg

        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"):
            return None
    except Exception as error:  # any failure means "not reachable"; the reason goes into the skip
        return f"{type(error).__name__}: {str(error).strip()[:200]}"


def test_races_on_postgresql():
    if connection.vendor == "postgresql":
        pytest.skip("the suite runs on PostgreSQL: test_races.py already raced there")
    unreachable = _postgres_reachable()
    if unreachable:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 (user postgres) is not reachable: {unreachable}")
    environment = {**os.environ, "DATABASE_URL": f"{POSTGRES_URL}/dpm_async_races_{os.getpid()}"}
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/operations/test_races.py"],
        cwd=REPO, env=environment, capture_output=True, text=True, timeout=600,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-5000:]
    assert " passed" in output and " skipped" not in output and " failed" not in output, output[-2000:]
