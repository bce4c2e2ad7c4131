"""Every content coding, decoded by the clients people use: httpx, urllib3 (requests' transport) and
curl, against the service served by gunicorn as `make run` serves it. The zstd answers of a finished
operation are concatenated frames (the stored ones among them) and its gzip answers one member
streamed: these tests are what says the clients read them whole."""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest
import urllib3

from tests.api.test_http_server import SAMPLE, Server, server  # noqa: F401 - the module's gunicorn service
from tests.factories.bodies import big_batch

CODINGS = ["zstd", "gzip", "zstd, gzip", "identity"]


def _curl(url: str, token: str, accept: str, method: str = "GET", body: bytes | None = None) -> tuple[bytes, str]:
    """curl --compressed with `accept` as the offer; the decoded body and the Content-Encoding it got."""
    command = ["curl", "-sS", "--fail", "--compressed", "-D", "-", "-H", f"Authorization: Token {token}",
               "-H", f"Accept-Encoding: {accept}", "-X", method, url]
    if body is not None:
        command += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    done = subprocess.run(command, input=body, capture_output=True, timeout=120, check=True)
    head, _, content = done.stdout.partition(b"\r\n\r\n")
    encoding = next((line.split(b":", 1)[1].strip().decode() for line in head.split(b"\r\n")
                     if line.lower().startswith(b"content-encoding:")), "identity")
    return content, encoding


@pytest.fixture(scope="module")
def finished(server: Server) -> dict[str, str]:  # noqa: F811 - the imported fixture
    """A finished operation whose result (~1.6 MB) is streamed, and a small one that is not."""
    ids = {}
    for name, body in (("big", json.dumps(big_batch(lines=300, scenarios=3)).encode()), ("small", SAMPLE)):
        status, _, resource = server.call("POST", "/rebalance/analyze/async", "alice", body,
                                          {"X-Correlation-Id": f"codings-{name}"})
        assert status == 202, resource
        status, _, resource = server.call("POST", f"{resource['status_url']}/execute", "alice")
        assert (status, resource["status"]) == (200, "SUCCEEDED"), resource
        ids[name] = resource["operation_id"]
    return ids


def _urls(finished: dict[str, str]) -> list[str]:
    urls = []
    for operation_id in finished.values():
        base = f"/rebalance/operations/{operation_id}"
        urls += [base, f"{base}/summary"]
    urls += [f"/rebalance/operations/{finished['big']}/results/s01",
             f"/rebalance/operations/{finished['small']}/results/tax-aware"]
    return urls


def _identity(server: Server, path: str) -> bytes:  # noqa: F811
    with urllib3.PoolManager() as pool:
        response = pool.request("GET", f"http://127.0.0.1:{server.port}{path}", decode_content=False,
                                headers={"Authorization": f"Token {server.tokens['alice']}"})
    assert response.status == 200 and "Content-Encoding" not in response.headers
    return response.data


@pytest.mark.parametrize("accept", CODINGS)
def test_httpx_reads_every_coding_of_every_answer(server, finished, accept):  # noqa: F811
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120,
                      headers={"Authorization": f"Token {server.tokens['alice']}", "Accept-Encoding": accept}) as client:
        for path in _urls(finished):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["Vary"] == "Accept-Encoding"
            assert response.headers.get("Content-Encoding", "identity") == accept.split(",")[0]
            assert response.content == _identity(server, path), (path, accept)


def test_httpx_under_another_user_agent_still_reads_the_stored_frames(server, finished):  # noqa: F811
    # Each write ends inside a frame, so httpx's reads (a write at a time on loopback) never end
    # on a frame's end, where its decoder fails (it is sent the stored frames: no User-Agent match).
    with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=120, headers={
            "Authorization": f"Token {server.tokens['alice']}", "Accept-Encoding": "zstd", "User-Agent": "orch/1"}) as client:
        for _ in range(5):
            response = client.get(f"/rebalance/operations/{finished['big']}")
            assert response.headers["Content-Encoding"] == "zstd"
            assert "Content-Length" in response.headers  # the stored frames: length known up front
            assert response.content == _identity(server, f"/rebalance/operations/{finished['big']}")


@pytest.mark.parametrize("accept", CODINGS)
def test_urllib3_reads_every_coding_of_every_answer(server, finished, accept):  # noqa: F811
    with urllib3.PoolManager() as pool:
        for path in _urls(finished):
            response = pool.request("GET", f"http://127.0.0.1:{server.port}{path}", headers={
                "Authorization": f"Token {server.tokens['alice']}", "Accept-Encoding": accept})
            assert response.status == 200, path
            assert response.headers.get("Content-Encoding", "identity") == accept.split(",")[0]
            assert response.data == _identity(server, path), (path, accept)


@pytest.mark.parametrize("accept", CODINGS)
def test_curl_reads_every_coding_of_every_answer(server, finished, accept):  # noqa: F811
    for path in _urls(finished):
        content, encoding = _curl(f"http://127.0.0.1:{server.port}{path}", server.tokens["alice"], accept)
        assert encoding == accept.split(",")[0]
        assert content == _identity(server, path), (path, accept)


@pytest.mark.parametrize("accept", CODINGS)
def test_every_client_reads_the_synchronous_answer_in_every_coding(server, accept):  # noqa: F811
    url = f"http://127.0.0.1:{server.port}/rebalance/analyze"
    headers = {"Authorization": f"Token {server.tokens['alice']}", "Content-Type": "application/json",
               "Accept-Encoding": accept, "X-Correlation-Id": "codings-sync"}
    by_httpx = httpx.post(url, content=SAMPLE, headers=headers, timeout=120)
    by_urllib3 = urllib3.request("POST", url, body=SAMPLE, headers=headers)
    by_curl, encoding = _curl(url, server.tokens["alice"], accept, "POST", SAMPLE)
    assert by_httpx.headers.get("Content-Encoding", "identity") == encoding == accept.split(",")[0]
    documents = [json.loads(text) for text in (by_httpx.content, by_urllib3.data, by_curl)]
    for document in documents:  # three runs: the same answer but for the run's ids and time
        assert list(document["results"]) == ["baseline", "tax-aware", "tech-capped"]
        assert document["comparison_metrics"] == documents[0]["comparison_metrics"]
