"""A thread that does one round of database work every few seconds, whatever the database does.

The workers' heartbeat (heartbeats.py) and every process's operations sweeper (maintenance.py) are
such threads. Each round runs on the thread's own connection, closed after the round so an outage
costs a fresh connection next round and never a stale one; a round never ends the thread.
"""

from __future__ import annotations

import logging
import random
import threading

from django.db import DatabaseError, InterfaceError, connections

logger = logging.getLogger(__name__)


class PeriodicDatabaseThread(threading.Thread):
    """Calls `work()` at start and then every `interval` seconds (times a random factor within
    1 +/- `jitter`, so processes started together spread out) until `stopping` is set; then
    `at_stop()`."""

    # What the thread does, for its log lines ("the worker's heartbeat").
    doing = "periodic database work"

    def __init__(self, name: str, interval: float, *, jitter: float = 0.0) -> None:
        super().__init__(name=name, daemon=True)
        self.interval = interval
        self.jitter = jitter
        self.stopping = threading.Event()
        # Set after each round (tests wait on it instead of polling the database).
        self.round_done = threading.Event()

    def work(self) -> None:
        raise NotImplementedError

    def at_stop(self) -> None:
        """What the thread does once stopped (nothing by default)."""

    def run_round(self) -> None:
        """One round; never raises (the thread must outlive any one bad round)."""
        try:
            self.work()
        except (DatabaseError, InterfaceError) as error:
            # An outage, not a bug: one line (no traceback) each round while it lasts.
            logger.warning("%s could not reach the database (%s)", self.doing, type(error).__name__)
        except Exception:
            logger.exception("%s failed", self.doing)
        finally:
            connections.close_all()  # this thread's connection; a fresh one next round
            self.round_done.set()

    def run(self) -> None:
        while True:
            self.run_round()
            factor = random.uniform(1 - self.jitter, 1 + self.jitter) if self.jitter else 1.0  # noqa: S311
            if self.stopping.wait(self.interval * factor):
                break
        try:
            self.at_stop()
        except Exception:  # noqa: BLE001 - stopping must not fail
            logger.warning("%s could not finish cleanly", self.doing, exc_info=True)
        finally:
            connections.close_all()
