"""The async operation (RFC-0018, spec/api.md sections 2, 3 and 6) and its stored scenario results.

Only `operations/services.py` changes an operation's state. The table's constraints make an
inconsistent row impossible whatever code writes it: a result envelope exists iff SUCCEEDED, an
error iff FAILED, `finished_at` iff terminal, a lease only while RUNNING, progress within its
bounds. A SUCCEEDED operation's scenario results are rows of `OperationScenarioResult`, written in
the transaction that makes it SUCCEEDED (docs/operations.md, "Storage").
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.fields.json import KeyTransform
from psycopg.adapt import Loader

from operations.access import OperationScope
from operations.clock import Instant, now_or_database

OPERATION_ID_PREFIX = "dop_"
# 128 random bits: unguessable, so an id is never enumerable.
OPERATION_ID_PATTERN = re.compile(r"dop_[0-9a-f]{32}")


def operation_id_generate() -> str:
    return OPERATION_ID_PREFIX + secrets.token_hex(16)


class OperationStatus(models.TextChoices):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


TERMINAL_STATUSES = (OperationStatus.SUCCEEDED, OperationStatus.FAILED)


class OperationType(models.TextChoices):
    ANALYZE_SCENARIOS = "ANALYZE_SCENARIOS"


class OperationExecutionMode(models.TextChoices):
    """DPM_ASYNC_EXECUTION_MODE when the operation was submitted (operations/config.py)."""

    INLINE = "INLINE"
    ACCEPT_ONLY = "ACCEPT_ONLY"
    WORKER = "WORKER"


class RawJSONField(models.Field[bytes | None, bytes | None]):
    """A JSON document kept as the exact text it was written with; the Python value is `bytes`.

    A finished batch result is up to ~70 MB of JSON. It is written once and served as is: the
    response splices the stored text into the resource, so it is never decoded into Python objects
    and re-encoded, and key order and number text stay exactly what the engine produced. The column
    is `json` on PostgreSQL (validated on write and stored verbatim; `jsonb` would reorder keys and
    re-print numbers) and text elsewhere. On PostgreSQL it is read through `raw_json_loader_install`,
    so psycopg hands over the bytes instead of parsing them.
    """

    description = "JSON kept as its exact text"

    def db_type(self, connection: Any) -> str:
        if connection.vendor == "postgresql":
            return "json"
        if connection.vendor == "mysql":
            return "longtext"
        return models.TextField().db_type(connection) or "text"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> bytes | None:
        return self.to_python(value)

    def to_python(self, value: Any) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
        if isinstance(value, str):
            return value.encode("utf-8")
        raise TypeError(f"a raw JSON column was read as {type(value).__name__}: is the raw json loader installed?")

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            return bytes(value).decode("utf-8")
        return value


class RawJSONLoader(Loader):
    """psycopg: a `json` value as the bytes it arrived as (see raw_json_loader_install)."""

    def load(self, data: Any) -> bytes:
        return bytes(data)


def raw_json_loader_install(sender: Any, connection: Any, **kwargs: Any) -> None:
    """`connection_created` receiver: PostgreSQL `json` values arrive as their raw bytes.

    psycopg's default `json` loader parses every value into Python objects, which for a 70 MB
    result costs seconds and loses the exact text; a `::text` cast in the query would cost a copy
    on the server and a UTF-8 decode here. This loader hands the wire bytes straight to
    RawJSONField (the only user of the `json` type: Django's JSONField is `jsonb`). Measured on a
    72 MB result: 0.27 s instead of 0.52 s with a cast.
    """
    if connection.vendor == "postgresql":
        connection.connection.adapters.register_loader("json", RawJSONLoader)


class OperationQuerySet(models.QuerySet["Operation"]):
    # `now` is the database's clock (operations/clock.py) unless a test fixes an instant.
    def live(self, now: Instant | None = None) -> OperationQuerySet:
        """Operations that still exist for the API: an expired one is gone at once, purged or not."""
        return self.filter(expires_at__gt=now_or_database(now))

    def expired(self, now: Instant | None = None) -> OperationQuerySet:
        return self.filter(expires_at__lte=now_or_database(now))

    def purgeable(self, now: Instant | None = None) -> OperationQuerySet:
        """Expired and not RUNNING: the rows the purge deletes (matches the partial purge index)."""
        return self.expired(now).exclude(status=OperationStatus.RUNNING)

    def pending(self) -> OperationQuerySet:
        return self.filter(status=OperationStatus.PENDING)

    def running(self) -> OperationQuerySet:
        return self.filter(status=OperationStatus.RUNNING)

    def lease_expired(self, now: Instant | None = None) -> OperationQuerySet:
        """RUNNING operations whose runner stopped renewing its lease (it died or hung)."""
        return self.running().filter(lease_expires_at__lte=now_or_database(now))

    def visible_in(self, scope: OperationScope) -> OperationQuerySet:
        """The operations a caller may know of (operations/access.py): its own, or all."""
        if scope.sees_all:
            return self
        if scope.owner_id is None:
            return self.filter(owner__isnull=True)
        return self.filter(owner_id=scope.owner_id)


class Operation(models.Model):
    """One submitted batch and its lifecycle: PENDING -> RUNNING -> SUCCEEDED | FAILED."""

    id = models.CharField(primary_key=True, max_length=36, default=operation_id_generate, editable=False)
    operation_type = models.CharField(max_length=32, choices=OperationType.choices)
    status = models.CharField(max_length=16, choices=OperationStatus.choices, default=OperationStatus.PENDING)
    # The user who submitted it: for anyone else it does not exist (operations/access.py). NULL
    # when submitted anonymously with DPM_API_AUTH_REQUIRED=false. Deleting a user deletes their
    # operations: a NULL owner would hand them to anonymous callers. Indexed by the owner indexes
    # below (owner first), so no separate FK index. The database cascades (and on to the scenario
    # results), so deleting a user never loads their operations.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.DB_CASCADE, db_index=False,
        related_name="operations",
    )
    # Unique per owner (constraints below).
    correlation_id = models.CharField(max_length=128)
    # "sha256:<hex>" of the canonical request, equal for bodies that validate to the same request:
    # replay vs conflict.
    request_fingerprint = models.CharField(max_length=71)
    # The mode the service ran in when it accepted the operation (the support console filters by
    # it). NULL for operations submitted before it was recorded (migration 0005).
    execution_mode = models.CharField(max_length=16, choices=OperationExecutionMode.choices, null=True, blank=True)
    created_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # created + TTL while never run; lease end + TTL while RUNNING; finished + TTL once terminal.
    expires_at = models.DateTimeField()
    # Executions started; also the fencing token of the current run: a runner writes only while
    # the row still carries the attempt it claimed, so a late writer can never overwrite.
    attempt = models.PositiveIntegerField(default=0)
    # Renewed by the runner between scenarios; a RUNNING row whose lease ran out lost its runner.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # Set by cancel on a RUNNING operation; the runner stops before its next scenario.
    cancel_requested = models.BooleanField(default=False)
    # Progress of the current (or last) run, written by the lease renewal before each scenario and
    # by the UPDATE that ends the run: scenarios in the request; finished so far (failed ones
    # included); failed so far; the one running now.
    scenarios_total = models.PositiveIntegerField(default=0)
    scenarios_done = models.PositiveIntegerField(default=0)
    scenarios_failed = models.PositiveIntegerField(default=0)
    current_scenario = models.CharField(max_length=64, null=True, blank=True)
    # Name -> READY, PENDING_REVIEW, BLOCKED or FAILED of each scenario finished so far (the
    # resource lists them in code-point order of the names, the order they run in).
    scenario_statuses = models.JSONField(default=dict, blank=True)
    # {"code", "message", "details"}; small, so a plain JSON field.
    error = models.JSONField(null=True, blank=True)
    # SUCCEEDED only: the BatchRebalanceSummary (the result without `results`: batch_run_id,
    # run_at_utc, base_snapshot_ids, comparison_metrics, failed_scenarios, warnings) exactly as the
    # full result carries it. A few KB: `/summary` and every status read stay on this row.
    result_envelope = RawJSONField(null=True, blank=True)
    # The payloads come last, on purpose: SQLite stores a row's columns in order and reaches a
    # column only by walking the overflow pages of every large column before it, so a 70 MB result
    # in the middle of the row would make every status or list read walk 70 MB.
    # The validated request, re-serialised canonically (BatchRequest.canonical_json()).
    request = RawJSONField()

    objects = OperationQuerySet.as_manager()

    class Meta:
        ordering = ("-created_at", "-id")
        # The support console's cancel (operations/support.py gives it to the Support group):
        # cancelling is not editing, so it is not the change permission nobody needs.
        permissions = [("cancel_operation", "Can cancel an operation")]
        constraints = [
            # One operation per correlation id and owner. Correlation id first: the index also
            # serves staff's lookups by correlation id alone (across owners) and the admin search.
            models.UniqueConstraint(fields=["correlation_id", "owner"], name="operation_owner_correlation_id_unique"),
            # NULLs are distinct in a unique index, so the anonymous owner needs its own (partial)
            # one; both make a racing duplicate INSERT fail, which the submit relies on.
            models.UniqueConstraint(
                fields=["correlation_id"], condition=Q(owner__isnull=True),
                name="operation_anonymous_correlation_id_unique",
            ),
            models.CheckConstraint(condition=Q(status__in=OperationStatus.values), name="operation_status_valid"),
            models.CheckConstraint(
                condition=Q(operation_type__in=OperationType.values), name="operation_type_valid"
            ),
            models.CheckConstraint(
                condition=Q(execution_mode__isnull=True) | Q(execution_mode__in=OperationExecutionMode.values),
                name="operation_execution_mode_valid",
            ),
            models.CheckConstraint(
                condition=Q(status=OperationStatus.SUCCEEDED, result_envelope__isnull=False)
                | (~Q(status=OperationStatus.SUCCEEDED) & Q(result_envelope__isnull=True)),
                name="operation_result_iff_succeeded",
            ),
            models.CheckConstraint(
                condition=Q(scenarios_done__lte=models.F("scenarios_total"))
                & Q(scenarios_failed__lte=models.F("scenarios_done")),
                name="operation_progress_bounded",
            ),
            models.CheckConstraint(
                condition=~Q(status=OperationStatus.SUCCEEDED) | Q(scenarios_done=models.F("scenarios_total")),
                name="operation_succeeded_all_done",
            ),
            models.CheckConstraint(
                condition=Q(status=OperationStatus.RUNNING) | Q(current_scenario__isnull=True),
                name="operation_current_scenario_only_running",
            ),
            models.CheckConstraint(
                condition=Q(status=OperationStatus.FAILED, error__isnull=False)
                | (~Q(status=OperationStatus.FAILED) & Q(error__isnull=True)),
                name="operation_error_iff_failed",
            ),
            models.CheckConstraint(
                condition=Q(status__in=TERMINAL_STATUSES, finished_at__isnull=False)
                | (~Q(status__in=TERMINAL_STATUSES) & Q(finished_at__isnull=True)),
                name="operation_finished_iff_terminal",
            ),
            # A FAILED operation may never have started (cancelled while PENDING).
            models.CheckConstraint(
                condition=Q(status=OperationStatus.PENDING, started_at__isnull=True)
                | Q(status__in=[OperationStatus.RUNNING, OperationStatus.SUCCEEDED], started_at__isnull=False,
                    attempt__gte=1)
                | Q(status=OperationStatus.FAILED),
                name="operation_started_unless_pending",
            ),
            models.CheckConstraint(
                condition=Q(status=OperationStatus.RUNNING, lease_expires_at__isnull=False)
                | (~Q(status=OperationStatus.RUNNING) & Q(lease_expires_at__isnull=True)),
                name="operation_lease_iff_running",
            ),
            models.CheckConstraint(
                condition=Q(cancel_requested=False) | Q(status=OperationStatus.RUNNING),
                name="operation_cancel_request_only_running",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("created_at")), name="operation_expires_after_created"
            ),
        ]
        indexes = [
            # The list, newest first, keyset-paged on (created_at, id); filtered by type too (one
            # type today, so a type index would only repeat this one).
            models.Index(fields=["created_at", "id"], name="operation_list_idx"),
            # The list filtered by status; also WORKER's oldest-PENDING-first pick.
            models.Index(fields=["status", "created_at", "id"], name="operation_status_list_idx"),
            # A caller's own list (and by status): owner first, so a user with a handful of
            # operations never walks everybody's. Also the owner's FK index (cascade deletes).
            models.Index(fields=["owner", "created_at", "id"], name="operation_owner_list_idx"),
            models.Index(fields=["owner", "status", "created_at", "id"], name="operation_owner_status_idx"),
            # The purge: expired rows that are not RUNNING, oldest expiry first (partial, so the
            # purge never walks RUNNING rows and the index stays as small as the purge needs).
            models.Index(
                fields=["expires_at"], condition=~Q(status=OperationStatus.RUNNING), name="operation_purge_idx"
            ),
            # Lease recovery: RUNNING rows by lease end (a handful at any time).
            models.Index(
                fields=["lease_expires_at"], condition=Q(status=OperationStatus.RUNNING), name="operation_lease_idx"
            ),
            # The support console's filters and prefix searches (operations/admin.py); the query
            # plans are pinned on PostgreSQL by tests/operations/test_admin_query_plans.py.
            models.Index(fields=["execution_mode", "created_at", "id"], name="operation_mode_list_idx"),
            models.Index(fields=["finished_at"], name="operation_finished_idx"),
            # The error code lives in the JSON error: `error -> 'code'`, the expression the admin's
            # filter (`error__code=…`) compares.
            models.Index(KeyTransform("code", "error"), "created_at", name="operation_error_code_idx"),
            # The prefix searches (`LIKE 'prefix%'`) need a `varchar_pattern_ops` btree on
            # PostgreSQL (a plain one serves LIKE only under the C collation): migration 0005
            # creates one on the correlation id, on PostgreSQL only (the operator class is
            # PostgreSQL's). The primary key has its own: Django adds a "_like" index to every
            # unique varchar there.
        ]

    def __str__(self) -> str:
        return f"{self.id} {self.status}"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class ScenarioResultStatus(models.TextChoices):
    READY = "READY"
    PENDING_REVIEW = "PENDING_REVIEW"
    BLOCKED = "BLOCKED"


class CompressedField(models.BinaryField[bytes | memoryview, bytes | memoryview]):
    """Bytes kept as they are written, uncompressed by the database: they are zstd frames already.

    On PostgreSQL the column's storage is EXTERNAL (set by the migration that creates it): large
    values still go out of line to TOAST, but TOAST does not compress them a second time, and a
    read of a few bytes (`substring`) or of the length needs no decompression.
    """

    description = "zstd-compressed bytes"


class OperationScenarioResult(models.Model):
    """One scenario's `RebalanceResult` of a SUCCEEDED operation, compressed at rest.

    `body` is one zstd frame of the exact JSON text the synchronous endpoint would answer for the
    scenario (`size` bytes). A scenario that failed has no row: it is in the envelope's
    `failed_scenarios`. The rows of an operation are written in the one transaction that makes it
    SUCCEEDED (services.operation_complete) and deleted with it (ON DELETE CASCADE in the database,
    so the purge's one DELETE per batch takes them along).
    """

    id = models.BigAutoField(primary_key=True)
    operation = models.ForeignKey(Operation, on_delete=models.DB_CASCADE, related_name="scenario_results",
                                  db_index=False)
    # The scenario's place in the result: 0, 1, ... in code-point order of the names.
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=ScenarioResultStatus.choices)
    # Length of the JSON text (what an identity answer sends for it).
    size = models.PositiveBigIntegerField()
    # The body comes last: SQLite reaches a column only past every large column before it.
    body = CompressedField()

    class Meta:
        ordering = ("operation", "position")
        constraints = [
            # Also the index of every read: one scenario by name, all of them by position.
            models.UniqueConstraint(fields=["operation", "name"], name="scenario_result_name_unique"),
            models.UniqueConstraint(fields=["operation", "position"], name="scenario_result_position_unique"),
            models.CheckConstraint(condition=Q(status__in=ScenarioResultStatus.values),
                                   name="scenario_result_status_valid"),
            models.CheckConstraint(condition=Q(size__gt=0), name="scenario_result_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.operation_id} {self.name} {self.status}"
class WorkerHeartbeat(models.Model):
    """A `manage.py db_worker` process that is alive: it rewrites `seen_at` every few seconds.

    Readiness (WORKER mode) reads it: old PENDING work and no heartbeat within
    DPM_READY_MAX_PENDING_AGE_SECONDS means nobody is there to run the queue. A worker deletes its
    row when it stops; the rows of killed workers age out (deleted after a day by the others).
    """

    # `--worker-id`, unique across the fleet (docs/deployment.md).
    worker_id = models.CharField(primary_key=True, max_length=64)
    hostname = models.CharField(max_length=255)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    # Readiness asks "anyone seen since …?": one index probe.
    seen_at = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.worker_id} seen {self.seen_at:%Y-%m-%dT%H:%M:%SZ}"


class MaintenanceTally(models.Model):
    """Running totals of maintenance done by any process: lease recoveries, purged rows.

    The purge runs from cron and lease recovery also from cron (and in every worker): short-lived
    processes no Prometheus server scrapes. So their counts are added here, in the same database,
    and /metrics exports them as counters (operations/metrics.py). One conditional `value = value
    + n` UPDATE per maintenance round that did something; the rows are created by the migration.
    """

    name = models.CharField(primary_key=True, max_length=64)
    value = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name}={self.value}"
