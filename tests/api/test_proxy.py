"""The buffering proxy the service is deployed behind (deploy/nginx/dpm_async.conf), with Debian's
nginx in front of gunicorn as `make run` starts it: slow clients hold nginx connections, never
gunicorn's threads (docs/deployment.md, "Slow clients and the proxy")."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.contract import contract
from tests.proxied import needs_nginx, proxied
from tests.served import REPO, Server, served

pytestmark = needs_nginx

SLOW_CLIENTS = 8  # as many as gunicorn has threads (2 workers x 4)


@dataclass
class Proxy:
    port: int
    upstream: Server


@pytest.fixture(scope="module")
def proxy() -> Iterator[Proxy]:
    with served(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY") as upstream, proxied(upstream) as port:
        yield Proxy(port, upstream)


def slow_client(port: int, stop: threading.Event) -> None:
    """A request whose header arrives one byte per second, until told to stop (or dropped)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            while not stop.wait(1.0):
                sock.sendall(b"a")
    except OSError:
        pass  # dropped by the server


def ordinary_request_seconds(port: int) -> float:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=5) as answer:
            answer.read()
    except OSError:
        return float("inf")
    return time.monotonic() - started


def under_slow_clients(port: int) -> list[float]:
    """Seven ordinary requests while eight slow clients are connected to `port`."""
    stop = threading.Event()
    clients = [threading.Thread(target=slow_client, args=(port, stop), daemon=True) for _ in range(SLOW_CLIENTS)]
    for client in clients:
        client.start()
    time.sleep(1.5)  # let every slow client connect and start dribbling
    try:
        return [ordinary_request_seconds(port) for _ in range(7)]
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=10)


def test_slow_clients_do_not_hold_up_ordinary_requests_behind_the_proxy(proxy):
    timings = under_slow_clients(proxy.port)
    assert max(timings) < 1.0, timings


def test_without_the_proxy_the_same_slow_clients_starve_gunicorn(proxy):
    # The control: the reason the proxy is required (docs/deployment.md).
    timings = under_slow_clients(proxy.upstream.port)
    assert max(timings) > 1.0, timings


def test_the_proxy_passes_problems_headers_and_chunked_bodies_through(proxy):
    request = urllib.request.Request(
        f"http://127.0.0.1:{proxy.port}/rebalance/analyze", data=b" " * (16 * 1024 * 1024 + 1), method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {proxy.upstream.tokens['alice']}",
                 "X-Correlation-Id": "proxy-1"},
    )
    try:
        urllib.request.urlopen(request, timeout=30)
        raise AssertionError("a body over the limit was accepted")
    except urllib.error.HTTPError as error:
        assert (error.code, error.headers["X-Correlation-Id"]) == (413, "proxy-1")
        body = error.read()
        # nginx answers this one itself, in the service's own words.
        contract().check("POST", "/rebalance/analyze", 413, error.headers["Content-Type"], body)
        assert json.loads(body)["correlation_id"] == "proxy-1"
    sample = (REPO / "docs" / "examples" / "analyze-request.json").read_bytes()
    pieces = iter([sample[i:i + 1000] for i in range(0, len(sample), 1000)])
    chunked = urllib.request.Request(
        f"http://127.0.0.1:{proxy.port}/rebalance/analyze", data=pieces, method="POST",
        headers={"Content-Type": "application/json", "Authorization": f"Token {proxy.upstream.tokens['alice']}",
                 "Transfer-Encoding": "chunked"},
    )
    with urllib.request.urlopen(chunked, timeout=60) as answer:
        assert answer.status == 200 and set(json.loads(answer.read())["results"]) == set(json.loads(sample)["scenarios"])
