"""Prometheus metrics of the web process and `/metrics` (docs/deployment.md, "Monitoring").

Under gunicorn every worker process writes its metrics to files in the service instance's
multiprocess directory (gunicorn.conf.py, dpm_async/server.py), and /metrics adds them up, so one
scrape sees the whole instance whichever worker answers it. Outside gunicorn (runserver, tests) it
reports the process's own. The collectors named in DPM_METRICS_COLLECTORS are added at scrape
time (the operations' queue, computed from the database when asked).

/metrics answers a staff user's token and nobody else: an anonymous caller gets 401, another
caller 403. What it shows is counts and durations, never an identifier or a payload.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from dpm_async.authentication import ApiTokenAuthentication, StaffTokenRequired
from dpm_async.openapi import problem_responses

# Answers given before any route matched a path (static files, an unknown path).
NO_ROUTE = "(none)"

HTTP_REQUESTS = Counter(
    "dpm_http_requests", "HTTP requests answered, by route (the URL pattern), method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "dpm_http_request_duration_seconds",
    "Seconds from the request reaching Django to its answer being built, by route, method and status.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def _route(request: HttpRequest) -> str:
    """The URL pattern that served `request` (bounded: a label value per route, never a path).

    A request answered before routing (a 413 or a bad correlation id from the middleware) is
    resolved here, so it is counted under its route too.
    """
    match = request.resolver_match
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return NO_ROUTE
    return match.route or NO_ROUTE


class RequestMetricsMiddleware:
    """Counts and times every answer (the outermost middleware, so every answer is seen)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        labels = (_route(request), request.method or "", str(response.status_code))
        HTTP_REQUESTS.labels(*labels).inc()
        HTTP_REQUEST_SECONDS.labels(*labels).observe(time.perf_counter() - started)
        return response


class _ProcessMetrics(Collector):
    """This process's registered metrics (outside gunicorn's multiprocess mode)."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def metrics_exposition() -> bytes:
    """The text exposition of every metric of this service instance, scrape-time ones included."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry.register(_ProcessMetrics())
    for path in settings.DPM_METRICS_COLLECTORS:
        registry.register(import_string(path)())
    return generate_latest(registry)


class _TextRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"


class _AnyAccept(BaseContentNegotiation):
    """Prometheus' Accept header lists OpenMetrics first; the answer is the text format whatever
    it asks (its scrape accepts it), and a problem is JSON."""

    def select_renderer(self, request: Request, renderers: Iterable[BaseRenderer],
                        format_suffix: str | None = None) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type

    def select_parser(self, request: Request, parsers: Any) -> Any:
        return parsers[0] if parsers else None


class MetricsView(APIView):
    """`GET /metrics`: the Prometheus text format, for a staff user's token."""

    authentication_classes = [ApiTokenAuthentication]
    permission_classes = [StaffTokenRequired]
    content_negotiation_class = _AnyAccept

    @extend_schema(
        operation_id="metrics",
        summary="Prometheus metrics (staff token only)",
        description=(
            "The Prometheus text exposition format of the service instance (every gunicorn worker "
            "added up) and of the queue, computed at scrape time. Answers a staff user's token "
            "(`Authorization: Token <key>`) only; the list of metrics is in docs/deployment.md."
        ),
        responses={
            (200, "text/plain"): OpenApiResponse(response=OpenApiTypes.STR, description="The exposition."),
            **problem_responses({403: "`PERMISSION_DENIED`: the token's user is not staff."}),
        },
        tags=["monitoring"],
    )
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_LATEST)
