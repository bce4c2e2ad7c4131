"""GET /rebalance/operations: filters, keyset cursor, strict query parameters (api.md section 2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from django.db import connection
from django.test import override_settings

from operations.models import OperationStatus
from operations.serializers import cursor_encode
from tests.factories.operations import operation_list_item as item
from tests.factories.operations import operation_row, parse

pytestmark = pytest.mark.django_db

URL = "/rebalance/operations"
T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)  # far enough ahead that nothing has expired




def rows(count: int, **fields):
    return [operation_row(created_at=T0 + timedelta(minutes=i), **fields) for i in range(count)]


def bad_request(errors: list[dict], correlation_id: str = "list-1") -> dict:
    return {
        "type": "https://dpm-async.dev/problems/validation-error",
        "title": "Bad Request",
        "status": 400,
        "detail": "The query parameters are invalid.",
        "code": "VALIDATION_ERROR",
        "correlation_id": correlation_id,
        "errors": errors,
    }


def get(client, query: str = ""):
    return client.get(f"{URL}{'?' if query else ''}{query}", headers={"X-Correlation-Id": "list-1"})


def test_list_is_newest_first_without_payloads(client):
    first, second = operation_row(created_at=T0), operation_row(
        status=OperationStatus.SUCCEEDED, created_at=T0 + timedelta(seconds=1)
    )
    response = get(client)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["X-Correlation-Id"] == "list-1"
    assert parse(response) == {"items": [item(second), item(first)], "next_cursor": None}


def test_empty_list(client):
    assert parse(get(client)) == {"items": [], "next_cursor": None}


def test_default_limit_is_50(client):
    rows(51)
    payload = parse(get(client))
    assert len(payload["items"]) == 50 and payload["next_cursor"] is not None


def test_cursor_walks_every_operation_once_even_with_equal_timestamps(client):
    stored = rows(3) + [operation_row(created_at=T0 + timedelta(minutes=1)) for _ in range(4)]
    expected = sorted(stored, key=lambda o: (o.created_at, o.id), reverse=True)
    seen, cursor, pages = [], None, 0
    while True:
        payload = parse(get(client, "limit=2" + (f"&cursor={cursor}" if cursor else "")))
        seen += payload["items"]
        pages += 1
        cursor = payload["next_cursor"]
        if cursor is None:
            break
    assert [i["operation_id"] for i in seen] == [o.id for o in expected]
    assert pages == 4


def test_the_cursor_is_the_last_items_key(client):
    stored = rows(3)
    payload = parse(get(client, "limit=2"))
    assert payload["next_cursor"] == cursor_encode((stored[1].created_at, stored[1].id))


def test_filter_by_status_and_type(client):
    pending = operation_row(created_at=T0)
    done = operation_row(status=OperationStatus.SUCCEEDED, created_at=T0)
    assert parse(get(client, "status=SUCCEEDED"))["items"] == [item(done)]
    assert parse(get(client, "status=PENDING&operation_type=ANALYZE_SCENARIOS"))["items"] == [item(pending)]


def test_filter_by_correlation_id(client):
    operation_row(created_at=T0)
    wanted = operation_row(correlation_id="find-me", created_at=T0)
    assert parse(get(client, "correlation_id=find-me"))["items"] == [item(wanted)]


def test_created_bounds_are_inclusive_instants(client):
    stored = rows(5)  # T0, +1 min, ..., +4 min
    # 13:01+01:00 is 12:01Z, 12:03Z given with an explicit Z; a naive value is taken as UTC.
    query = f"created_from={quote('2030-01-01T13:01:00+01:00')}&created_to=2030-01-01T12:03:00Z"
    assert [i["operation_id"] for i in parse(get(client, query))["items"]] == [stored[3].id, stored[2].id, stored[1].id]
    naive = "created_from=2030-01-01T12:03:00"
    assert [i["operation_id"] for i in parse(get(client, naive))["items"]] == [stored[4].id, stored[3].id]


def test_an_unencoded_plus_in_an_offset_is_understood(client):
    stored = rows(2)
    payload = parse(get(client, "created_from=2030-01-01T14:01:00+02:00"))  # '+' arrives as a space
    assert [i["operation_id"] for i in payload["items"]] == [stored[1].id]


def test_expired_operations_are_not_listed(client):
    operation_row(created_at=datetime(2020, 1, 1, tzinfo=UTC))
    live = operation_row(created_at=T0)
    assert parse(get(client))["items"] == [item(live)]


def test_is_executable_follows_the_manual_execution_flag(client):
    operation_row(created_at=T0)
    with override_settings(DPM_ASYNC_MANUAL_EXECUTION_ENABLED=False):
        assert parse(get(client))["items"][0]["is_executable"] is False


def test_unknown_query_parameter_is_400(client):
    response = get(client, "state=PENDING")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert parse(response) == bad_request([{"field": "state", "message": "unknown query parameter"}])


def test_repeated_query_parameter_is_400(client):
    assert parse(get(client, "status=PENDING&status=RUNNING")) == bad_request(
        [{"field": "status", "message": "give this parameter once"}]
    )


@pytest.mark.parametrize("query, field, message", [
    ("limit=0", "limit", "Ensure this value is greater than or equal to 1."),
    ("limit=201", "limit", "Ensure this value is less than or equal to 200."),
    ("limit=ten", "limit", "A valid integer is required."),
    ("status=DONE", "status", '"DONE" is not a valid choice.'),
    ("operation_type=SIMULATE", "operation_type", '"SIMULATE" is not a valid choice.'),
    ("created_from=yesterday", "created_from",
     "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."),
    ("cursor=abc", "cursor", "not a cursor returned by this endpoint"),
    ("correlation_id=has%20space", "correlation_id", "This value does not match the required pattern."),
    ("created_from=2030-01-02T00:00:00Z&created_to=2030-01-01T00:00:00Z", "created_to",
     "must not be before created_from"),
])
def test_invalid_filter_values_are_400(client, query, field, message):
    response = get(client, query)
    assert response.status_code == 400
    assert parse(response) == bad_request([{"field": field, "message": message}])


def test_all_errors_are_reported_together(client):
    payload = parse(get(client, "foo=1&limit=0&status=X"))
    assert [e["field"] for e in payload["errors"]] == ["foo", "status", "limit"]


def test_limit_200_is_accepted(client):
    rows(3)
    assert len(parse(get(client, "limit=200"))["items"]) == 3


def test_a_page_is_one_query(client, django_assert_num_queries):
    rows(5)
    cursor = parse(get(client, "limit=2"))["next_cursor"]
    # The caller's token (with its user), then the page; on PostgreSQL the page runs in its own
    # (here: nested) transaction that turns bitmap scans off for it (services._keyset_page_rows).
    expected = 5 if connection.vendor == "postgresql" else 2
    with django_assert_num_queries(expected):
        assert get(client, "limit=2").status_code == 200
    with django_assert_num_queries(expected) as captured:
        assert get(client, f"limit=2&cursor={cursor}").status_code == 200
    pages = [q["sql"] for q in captured.captured_queries if '"operations_operation"' in q["sql"]]
    assert len(pages) == 1
    assert '"result"' not in pages[0] and '"request"' not in pages[0]
