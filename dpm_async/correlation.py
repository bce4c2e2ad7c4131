"""Correlation ids: the request's id, held for every log line and every answer of the request.

The resolved id lives in a context variable so that code far from the request (services, the batch
runner, log formatting, problem bodies) can read it without threading it through every call.
`CorrelationIdMiddleware` (dpm_async/middleware.py) resolves it once per request; a worker binds
the id of the operation it runs with `correlation_id_bound`.
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


def correlation_id_generate() -> str:
    """A fresh id for a request that carried none: `corr_` and 32 hex digits."""
    return f"corr_{uuid.uuid4().hex}"


def correlation_id_is_valid(value: str) -> bool:
    return CORRELATION_ID_PATTERN.fullmatch(value) is not None


def correlation_id_current() -> str | None:
    """The correlation id of the request (or task) being served, if any."""
    state = _current.get()
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


class CorrelationIdLogFilter(logging.Filter):
    """Adds `correlation_id` to every log record ("-" outside a request or task)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = correlation_id_current() or "-"
        return True
