"""A run's writes outlast a short database outage (docs/operations.md, "Database outages").

A restart or failover takes the database away for seconds. A run that met it between two scenarios
(the lease renewal) or while storing its result used to be abandoned, to be run again from the
start once its lease lapsed; now each such write is retried, backing off from 0.1 s to 5 s, for up
to DPM_DB_WRITE_RETRY_SECONDS. Only when the database stays away longer is the run given up (the
error propagates: the operation is not failed, its lease lapses and lease recovery runs it again).

Every retried write is one of the services' conditional UPDATEs (or the one transaction that
stores a result), fenced by the run's attempt: repeating it after a failure that may or may not
have committed is safe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

logger = logging.getLogger(__name__)

FIRST_PAUSE_SECONDS = 0.1
MAX_PAUSE_SECONDS = 5.0


@dataclass(frozen=True)
class Retry:
    """How long to keep trying; `sleep` and `clock` are injectable so tests move time, not wait."""

    seconds: float
    sleep: Callable[[float], None] = field(default=time.sleep)
    clock: Callable[[], float] = field(default=time.monotonic)

    @classmethod
    def from_settings(cls) -> Retry:
        return cls(float(settings.DPM_DB_WRITE_RETRY_SECONDS))


def database_retrying[T](write: Callable[[], T], what: str, retry: Retry | None = None) -> T:
    """`write()`, tried again after OperationalError/InterfaceError until `retry.seconds` have passed.

    Between tries the thread's connection is closed, so the next try connects afresh. Inside a
    transaction nothing is retried (the transaction is lost with the connection).
    """
    retry = retry or Retry.from_settings()
    deadline = retry.clock() + retry.seconds
    pause = FIRST_PAUSE_SECONDS
    while True:
        try:
            return write()
        except (OperationalError, InterfaceError):
            if connection.in_atomic_block:
                raise  # the enclosing transaction is lost: only its owner can start again
            connection.close()  # this thread's; the next try connects afresh
            if retry.clock() + pause > deadline:
                logger.warning("%s: the database stayed unavailable for %.0f s; giving up", what, retry.seconds)
                raise
            logger.warning("%s: the database is unavailable; trying again in %.1f s", what, pause)
            retry.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_SECONDS)
