"""Helpers shared by the benchmark scripts (each is run as `python bench/<name>.py`)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def scratch_database(server_url: str | None, workdir: str, label: str) -> Iterator[str]:
    """A database URL for one bench run: a SQLite file in `workdir`, or with a PostgreSQL
    `server_url` (postgres://user@host:port/anything) a database created for the run and dropped
    after it (`psql` on the server's `postgres` database)."""
    if not server_url:
        yield f"sqlite:///{workdir}/bench.sqlite3"
        return
    server = server_url.rsplit("/", 1)[0]
    name = f"dpm_async_bench_{label}_{secrets.token_hex(4)}"
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {name}"], check=True)
    try:
        yield f"{server}/{name}"
    finally:
        subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                       check=False)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_gen_batch(path: Path) -> Any:
    """The shared request generator (../shared/bench/gen_batch.py), imported, not copied."""
    spec = importlib.util.spec_from_file_location("gen_batch", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Every fair-use limit off (docs/deployment.md, "Fair use"): a bench measures the service, and a
# bench's client may send more than one caller's budget. Merge into a started service's env.
# BENCH_FAIR_USE=default keeps the service's defaults instead, to measure what the limits cost.
FAIR_USE_OFF: dict[str, str] = {} if os.environ.get("BENCH_FAIR_USE") == "default" else {
    "DPM_THROTTLE_ANALYZE_RATE": "off",
    "DPM_THROTTLE_SUBMIT_RATE": "off",
    "DPM_AUTH_FAILURE_RATE": "off",
    "DPM_ASYNC_MAX_UNFINISHED_PER_OWNER": "0",
    "DPM_MAX_BATCH_CELLS": str(10**9),
}
