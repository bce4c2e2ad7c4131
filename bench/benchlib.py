"""Helpers shared by the benchmark scripts (each is run as `python bench/<name>.py`)."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path
from typing import Any


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
