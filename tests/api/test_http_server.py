"""The service as `make run` starts it (gunicorn, 2 workers x 4 threads, the Makefile's access log
format) on a scratch database: tokens, owners, and the bodies that only a real server carries -
200 MiB, chunked - and the service still healthy afterwards."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest

from tests.served import REPO, Server, served

SAMPLE = (REPO / "docs" / "examples" / "analyze-request.json").read_bytes()
MIB = 1024 * 1024


def healthy(server: Server) -> bool:
    return (server.call("GET", "/health/ready")[0] == 200
            and server.call("POST", "/rebalance/analyze", "alice", SAMPLE)[0] == 200)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    users = {"alice": [], "bob": [], "support": ["--staff"]}
    with served(users=users, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY") as running:
        yield running
    for log in (running.error_log, running.output):
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def _raw_request(port: int, head: bytes, body_chunks: Iterator[bytes]) -> tuple[int, bytes, int]:
    """Sends `head` and as much of the body as the server takes; returns status, body, bytes sent."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=20)
    sent = 0
    try:
        sock.sendall(head)
        for chunk in body_chunks:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # the server answered and closed: what it said is in our receive buffer
    received = b""
    try:
        while piece := sock.recv(65536):
            received += piece
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    head_text, _, response_body = received.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1]) if head_text else 0
    return status, response_body, sent


def _chunks(total: int, size: int = 64 * 1024, chunked: bool = False) -> Iterator[bytes]:
    piece = b" " * size
    for _ in range(total // size):
        yield b"%x\r\n%s\r\n" % (size, piece) if chunked else piece
    if chunked:
        yield b"0\r\n\r\n"


# --- who may call ------------------------------------------------------------------------------

def test_no_token_is_a_401_and_a_token_is_served(server):
    status, headers, body = server.call("GET", "/rebalance/operations")
    assert (status, headers["WWW-Authenticate"], body["code"]) == (401, "Token", "NOT_AUTHENTICATED")
    assert server.call("GET", "/rebalance/operations", "alice")[0] == 200
    assert server.call("GET", "/health/live")[0] == 200
    assert server.call("GET", "/schema/")[0] == 200


def test_owners_staff_and_correlation_ids_over_http(server):
    status, _, mine = server.call("POST", "/rebalance/analyze/async", "alice", SAMPLE, {"X-Correlation-Id": "http-1"})
    assert status == 202
    url = mine["status_url"]
    for method, path in (("GET", url), ("GET", "/rebalance/operations/by-correlation/http-1"),
                         ("POST", f"{url}/execute"), ("POST", f"{url}/cancel")):
        status, _, body = server.call(method, path, "bob")
        assert (status, body["code"]) == (404, "DPM_ASYNC_OPERATION_NOT_FOUND"), (method, path)
    assert server.call("GET", "/rebalance/operations", "bob")[2]["items"] == []
    # Bob's own operation under the same correlation id, with another body.
    other = json.loads(SAMPLE)
    other["scenarios"] = {"only": {}}
    status, _, theirs = server.call("POST", "/rebalance/analyze/async", "bob", json.dumps(other).encode(),
                                    {"X-Correlation-Id": "http-1"})
    assert status == 202 and theirs["operation_id"] != mine["operation_id"]
    # Staff read both, and act on neither.
    assert server.call("GET", url, "support")[0] == 200
    assert server.call("POST", f"{url}/cancel", "support")[0] == 403
    assert server.call("POST", f"{url}/execute", "alice")[2]["status"] == "SUCCEEDED"


# --- bodies only a real server carries ------------------------------------------------------------

def test_a_200_mib_body_is_refused_at_once_without_being_read(server):
    head = (f"POST /rebalance/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {server.tokens['alice']}"
            f"\r\nContent-Type: application/json\r\nContent-Length: {200 * MIB}\r\n\r\n").encode()
    started = time.monotonic()
    status, body, sent = _raw_request(server.port, head, _chunks(200 * MIB))
    assert status == 413 and json.loads(body)["code"] == "REQUEST_TOO_LARGE"
    assert time.monotonic() - started < 10
    # The server closed the connection instead of reading (or draining) the rest.
    assert sent < 100 * MIB
    assert healthy(server)


def test_a_200_mib_body_from_an_ordinary_client_gets_the_413(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Authorization": f"Token {server.tokens['alice']}", "Content-Type": "application/json"}
    try:
        connection.request("POST", "/rebalance/analyze/async", body=b" " * (200 * MIB), headers=headers)
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused mid-send: the answer is still there to read
    response = connection.getresponse()
    assert response.status == 413 and json.loads(response.read())["code"] == "REQUEST_TOO_LARGE"
    assert healthy(server)


def test_a_chunked_body_within_the_limit_is_read(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    headers = {"Authorization": f"Token {server.tokens['alice']}", "Content-Type": "application/json"}
    pieces = [SAMPLE[i:i + 100] for i in range(0, len(SAMPLE), 100)]
    connection.request("POST", "/rebalance/analyze", body=iter(pieces), headers=headers, encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 200
    assert set(json.loads(response.read())["results"]) == set(json.loads(SAMPLE)["scenarios"])


def test_a_chunked_200_mib_body_is_refused_after_the_limit(server):
    head = (f"POST /rebalance/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {server.tokens['alice']}"
            "\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    started = time.monotonic()
    status, body, sent = _raw_request(server.port, head, _chunks(200 * MIB, chunked=True))
    assert status == 413 and json.loads(body)["code"] == "REQUEST_TOO_LARGE"
    assert time.monotonic() - started < 20
    assert sent < 100 * MIB  # read up to the 16 MiB limit, then refused and closed
    assert healthy(server)


@pytest.mark.parametrize(
    "body",
    [b"[" * 5_000_000, b'{"a":' * 200_000, b'{"x": NaN}', b'{"x": 1e999999999}', b"\xff\xfe", b"9" * 10_000],
)
def test_hostile_bodies_over_http_are_400s(server, body):
    for path in ("/rebalance/analyze", "/rebalance/analyze/async"):
        status, _, problem = server.call("POST", path, "alice", body)
        assert status == 400 and problem["code"] in ("MALFORMED_JSON", "VALIDATION_ERROR"), problem
    assert healthy(server)


# --- what is logged -------------------------------------------------------------------------------

def test_the_access_log_holds_no_token_and_no_body(server):
    marker = "secret-portfolio-marker"
    body = json.loads(SAMPLE)
    body["portfolio_snapshot"]["portfolio_id"] = marker
    server.call("POST", "/rebalance/analyze", "alice", json.dumps(body).encode(), {"X-Correlation-Id": "log-1"})
    server.call("GET", "/rebalance/operations", "bob")
    time.sleep(0.5)
    log = server.access_log.read_text() + server.error_log.read_text()
    assert '"POST /rebalance/analyze HTTP/1.1" 200' in log and "corr=log-1" in log
    for secret in (*server.tokens.values(), marker):
        assert secret not in log


def test_refused_requests_are_one_warning_line_each_in_the_service_log(server):
    before = server.output.read_text()
    status, _, problem = server.call("GET", "/health/live?" + "&".join(["a"] * 1001))
    assert (status, problem["code"]) == (400, "TOO_MANY_FIELDS")
    status, _, problem = server.call("GET", "/health/live", headers={"Host": "evil.example"})
    assert (status, problem["code"]) == (400, "DISALLOWED_HOST")
    time.sleep(0.5)  # the service's stderr is a file written by another process
    logged = server.output.read_text()[len(before):].splitlines()
    refused = [line for line in logged if "WARNING" in line]
    assert len(refused) == 2 and not [line for line in logged if "ERROR" in line], logged
    assert "Traceback" not in "\n".join(logged)
