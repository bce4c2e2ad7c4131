"""What PostgreSQL itself logs while the service works (docs/security.md, "What the database logs").

A private server (tests/pgserver.py) with PostgreSQL's default logging - a failing statement is
logged as ERROR with its text - serves the service as `make run` starts it; the test reads the
server's own log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.pgserver import PrivatePostgres, postgres_bindir
from tests.served import REPO, served

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(postgres_bindir() is None, reason="the PostgreSQL server binaries are not installed"),
]

SAMPLE = json.loads((REPO / "docs" / "examples" / "analyze-request.json").read_text())
MARKER = "pf-secret-portfolio-4711"


@pytest.fixture(scope="module")
def database() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres("log_min_error_statement=error", "log_min_messages=warning")
    server.start()
    try:
        yield server
    finally:
        server.close()


def reordered(value: object) -> object:
    """The same JSON with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def test_replays_conflicts_and_races_leave_no_error_in_the_database_log(database):
    url = database.create_database("service")
    body = dict(SAMPLE)
    body["portfolio_snapshot"] = {**SAMPLE["portfolio_snapshot"], "portfolio_id": MARKER}
    with served(database_url=url, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY") as server:
        before = database.log_text()
        first = server.call("POST", "/rebalance/analyze/async", "alice", json.dumps(body).encode(),
                            {"X-Correlation-Id": "replay-1"})
        assert first[0] == 202
        for variant in (body, reordered(body), reordered(body), body):  # replays, keys in any order
            status, headers, replay = server.call("POST", "/rebalance/analyze/async", "alice",
                                                  json.dumps(variant).encode(), {"X-Correlation-Id": "replay-1"})
            assert (status, headers.get("Idempotent-Replayed"), replay["operation_id"]) == (
                200, "true", first[2]["operation_id"]
            )
        other = {**body, "scenarios": {"only": {}}}
        conflict = server.call("POST", "/rebalance/analyze/async", "alice", json.dumps(other).encode(),
                               {"X-Correlation-Id": "replay-1"})
        assert conflict[0] == 409
        executed = server.call("POST", f"{first[2]['status_url']}/execute", "alice")
        assert executed[2]["status"] == "SUCCEEDED"
        assert server.call("POST", f"{first[2]['status_url']}/execute", "alice")[0] == 409
    logged = database.log_text()[len(before):]
    assert "ERROR" not in logged, logged[-3000:]
    assert MARKER not in database.log_text()
