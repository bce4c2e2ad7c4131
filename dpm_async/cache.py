"""Django's Redis cache, failing open (docs/deployment.md, "Fair use").

The cache holds only the fair-use counters. Should Redis be down or slow, a request must still be
served: a limit not enforced for a while is better than an outage of the whole API. So every
call that fails with a Redis connection error or timeout answers as a cache miss (a write is
dropped); the first failure logs one WARNING, and for the next BACKOFF_SECONDS Redis is not
asked at all, so no request pays the connect timeout again and again while it is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("dpm_async.cache")

BACKOFF_SECONDS = 10.0
_FAILURES = (RedisConnectionError, RedisTimeoutError, OSError)


class FailOpenRedisCache(RedisCache):
    """RedisCache whose get/set/add/delete never raise for an unreachable Redis (the calls the
    fair-use counters make: DRF's throttles and dpm_async/throttles.py)."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _asked(self, fallback: Any, call: Callable[..., Any], *args: Any) -> Any:
        """`call(*args)`, or `fallback` while Redis is down (and when this call finds it down)."""
        if time.monotonic() < self._down_until:
            return fallback
        try:
            return call(*args)
        except _FAILURES as error:
            with self._lock:
                if time.monotonic() < self._down_until:
                    return fallback  # another thread found it down first and logged it
                self._down_until = time.monotonic() + BACKOFF_SECONDS
            logger.warning("the cache (Redis) is unavailable, fair-use limits are not enforced for %.0f s: %s",
                           BACKOFF_SECONDS, type(error).__name__)
            return fallback

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        return self._asked(default, super().get, key, default, version)

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> None:
        self._asked(None, super().set, key, value, timeout, version)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        return bool(self._asked(False, super().add, key, value, timeout, version))

    def delete(self, key: Any, version: Any = None) -> bool:
        return bool(self._asked(False, super().delete, key, version))
