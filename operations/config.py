"""The operations' settings, read at call time (so `override_settings` reaches them).

settings.py parses and checks every variable once (spec/api.md section 5); these name what the
operations code asks of them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from django.conf import settings

from operations.errors import ManualExecutionDisabled, OperationsDisabled

type ExecutionMode = Literal["INLINE", "ACCEPT_ONLY", "WORKER"]
INLINE: ExecutionMode = "INLINE"
ACCEPT_ONLY: ExecutionMode = "ACCEPT_ONLY"
WORKER: ExecutionMode = "WORKER"

# How often a lost race is retried before giving up (each retry means someone else moved the row
# in the few microseconds between two statements; two in a row do not happen in practice).
RACE_RETRIES = 5


def execution_mode() -> ExecutionMode:
    """`DPM_ASYNC_EXECUTION_MODE`; settings.py already fell back to INLINE on a bad value."""
    mode = str(settings.DPM_ASYNC_EXECUTION_MODE).strip().upper()
    if mode == ACCEPT_ONLY or mode == WORKER:
        return mode
    return INLINE


def ttl() -> timedelta:
    """How long an operation is kept once finished (or, never run, once created)."""
    return timedelta(seconds=settings.DPM_ASYNC_OPERATIONS_TTL_SECONDS)


def lease() -> timedelta:
    """How long a run holds its operation without renewing its lease."""
    return timedelta(seconds=settings.DPM_ASYNC_EXECUTION_LEASE_SECONDS)


def max_attempts() -> int:
    return int(settings.DPM_ASYNC_MAX_ATTEMPTS)


def max_unfinished_per_owner() -> int:
    """PENDING or RUNNING operations one owner may have (0: no cap)."""
    return int(settings.DPM_ASYNC_MAX_UNFINISHED_PER_OWNER)


def manual_execution_enabled() -> bool:
    return bool(settings.DPM_ASYNC_MANUAL_EXECUTION_ENABLED)


def operations_enabled_check() -> None:
    """Raises OperationsDisabled (404) when the operations API is switched off."""
    if not settings.DPM_ASYNC_OPERATIONS_ENABLED:
        raise OperationsDisabled()


def manual_execution_check() -> None:
    """Raises ManualExecutionDisabled (404) when `.../execute` is switched off."""
    if not manual_execution_enabled():
        raise ManualExecutionDisabled()
