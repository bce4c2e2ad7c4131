"""Correlation ids: the request's id, held for every log line and every answer of the request.

The resolved id lives in a context variable so that code far from the request (services, the batch
runner, log formatting, problem bodies) can read it without threading it through every call.
`CorrelationIdMiddleware` (dpm_async/middleware.py) resolves it once per request; a worker binds
the ids of the operation it runs with `correlation_id_bound` and `operation_id_bound`.

Under gunicorn the id is resolved a step earlier, at the server's edge (`correlation_id_from_headers`
in gunicorn's pre_request hook, dpm_async/server.py), and stays bound until the connection's
handling ends: so gunicorn's own lines about the request (the access line, an error) and Django's
"Internal Server Error" line, which are written after the middleware has returned, carry it too.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from collections.abc import Iterator

CORRELATION_HEADER = "X-Correlation-Id"
CORRELATION_META_KEY = "HTTP_X_CORRELATION_ID"
CORRELATION_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")

# (the resolved id, whether the caller sent it)
_current: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar("correlation_id", default=None)
# The same, resolved by the server's edge for the request being served (gunicorn only).
_edge: contextvars.ContextVar[tuple[str, bool] | None] = contextvars.ContextVar("edge_correlation_id", default=None)
# The operation a worker (or a request) is running, for its log lines.
_operation: contextvars.ContextVar[str | None] = contextvars.ContextVar("operation_id", default=None)
# Where the middleware leaves the resolved id on the request, for records that carry the request
# (Django's "Internal Server Error" line is written after the middleware returned).
CORRELATION_REQUEST_KEY = "dpm_async.correlation_id"


def correlation_id_generate() -> str:
    """A fresh id for a request that carried none: `corr_` and 32 hex digits."""
    return f"corr_{uuid.uuid4().hex}"


def correlation_id_is_valid(value: str) -> bool:
    return CORRELATION_ID_PATTERN.fullmatch(value) is not None


def correlation_id_current() -> str | None:
    """The correlation id of the request (or task) being served, if any."""
    state = _current.get() or _edge.get()
    return None if state is None else state[0]


def correlation_id_of_request() -> str:
    """The correlation id of the request being served; only code that runs inside one asks."""
    correlation_id = correlation_id_current()
    if correlation_id is None:
        raise LookupError("no correlation id: not inside a request (CorrelationIdMiddleware) or task")
    return correlation_id


def correlation_id_supplied() -> str | None:
    """The correlation id the caller sent, None when it sent none (and one was generated)."""
    state = _current.get()
    return state[0] if state is not None and state[1] else None


@contextlib.contextmanager
def correlation_id_bound(correlation_id: str, *, supplied: bool = True) -> Iterator[None]:
    """Makes `correlation_id` the current one for the block (a request, or a worker's task).

    Only a validated id may be bound: it is stamped on log lines as it is.
    """
    token = _current.set((correlation_id, supplied))
    try:
        yield
    finally:
        _current.reset(token)


def correlation_id_from_headers(value: str | None) -> tuple[str, bool]:
    """What the edge binds for a request whose `X-Correlation-Id` is `value` (None: absent).

    A valid id is taken as it is; an absent or invalid one is replaced by a generated id (the
    middleware then answers the invalid one with a 400 that carries the generated id).
    """
    if value is not None and correlation_id_is_valid(value):
        return value, True
    return correlation_id_generate(), False


def correlation_id_bind_at_edge(value: str | None) -> None:
    """Binds the id of the request the server is about to serve, until the handling ends.

    Only the server's edge calls it, inside a context that lives as long as the connection's
    handling (dpm_async/server.py), so nothing is left behind for the next request.
    """
    _edge.set(correlation_id_from_headers(value))


def correlation_id_of_edge() -> tuple[str, bool] | None:
    """The (id, supplied) the edge bound for this request, or None (not under gunicorn)."""
    return _edge.get()


@contextlib.contextmanager
def operation_id_bound(operation_id: str) -> Iterator[None]:
    """Makes `operation_id` the one every log line of the block names (a worker's task)."""
    token = _operation.set(operation_id)
    try:
        yield
    finally:
        _operation.reset(token)


def operation_id_current() -> str | None:
    return _operation.get()


class CorrelationIdLogFilter(logging.Filter):
    """Adds `correlation_id` ("-" outside a request or task) and `operation_id` to every record.

    A record that already names its correlation id (gunicorn's access line takes it from the
    response) keeps it; one that carries the request (Django's request-error lines) gets the id the
    middleware resolved for it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "correlation_id", None):
            correlation_id = correlation_id_current()
            if correlation_id is None:
                request = getattr(record, "request", None)
                meta = getattr(request, "META", None)
                if isinstance(meta, dict):
                    correlation_id = meta.get(CORRELATION_REQUEST_KEY)
            record.correlation_id = correlation_id or "-"
        if getattr(record, "operation_id", None) is None:
            record.operation_id = _operation.get()
        return True
