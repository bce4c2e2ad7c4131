"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from typing import Literal, TypedDict

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dpm_async.openapi import Shape, problem_responses

type HealthStatus = Literal["ok", "unavailable"]


class Health(TypedDict):
    """A probe's answer: `ok`, or `unavailable` with the failing check named in `checks`."""

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


def _database_check() -> str:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        executor = MigrationExecutor(connection)
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            return "migrations pending"
    except Exception:  # any failure means "not ready"; the probe must answer, not raise
        return "unreachable"
    return "ok"


class HealthReadyView(APIView):
    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="The database is reachable and migrated",
        responses={200: Shape(Health), 503: Shape(Health), **problem_responses({}, authenticated=False)},
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        database = _database_check()
        ready = database == "ok"
        body: Health = {"status": "ok" if ready else "unavailable", "checks": {"database": database}}
        return Response(body, status=200 if ready else 503)
