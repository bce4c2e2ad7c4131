"""Fair use (docs/deployment.md, "Fair use"): request rates per caller, and failed credentials per
address, counted in Django's cache (Redis when REDIS_URL is set, else each process's memory).

A caller is its user when authenticated, else its address (dpm_async/addresses.py). Rates are
DRF rate strings read at call time (`override_settings` works); `off` switches a limit off. A
throttled request is DRF's `Throttled`, which the exception handler answers 429 `THROTTLED` with
`Retry-After`.

The counters are read-modify-write, like DRF's own throttles: two requests of one caller at the
same instant may both be counted as the first. A limit is a brake on floods, not an exact quota.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from dpm_async.addresses import client_address
from dpm_async.environment import RATE_OFF


def _rate(setting: str) -> str | None:
    rate: str = getattr(settings, setting)
    return None if rate == RATE_OFF else rate


class CallerRateThrottle(SimpleRateThrottle):
    """A sliding-window rate per caller; the rate is the setting named by `rate_setting`."""

    rate_setting = ""

    def get_rate(self) -> str | None:
        return _rate(self.rate_setting)

    def get_cache_key(self, request: Any, view: Any) -> str:
        user = request.user
        if user is not None and user.is_authenticated:
            caller = f"user:{user.pk}"
        else:
            caller = f"address:{client_address(request)}"
        return f"throttle:{self.scope}:{caller}"


class AnalyzeRateThrottle(CallerRateThrottle):
    """`POST /rebalance/analyze`: DPM_THROTTLE_ANALYZE_RATE."""

    scope = "analyze"
    rate_setting = "DPM_THROTTLE_ANALYZE_RATE"


class SubmitRateThrottle(CallerRateThrottle):
    """`POST /rebalance/analyze/async`: DPM_THROTTLE_SUBMIT_RATE."""

    scope = "submit"
    rate_setting = "DPM_THROTTLE_SUBMIT_RATE"


# DRF's reading of a rate's period: its first letter (settings.py has checked the whole word).
_PERIOD_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _auth_failures(request: Any) -> tuple[str, list[float], int, int] | None:
    """The address's cache key, its recent failures (newest first), the allowed number and the
    window in seconds; None when the limit is off."""
    rate = _rate("DPM_AUTH_FAILURE_RATE")
    if rate is None:
        return None
    number, period = rate.split("/")
    allowed, window = int(number), _PERIOD_SECONDS[period[0]]
    key = f"auth_failures:{client_address(request)}"
    now = time.time()
    history = [instant for instant in cache.get(key, []) if instant > now - window]
    return key, history, allowed, window


def auth_failures_wait(request: Any) -> int | None:
    """Seconds until the request's address may try credentials again; None when it may now."""
    counted = _auth_failures(request)
    if counted is None:
        return None
    _, history, allowed, window = counted
    if len(history) < allowed:
        return None
    return max(1, math.ceil(window - (time.time() - history[allowed - 1])))


def auth_failure_record(request: Any) -> None:
    """Counts one failed credential (a wrong token, a wrong admin password) against the address."""
    counted = _auth_failures(request)
    if counted is None:
        return
    key, history, allowed, window = counted
    # Only the newest `allowed` instants matter; the list stays small whatever an attacker sends.
    cache.set(key, [time.time(), *history][:allowed], window)
