"""Fixtures shared by the whole suite.

Every API endpoint but the health probes needs an authenticated caller (docs/security.md), so the
`client` fixture is pytest-django's test client with a token: the user `api-user`
(tests/operations/factories.py), who also owns the rows `operation_row` stores by default.
`anonymous_client` is a client without credentials.
"""

from __future__ import annotations

import pytest
from django.test import Client

from tests.operations.factories import api_headers


@pytest.fixture
def client(db) -> Client:
    """A test client that calls as `api-user` with `Authorization: Token …`."""
    return Client(headers=api_headers())


@pytest.fixture
def anonymous_client() -> Client:
    """A test client without credentials."""
    return Client()
