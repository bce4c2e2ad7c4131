"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

_HealthSerializer = inline_serializer(
    "Health", {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField())}
)


class HealthLiveView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(summary="The process is up", responses={200: _HealthSerializer}, tags=["health"])
    def get(self, request: Request) -> Response:
        return Response({"status": "ok", "checks": {}})


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
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        summary="The database is reachable and migrated",
        responses={200: _HealthSerializer, 503: _HealthSerializer},
        tags=["health"],
    )
    def get(self, request: Request) -> Response:
        database = _database_check()
        ready = database == "ok"
        return Response({"status": "ok" if ready else "unavailable", "checks": {"database": database}},
                        status=200 if ready else 503)
