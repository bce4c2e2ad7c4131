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
from typing import Any

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("dpm_async.cache")

BACKOFF_SECONDS = 10.0
_FAILURES = (RedisConnectionError, RedisTimeoutError, OSError)


class FailOpenRedisCache(RedisCache):
    """RedisCache whose get/set/add/delete/incr never raise for an unreachable Redis."""

    def __init__(self, server: Any, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._down_until = 0.0
        self._lock = threading.Lock()

    def _available(self) -> bool:
        return time.monotonic() >= self._down_until

    def _failed(self, error: Exception) -> None:
        with self._lock:
            if not self._available():
                return
            self._down_until = time.monotonic() + BACKOFF_SECONDS
        logger.warning("the cache (Redis) is unavailable, fair-use limits are not enforced for %.0f s: %s",
                       BACKOFF_SECONDS, type(error).__name__)

    def get(self, key: Any, default: Any = None, version: Any = None) -> Any:
        if not self._available():
            return default
        try:
            return super().get(key, default, version)
        except _FAILURES as error:
            self._failed(error)
            return default

    def set(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> None:
        if not self._available():
            return
        try:
            super().set(key, value, timeout, version)
        except _FAILURES as error:
            self._failed(error)

    def add(self, key: Any, value: Any, timeout: Any = DEFAULT_TIMEOUT, version: Any = None) -> bool:
        if not self._available():
            return False
        try:
            return bool(super().add(key, value, timeout, version))
        except _FAILURES as error:
            self._failed(error)
            return False

    def delete(self, key: Any, version: Any = None) -> bool:
        if not self._available():
            return False
        try:
            return bool(super().delete(key, version))
        except _FAILURES as error:
            self._failed(error)
            return False
