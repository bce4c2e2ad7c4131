"""Keeping a run's lease while its batch runs (docs/operations.md, "Leases").

The runner renews its lease before every scenario (`operation_lease_renew(unless_cancelled=True)`),
but one scenario of a big portfolio, or the write of a 100 MB result, can outlast the lease; a
healthy worker would then lose its operation to recovery and the batch would run twice. So while a
batch runs, a `LeaseKeeper` thread renews the lease every third of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, InterfaceError, connections
from django.utils import timezone

from operations.services import operation_lease_renew

logger = logging.getLogger(__name__)

# A run that has not started a scenario for this many leases is taken for hung: its keeper stops
# renewing, so the lease lapses and recovery runs the operation again (300 s leases: 50 minutes,
# against seconds for the largest batch's slowest scenario).
LEASE_KEEPER_PATIENCE_LEASES = 10


class LeaseKeeper(threading.Thread):
    """Renews a run's lease every `interval` seconds, in the background, until told to stop.

    The thread has its own database connection (Django's are per thread), which it closes when it
    ends. It never stops the run: once the row is no longer this run's it just ends, and the runner
    finds out at its next write. It renews only while the run makes progress (`progressed()` at
    each scenario): a runner stuck for `patience` seconds in one scenario is treated like a dead
    one, or a hung worker would hold its operation forever.

    `clock` (monotonic seconds) and `now` (the instant a renewal counts from) are injectable, so
    that tests move time instead of sleeping.
    """

    def __init__(
        self,
        operation_id: str,
        attempt: int,
        *,
        interval: float,
        patience: float,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = timezone.now,
    ) -> None:
        super().__init__(name=f"lease-keeper {operation_id} attempt {attempt}", daemon=True)
        self.operation_id = operation_id
        self.attempt = attempt
        self.interval = interval
        self.patience = patience
        self.clock = clock
        self.now = now
        self.stopping = threading.Event()
        self.last_progress = clock()

    def progressed(self) -> None:
        self.last_progress = self.clock()

    def renew_once(self) -> bool:
        """One renewal; False when the keeper should end (the run hung, or the row is not its run)."""
        if self.clock() - self.last_progress > self.patience:
            logger.error("operation %s attempt %s has been in one scenario for over %s s; no longer renewing "
                         "its lease", self.operation_id, self.attempt, self.patience)
            return False
        try:
            return operation_lease_renew(self.operation_id, self.attempt, now=self.now())
        except (DatabaseError, InterfaceError) as error:
            # The database blinked (restart, failover): try again next time on a fresh connection;
            # the lease has two thirds of its length of slack left. An outage is not a bug: one line.
            logger.warning("could not renew the lease of operation %s (%s)", self.operation_id, type(error).__name__)
            connections.close_all()
            return True

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                if not self.renew_once():
                    return
        finally:
            connections.close_all()  # this thread's connections only


@contextmanager
def operation_lease_kept(operation_id: str, attempt: int) -> Iterator[LeaseKeeper]:
    """Keeps the lease of run `attempt` renewed by a background thread while the block runs.

    Yields the keeper; call its `progressed()` as the run moves on.
    """
    lease = settings.DPM_ASYNC_EXECUTION_LEASE_SECONDS
    keeper = LeaseKeeper(operation_id, attempt, interval=lease / 3, patience=LEASE_KEEPER_PATIENCE_LEASES * lease)
    keeper.start()
    try:
        yield keeper
    finally:
        keeper.stopping.set()
        # Bounded: a keeper stuck in a hung database call must not hold the worker; it is a daemon.
        keeper.join(timeout=lease)
