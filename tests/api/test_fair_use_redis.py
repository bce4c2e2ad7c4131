"""The fair-use limits on a real Redis (127.0.0.1:6379, database 13, keys under a prefix of this
run only): counted once for every process, and failing open when Redis is down."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import Client, override_settings

from tests.factories.bodies import batch_body
from tests.factories.operations import api_headers
from tests.served import served

REDIS_URL = "redis://127.0.0.1:6379/13"
PREFIX = f"dpm_async_tests_{os.getpid()}"


def _reachable() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


pytestmark = pytest.mark.skipif(not _reachable(), reason=f"Redis is not reachable at {REDIS_URL}")


def redis_caches(location: str = REDIS_URL) -> dict[str, Any]:
    return {"default": {"BACKEND": "dpm_async.cache.FailOpenRedisCache", "LOCATION": location,
                        "KEY_PREFIX": PREFIX, "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}}


@pytest.fixture(autouse=True)
def _only_our_keys_are_removed() -> Iterator[None]:
    yield
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{PREFIX}*"):
        client.delete(key)


def analyze(client: Client) -> Any:
    return client.post("/rebalance/analyze", data=json.dumps(batch_body()), content_type="application/json")


@pytest.mark.django_db
def test_two_clients_share_one_budget_through_redis():
    with override_settings(CACHES=redis_caches(), DPM_THROTTLE_ANALYZE_RATE="3/min"):
        first, second = Client(headers=api_headers()), Client(headers=api_headers())
        assert [analyze(c).status_code for c in (first, second, first)] == [200, 200, 200]
        refused = analyze(second)
        assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
        assert any(key.startswith(f"{PREFIX}:".encode()) for key in redis.Redis.from_url(REDIS_URL).keys(f"{PREFIX}*"))


def test_the_limits_hold_across_gunicorn_workers():
    """Two gunicorn workers (two processes): with Redis the failures of both count together.

    Each request is a new connection, so gunicorn spreads them over its workers; with each
    process's own memory an address would get up to twice the budget."""
    with served(REDIS_URL=REDIS_URL, DPM_CACHE_KEY_PREFIX=PREFIX, DPM_AUTH_FAILURE_RATE="5/min",
                DPM_THROTTLE_ANALYZE_RATE="4/min") as server:
        # Throttled per user: 4 then 429 whichever worker answers.
        runs = [server.call("POST", "/rebalance/analyze", user="alice", body=json.dumps(batch_body()).encode())[0]
                for _ in range(8)]
        assert runs == [200] * 4 + [429] * 4
        guesses = [server.call("GET", "/rebalance/operations", headers={"Authorization": "Token dpm_guess"})[0]
                   for _ in range(12)]
        assert guesses == [401] * 5 + [429] * 7
        # The address is now refused whatever it sends, alice's good token included.
        assert server.call("GET", "/rebalance/operations", user="alice")[0] == 429


@pytest.mark.django_db
def test_redis_down_fails_open_with_one_warning(caplog):
    nowhere = "redis://127.0.0.1:9/13"  # the discard port: nothing listens there
    with override_settings(CACHES=redis_caches(nowhere), DPM_THROTTLE_ANALYZE_RATE="2/min",
                           DPM_AUTH_FAILURE_RATE="2/min"):
        caches["default"]._down_until = 0.0
        with caplog.at_level(logging.WARNING, logger="dpm_async.cache"):
            client = Client(headers=api_headers())
            assert [analyze(client).status_code for _ in range(6)] == [200] * 6
            guesser = Client(headers={"Authorization": "Token dpm_guess"})
            assert {guesser.get("/rebalance/operations").status_code for _ in range(5)} == {401}
    warnings = [record for record in caplog.records if record.name == "dpm_async.cache"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING and warnings[0].exc_info is None
    assert "fair-use limits are not enforced" in warnings[0].getMessage()


def test_after_the_back_off_redis_is_asked_again(monkeypatch):
    from dpm_async import cache as fail_open

    backend = fail_open.FailOpenRedisCache(REDIS_URL, {"KEY_PREFIX": PREFIX, "OPTIONS": {}})
    calls: list[str] = []
    monkeypatch.setattr(fail_open.RedisCache, "get", lambda self, *a, **k: calls.append("get") or (
        (_ for _ in ()).throw(redis.ConnectionError("down"))))
    clock = [1000.0]
    monkeypatch.setattr(fail_open.time, "monotonic", lambda: clock[0])
    assert backend.get("k", "fallback") == "fallback"
    assert backend.get("k", "fallback") == "fallback"
    assert calls == ["get"]  # not asked again during the back-off
    clock[0] += fail_open.BACKOFF_SECONDS
    backend.get("k")
    assert calls == ["get", "get"]
