"""Fixtures shared by the whole suite.

The suite runs on the database DATABASE_URL names: SQLite by default, PostgreSQL in `make test`'s
second pass. Tests marked `postgres` (real worker processes, PostgreSQL's own behaviour) are
skipped on any other database; every other test runs on both.

Every API endpoint but the health probes needs an authenticated caller (docs/security.md), so the
`client` fixture is pytest-django's test client with a token: the user `api-user`
(tests/operations/factories.py), who also owns the rows `operation_row` stores by default.
`anonymous_client` is a client without credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from tests.contract import contract, decoded
from tests.factories.operations import api_headers


@pytest.fixture(autouse=True, scope="session")
def _answers_match_the_document() -> Iterator[None]:
    """Every answer a test client receives from a documented operation is checked against the
    OpenAPI document (tests/contract.py): a test that gets an undocumented answer fails."""
    original = Client.request

    def request(self: Client, **environ: Any) -> Any:
        response = original(self, **environ)
        # A streamed answer is checked by its test, which reads the stream (reading it here would
        # leave the test nothing to read).
        if _CHECKED_ANSWERS[0] and not getattr(response, "streaming", False):
            contract().check(environ["REQUEST_METHOD"], environ["PATH_INFO"], response.status_code,
                             response.get("Content-Type", ""), decoded(response.get("Content-Encoding"), response.content))
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Client, "request", request)
        yield


# Off for a test marked `breaks_the_contract` (it makes the service fail in ways no client can cause).
_CHECKED_ANSWERS = [True]


@pytest.fixture(autouse=True)
def _contract_marker(request: pytest.FixtureRequest) -> Iterator[None]:
    _CHECKED_ANSWERS[0] = request.node.get_closest_marker("breaks_the_contract") is None
    yield
    _CHECKED_ANSWERS[0] = True


@pytest.fixture
def client(db) -> Client:
    """A test client that calls as `api-user` with `Authorization: Token …`."""
    return Client(headers=api_headers())


@pytest.fixture
def readiness_on_the_test_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL the probe runs on a thread and connection of its own (readiness_within), which
    would not see a test's uncommitted rows; tests about what the checks say run them on the test's
    connection. The time bound is tested against a database that does not answer
    (tests/operations/test_outages.py)."""
    from dpm_async import health

    monkeypatch.setattr(health, "readiness_within", lambda seconds: health.readiness())


@pytest.fixture
def anonymous_client() -> Client:
    """A test client without credentials."""
    return Client()


@pytest.fixture(autouse=True)
def _postgres_only(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("postgres") is not None and connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL: `make test` runs the suite there in its second pass")
