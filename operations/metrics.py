"""The operations' Prometheus metrics (docs/deployment.md, "Monitoring").

Counted where things happen, through the small named calls below (submission.py, execution.py,
maintenance.py): operations submitted, runs finished by who ran them and how they ended, and how
long they took. Computed when /metrics is scraped (`OperationsCollector`): the queue (PENDING
count, age of the oldest), the RUNNING count, live workers, and the maintenance tallies (lease
recoveries, purged rows) that cron and the workers add up in the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Literal

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Count, F, Min
from prometheus_client import Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from operations.clock import database_now
from operations.models import TERMINAL_STATUSES, MaintenanceTally, Operation, WorkerHeartbeat

logger = logging.getLogger(__name__)

# Who ran an operation: an INLINE submission, `POST …/execute` (ACCEPT_ONLY flows; any mode), or a
# WORKER task.
type RunMode = Literal["INLINE", "EXECUTE", "WORKER"]

SUBMITTED = Counter(
    "dpm_operations_submitted", "Operations created by POST /rebalance/analyze/async (replays not counted), "
    "by the execution mode they were accepted in.", ["mode"],
)
FINISHED = Counter(
    "dpm_operations_finished", "Operation runs that ended, by who ran them (INLINE, EXECUTE, WORKER) and "
    "the final status (SUCCEEDED, FAILED).", ["mode", "status"],
)
EXECUTION_SECONDS = Histogram(
    "dpm_operation_execution_seconds", "Seconds from an operation's claim to its recorded outcome, by who ran it.",
    ["mode"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)

# MaintenanceTally rows, and the counter (with its labels) each one is exported as.
TALLY_LEASE_RECOVERIES = {
    "requeued": "lease_recoveries_requeued", "failed": "lease_recoveries_failed",
    "cancelled": "lease_recoveries_cancelled",
}
TALLY_PURGED = "purged"


def operation_submitted_observe(mode: str) -> None:
    SUBMITTED.labels(mode).inc()


def operation_run_observe(mode: RunMode, operation_id: str, started: float, recorded: bool) -> None:
    """A run that started at `started` (time.perf_counter()) is over; counts it if it recorded its
    outcome (a fenced run's outcome was discarded: whoever took the row over counts theirs).

    One primary-key read for the final status: the runner's own code paths know only whether they
    wrote, not which of SUCCEEDED and FAILED (a cancel can win over a completion).
    """
    seconds = time.perf_counter() - started
    if not recorded:
        return
    status = Operation.objects.filter(pk=operation_id).values_list("status", flat=True).first()
    if status in TERMINAL_STATUSES:
        FINISHED.labels(mode, status).inc()
        EXECUTION_SECONDS.labels(mode).observe(seconds)


def maintenance_tally_add(name: str, count: int) -> None:
    """Adds `count` to the tally `name` (one UPDATE; the row is created if a test flush removed it)."""
    if count <= 0:
        return
    for _ in range(3):
        if MaintenanceTally.objects.filter(name=name).update(value=F("value") + count):
            return
        try:
            with transaction.atomic():
                MaintenanceTally.objects.create(name=name, value=count)
            return
        except IntegrityError:
            continue  # created by a concurrent caller in between: add to it


def lease_recoveries_tally(*, requeued: int, failed: int, cancelled: int) -> None:
    for outcome, count in (("requeued", requeued), ("failed", failed), ("cancelled", cancelled)):
        maintenance_tally_add(TALLY_LEASE_RECOVERIES[outcome], count)


def purged_tally(count: int) -> None:
    maintenance_tally_add(TALLY_PURGED, count)


class OperationsCollector:
    """What /metrics computes at scrape time, in three small indexed queries.

    The PENDING count and oldest age come from one aggregate over the (status, created_at, id)
    index; the RUNNING count from the partial lease index; live workers from the heartbeat index.
    Every web process answers the same values (they are the database's): aggregate them across
    instances with max(), not sum(). A database that cannot be reached yields only
    `dpm_operations_store_up 0`, never a failed scrape.
    """

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("dpm_operations_store_up",
                               "1 when the operations' database answered this scrape's queries.")
        try:
            metrics = list(self._from_database())
        except DatabaseError as error:
            logger.warning("the metrics could not read the operations' database (%s)", type(error).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from metrics

    def _from_database(self) -> Iterator[Metric]:
        now = database_now()  # leases, expiries and heartbeats are on the database's clock
        queue = Operation.objects.live(now).pending().aggregate(count=Count("pk"), oldest=Min("created_at"))
        running = Operation.objects.running().count()
        window = settings.DPM_READY_MAX_PENDING_AGE_SECONDS
        alive = WorkerHeartbeat.objects.filter(seen_at__gte=now - timedelta(seconds=window)).count()
        tallies = dict(MaintenanceTally.objects.values_list("name", "value"))

        yield GaugeMetricFamily("dpm_operations_pending", "Live operations waiting to run (PENDING).",
                                value=queue["count"])
        oldest = queue["oldest"]
        yield GaugeMetricFamily(
            "dpm_operations_oldest_pending_age_seconds",
            "Age of the oldest live PENDING operation, 0 when none waits.",
            value=(now - oldest).total_seconds() if oldest is not None else 0.0,
        )
        yield GaugeMetricFamily("dpm_operations_running", "Operations being run (RUNNING).", value=running)
        yield GaugeMetricFamily(
            "dpm_workers_alive",
            "Workers (manage.py db_worker) that sent a heartbeat within DPM_READY_MAX_PENDING_AGE_SECONDS.",
            value=alive,
        )
        recoveries = CounterMetricFamily(
            "dpm_operations_lease_recoveries",
            "RUNNING operations whose runner died (lease expired), settled by any worker or cron, by outcome.",
            labels=["outcome"],
        )
        for outcome, name in TALLY_LEASE_RECOVERIES.items():
            recoveries.add_metric([outcome], tallies.get(name, 0))
        yield recoveries
        yield CounterMetricFamily("dpm_operations_purged", "Expired operations deleted, by cron or the admin.",
                                  value=tallies.get(TALLY_PURGED, 0))

