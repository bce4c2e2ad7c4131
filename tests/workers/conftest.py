"""Fixtures of the worker tests: the test database's URL and real worker processes on it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test import override_settings

from tests.workers.processes import WorkerProcess, database_url, wait_for


@pytest.fixture
def worker_database(transactional_db: None) -> Iterator[str]:
    """The URL of the test database, whose rows are committed (so other processes see them).

    The suite runs in WORKER mode for the test: a submission enqueues its task on commit.
    """
    with override_settings(DPM_ASYNC_EXECUTION_MODE="WORKER"):
        yield database_url(connection.settings_dict)


@pytest.fixture
def start_workers(worker_database: str, tmp_path: Path) -> Iterator[Callable[..., list[WorkerProcess]]]:
    """Starts `manage.py db_worker` processes and waits until they poll; stops them all at the end."""
    started: list[WorkerProcess] = []

    def start(*worker_ids: str, **env: str) -> list[WorkerProcess]:
        workers = [WorkerProcess(w, database=worker_database, log_dir=tmp_path, **env) for w in worker_ids]
        started.extend(workers)
        for worker in workers:
            wait_for(worker.ready, timeout=60, what=f"worker {worker.worker_id} to start")
        return workers

    yield start
    for worker in started:
        worker.stop()
    # Each worker's last lines, on failure (pytest shows captured output only then).
    for worker in started:
        print(f"--- {worker.worker_id} ---\n{worker.log()[-3000:]}")
