"""Django's PostgreSQL backend, with a deadline on every statement that does not trust the server.

PostgreSQL's `statement_timeout` (set per connection, settings.py) ends a slow statement on the
server. It cannot end one whose server no longer runs at all - a host frozen by its hypervisor, a
stopped process, a network path that drops answers: the kernel keeps acknowledging what the client
sends, and the client waits forever for an answer. So every statement (and Django's connection
health check) is also watched from the client side: one thread per process keeps the deadlines,
and a statement still waiting `DPM_DB_STATEMENT_TIMEOUT_SECONDS` + 1 s after it was sent has its
connection's socket shut down. The waiting call then fails with an OperationalError, which the
service answers as `503 DATABASE_UNAVAILABLE` (dpm_async/problems.py), and Django replaces the
connection. Connecting is bounded by libpq's `connect_timeout` (settings.py).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.db.backends.postgresql import base

logger = logging.getLogger(__name__)

# The server's own statement_timeout normally ends a slow statement first; this only catches the
# statements of a server that cannot answer at all.
CLIENT_GRACE_SECONDS = 1.0


class _Deadlines(threading.Thread):
    """Shuts down the socket of a connection whose statement outlived its deadline."""

    def __init__(self) -> None:
        super().__init__(name="database-deadlines", daemon=True)
        self._heap: list[tuple[float, int]] = []
        self._watched: dict[int, DatabaseWrapper] = {}
        self._sequence = itertools.count()
        self._changed = threading.Condition()

    def watch(self, connection: DatabaseWrapper, seconds: float) -> int:
        token = next(self._sequence)
        with self._changed:
            self._watched[token] = connection
            heapq.heappush(self._heap, (time.monotonic() + seconds, token))
            if self._heap[0][1] == token:
                self._changed.notify()
        return token

    def release(self, token: int) -> None:
        with self._changed:
            self._watched.pop(token, None)  # its heap entry is dropped when it comes up

    def run(self) -> None:
        while True:
            with self._changed:
                while not self._heap:
                    self._changed.wait()
                deadline, token = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                heapq.heappop(self._heap)
                connection = self._watched.pop(token, None)
            if connection is not None:
                connection.abandon()


_deadlines: _Deadlines | None = None
_deadlines_lock = threading.Lock()


def _watcher() -> _Deadlines:
    global _deadlines
    with _deadlines_lock:
        if _deadlines is None or not _deadlines.is_alive():  # a forked child has no such thread
            _deadlines = _Deadlines()
            _deadlines.start()
        return _deadlines


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.execute_wrappers.append(self._within_deadline)

    @staticmethod
    def deadline_seconds() -> float | None:
        timeout = float(settings.DPM_DB_STATEMENT_TIMEOUT_SECONDS)
        return timeout + CLIENT_GRACE_SECONDS if timeout > 0 else None

    @contextmanager
    def _watched(self) -> Iterator[None]:
        seconds = self.deadline_seconds()
        if seconds is None:
            yield
            return
        watcher = _watcher()
        token = watcher.watch(self, seconds)
        try:
            yield
        finally:
            watcher.release(token)

    def _within_deadline(self, execute: Callable[..., Any], sql: str, params: Any, many: bool,
                         context: dict[str, Any]) -> Any:
        with self._watched():
            return execute(sql, params, many, context)

    def is_usable(self) -> bool:
        # Django's health check runs a query on the raw connection, past execute_wrappers.
        with self._watched():
            return bool(super().is_usable())

    def abandon(self) -> None:
        """Shuts this connection's socket down (from the deadline thread): the statement waiting on
        it fails at once instead of waiting for a server that does not answer."""
        raw = self.connection
        if raw is None:
            return
        try:
            fd = raw.pgconn.socket
            duplicate = socket.socket(fileno=os.dup(fd))
        except Exception:  # already closed: nothing waits on it
            return
        logger.warning("the database did not answer within %.0f s; the connection is abandoned",
                       self.deadline_seconds() or 0)
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            duplicate.close()
