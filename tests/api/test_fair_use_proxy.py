"""Behind the shipped nginx (tests/proxied.py) with DPM_TRUSTED_PROXIES naming it: two clients are
counted apart by the address nginx saw, and a client cannot pick its own address by sending
X-Forwarded-For. The clients connect from 127.0.0.2 and 127.0.0.3 (all of 127/8 is loopback)."""

from __future__ import annotations

import http.client
import os
from collections.abc import Iterator

import pytest
import redis

from tests.proxied import needs_nginx, proxied
from tests.served import served

REDIS_URL = "redis://127.0.0.1:6379/13"
PREFIX = f"dpm_async_proxy_tests_{os.getpid()}"

pytestmark = needs_nginx


@pytest.fixture(scope="module")
def proxy_port() -> Iterator[int]:
    # Redis, so that both gunicorn workers count together.
    with served(REDIS_URL=REDIS_URL, DPM_CACHE_KEY_PREFIX=PREFIX, DPM_TRUSTED_PROXIES="127.0.0.1",
                DPM_AUTH_FAILURE_RATE="3/min") as upstream, proxied(upstream) as port:
        yield port
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{PREFIX}*"):
        client.delete(key)


def guess(port: int, source: str, **headers: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        connection.request("GET", "/rebalance/operations", headers={"Authorization": "Token dpm_guess", **headers})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_two_clients_behind_the_proxy_are_limited_separately(proxy_port):
    assert [guess(proxy_port, "127.0.0.2") for _ in range(4)] == [401, 401, 401, 429]
    assert guess(proxy_port, "127.0.0.3") == 401
    # A forged X-Forwarded-For does not make 127.0.0.2 someone else: nginx appends the address it
    # saw, and that rightmost untrusted address is the one counted.
    assert guess(proxy_port, "127.0.0.2", **{"X-Forwarded-For": "192.0.2.99"}) == 429
