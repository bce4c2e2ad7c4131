"""Correlation ids: resolved once per request, echoed on every response, stamped on every log line.

The resolved id lives in a context variable so that code far from the request (services, the engine
wrapper, log formatting) can read it without threading it through every call.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from collections.abc import Callable, Iterator

from django.http import HttpRequest, HttpResponse

CORRELATION_HEADER = "X-Correlation-Id"
_CORRELATION_META_KEY = "HTTP_X_CORRELATION_ID"
CORRELATION_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)


def correlation_id_generate() -> str:
    """A fresh id for a request that carried none: `corr_` and 32 hex digits."""
    return f"corr_{uuid.uuid4().hex}"


def correlation_id_current() -> str | None:
    """The correlation id of the request being served, if any."""
    return _current.get()


def correlation_id_is_valid(value: str) -> bool:
    return CORRELATION_ID_PATTERN.fullmatch(value) is not None


@contextlib.contextmanager
def correlation_id_bound(correlation_id: str) -> Iterator[None]:
    """Stamps `correlation_id` on the log lines of the block, outside a request (a worker's task)."""
    token = _current.set(correlation_id)
    try:
        yield
    finally:
        _current.reset(token)


class CorrelationIdMiddleware:
    """Resolves `X-Correlation-Id` and echoes it on every response, errors and 500s included.

    It is the outermost middleware, so even a response built by Django's own error handlers passes
    through it. An invalid header is answered here with a 400 problem, before any view runs; the
    response then carries a generated id, since echoing the invalid one would defeat the check.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        supplied = request.META.get(_CORRELATION_META_KEY)
        if supplied is not None and not correlation_id_is_valid(supplied):
            from dpm_async.problems import problem_response

            correlation_id = correlation_id_generate()
            token = _current.set(correlation_id)
            try:
                response = problem_response(
                    status=400,
                    code="INVALID_CORRELATION_ID",
                    detail="X-Correlation-Id must match [A-Za-z0-9._-]{1,128}.",
                )
                response[CORRELATION_HEADER] = correlation_id
                return response
            finally:
                _current.reset(token)

        correlation_id = supplied or correlation_id_generate()
        request.correlation_id = correlation_id  # type: ignore[attr-defined]
        request.correlation_id_supplied = supplied is not None  # type: ignore[attr-defined]
        token = _current.set(correlation_id)
        try:
            response = self.get_response(request)
            response[CORRELATION_HEADER] = correlation_id
            return response
        finally:
            _current.reset(token)


class CorrelationIdLogFilter(logging.Filter):
    """Adds `correlation_id` to every log record ("-" outside a request).

    The id is validated before it is ever set, so it cannot carry a newline into a log line.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _current.get() or "-"
        return True
