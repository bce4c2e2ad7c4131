"""Liveness and readiness probes (no authentication: load balancers call them; docs/deployment.md).

`/health/live` answers 200 while the process serves requests, and nothing else. `/health/ready`
answers 200 when the database answers, every migration is applied, and each check named in
DPM_READINESS_CHECKS passes (the operations' one: in WORKER mode, someone is there to run the
queue); otherwise a 503 problem (`SERVICE_NOT_READY`) whose `detail` gives the reasons and whose
`checks` names the state of each check.

It is probed often, so it is cheap: one small query for the applied migrations (the migrations on
disk are read once per process), and the checks' indexed reads. It never hangs: PostgreSQL
connections give up after 5 s (settings.py) and the queries after READINESS_STATEMENT_TIMEOUT_MS.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Literal, TypedDict

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.http import HttpResponse
from django.utils.module_loading import import_string
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dpm_async.openapi import Shape, problem_responses
from dpm_async.problems import SERVICE_NOT_READY, problem_response

type HealthStatus = Literal["ok", "unavailable"]

READINESS_STATEMENT_TIMEOUT_MS = 2000


class Health(TypedDict):
    """A probe's answer: `ok`, and the state of each check in `checks`."""

    status: HealthStatus
    checks: dict[str, str]


class HealthLiveView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="The process is up",
        responses={200: Shape(Health), **problem_responses({}, authenticated=False)},
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        body: Health = {"status": "ok", "checks": {}}
        return Response(body)


@functools.cache
def _migrations_on_disk() -> frozenset[tuple[str, str]]:
    """The latest migration of each app, as the code ships them (read once per process)."""
    return frozenset(MigrationLoader(None, ignore_no_migrations=True).graph.leaf_nodes())


@contextlib.contextmanager
def _bounded_queries() -> Iterator[None]:
    """On PostgreSQL the probe's queries run in one transaction that gives up after
    READINESS_STATEMENT_TIMEOUT_MS; SQLite reads never wait on a writer (WAL), and a transaction
    there would take the write lock (IMMEDIATE mode), so none is opened."""
    connection = connections[DEFAULT_DB_ALIAS]
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL statement_timeout = {READINESS_STATEMENT_TIMEOUT_MS}")
        yield


def _migrations_state() -> str:
    """"ok", or the migrations that are not applied. Raises when the database does not answer."""
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT app, name FROM django_migrations")
        applied = {(app, name) for app, name in cursor.fetchall()}
    missing = sorted(_migrations_on_disk() - applied)
    if missing:
        return "not applied: " + ", ".join(f"{app}.{name}" for app, name in missing) + " (run manage.py migrate)"
    return "ok"


def _readiness_checks() -> dict[str, Callable[[], tuple[str, bool]]]:
    return {name: import_string(path) for name, path in settings.DPM_READINESS_CHECKS.items()}


def readiness() -> tuple[dict[str, str], list[str]]:
    """(the state of each check, the names of those that fail). Never raises: a check that cannot
    run (the database is gone, a query timed out) is a failing check."""
    checks: dict[str, str] = {}
    failing: list[str] = []
    try:
        with _bounded_queries():
            migrations = _migrations_state()
            checks.update(database="ok", migrations=migrations)
            if migrations != "ok":
                return checks, ["migrations"]
            for name, check in _readiness_checks().items():
                checks[name], passed = check()
                if not passed:
                    failing.append(name)
    except Exception:  # any failure means "not ready"; the probe must answer, not raise
        if "migrations" not in checks:
            return {"database": "unreachable"}, ["database"]
        name = next((n for n in _readiness_checks() if n not in checks), "checks")
        checks[name] = "could not be checked (database error or timeout)"
        failing.append(name)
    return checks, failing


# A probe answers within this long, whatever the database does: a load balancer's probe timeout is
# typically 2 s, and a probe that times out says less than a 503 that names the reason.
READINESS_ANSWER_SECONDS = 1.5
_probe_lock = threading.Lock()
_probe_in_flight: list[concurrent.futures.Future[tuple[dict[str, str], list[str]]]] = []
_probe_pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="readiness")


def _readiness_on_own_connection() -> tuple[dict[str, str], list[str]]:
    try:
        return readiness()
    finally:
        connections.close_all()  # this thread's connection


def readiness_within(seconds: float) -> tuple[dict[str, str], list[str]]:
    """`readiness()`, run on a thread of its own (and its own connection), given up after `seconds`.

    On PostgreSQL: a database that accepts connections but never answers would hold a probe until the connect
    timeout (5 s) or the statement deadline; the probe answers "not answering" instead. At most one
    check runs at a time per process: while a slow one is still out, later probes say so at once
    rather than piling threads onto a database that does not answer.
    """
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        return readiness()  # a file on this host: nothing to wait for over a network
    with _probe_lock:
        if _probe_in_flight and not _probe_in_flight[0].done():
            future = _probe_in_flight[0]
        else:
            future = _probe_pool.submit(_readiness_on_own_connection)
            _probe_in_flight[:] = [future]
    try:
        return future.result(timeout=seconds)
    except concurrent.futures.TimeoutError:
        return {"database": f"not answering within {seconds:g} s"}, ["database"]


class HealthReadyView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="The database is reachable and migrated, and the workers are there when needed",
        description=(
            "503 when the database does not answer, a migration is not applied, or (WORKER mode) "
            "PENDING work is older than DPM_READY_MAX_PENDING_AGE_SECONDS and no worker has sent a "
            "heartbeat within it; `detail` says why and `checks` names each check's state."
        ),
        responses={
            200: Shape(Health),
            **problem_responses({503: "`SERVICE_NOT_READY`: the reasons are in `detail` and `checks`."},
                                authenticated=False),
        },
        tags=["health"],
    )
    def get(self, request: Request) -> Response | HttpResponse:
        checks, failing = readiness_within(READINESS_ANSWER_SECONDS)
        if failing:
            reasons = "; ".join(f"{name}: {checks[name]}" for name in failing)
            return problem_response(503, SERVICE_NOT_READY, f"Not ready: {reasons}.", extra={"checks": checks})
        body: Health = {"status": "ok", "checks": checks}
        return Response(body)
