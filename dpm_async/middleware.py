"""Middleware that every request passes first (settings.MIDDLEWARE lists the order and why)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from dpm_async.correlation import (
    CORRELATION_HEADER,
    CORRELATION_META_KEY,
    CORRELATION_REQUEST_KEY,
    correlation_id_bound,
    correlation_id_from_headers,
    correlation_id_is_valid,
    correlation_id_of_edge,
)
from dpm_async.problems import INVALID_CORRELATION_ID, problem_response


class CorrelationIdMiddleware:
    """Resolves `X-Correlation-Id` and echoes it on every response, errors and 500s included.

    It comes before everything that can answer, so even a response built by Django's own error
    handlers passes through it. An invalid header is answered here with a 400 problem, before any
    view runs; the response then carries a generated id, since echoing the invalid one would
    defeat the check. Under gunicorn the server's edge has resolved the id already (the same way),
    and that one is used, so the access line and the answer agree.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        header = request.META.get(CORRELATION_META_KEY)
        correlation_id, supplied = correlation_id_of_edge() or correlation_id_from_headers(header)
        request.META[CORRELATION_REQUEST_KEY] = correlation_id
        if header is not None and not correlation_id_is_valid(header):
            with correlation_id_bound(correlation_id, supplied=False):
                response = problem_response(
                    status=400,
                    code=INVALID_CORRELATION_ID,
                    detail="X-Correlation-Id must match [A-Za-z0-9._-]{1,128}.",
                )
        else:
            with correlation_id_bound(correlation_id, supplied=supplied):
                response = self.get_response(request)
        response[CORRELATION_HEADER] = correlation_id
        return response
