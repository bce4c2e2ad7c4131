"""Hostile input is a 4xx problem, never a 5xx, a hang or a crash, and the service stays healthy.

Every body goes through the whole stack (middleware, parser, validation, view) of both endpoints
that take one. tests/api/test_http_server.py sends the bodies that only a real server can carry
(200 MiB, chunked) to gunicorn itself.
"""

from __future__ import annotations

import base64
import copy
import json
import time
from typing import Any

import pytest
from django.test import override_settings

from operations.models import Operation
from tests.factories.bodies import batch_body
from tests.factories.operations import LIST_URL, operation_row, parse

pytestmark = pytest.mark.django_db

BODY_ENDPOINTS = ["/rebalance/analyze", "/rebalance/analyze/async"]
TEXT = json.dumps(batch_body())


def raw_replace(old: str, new: str) -> bytes:
    """The valid body's text with one piece replaced (for bodies json.dumps cannot write)."""
    assert old in TEXT
    return TEXT.replace(old, new, 1).encode()


def changed(mutate: Any) -> bytes:
    body = copy.deepcopy(batch_body())
    mutate(body)
    return json.dumps(body).encode()


def price(value: Any) -> bytes:
    return changed(lambda b: b["market_data_snapshot"]["prices"][0].update(price=value))


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


# name -> (raw body, the code of the 400)
HOSTILE_BODIES: dict[str, tuple[bytes, str]] = {
    "NaN literal": (raw_replace('"50.00"', "NaN"), "MALFORMED_JSON"),
    "Infinity literal": (raw_replace('"50.00"', "Infinity"), "MALFORMED_JSON"),
    "-Infinity literal": (raw_replace('"50.00"', "-Infinity"), "MALFORMED_JSON"),
    "1e999999999 number": (raw_replace('"50.00"', "1e999999999"), "VALIDATION_ERROR"),
    "-1e999999999 number": (raw_replace('"50.00"', "-1e999999999"), "VALIDATION_ERROR"),
    "1e-999999999 number": (raw_replace('"50.00"', "1e-999999999"), "VALIDATION_ERROR"),
    "1e999999999 string": (price("1e999999999"), "VALIDATION_ERROR"),
    "NaN string": (price("NaN"), "VALIDATION_ERROR"),
    "Infinity string": (price("Infinity"), "VALIDATION_ERROR"),
    "sNaN string": (price("sNaN"), "VALIDATION_ERROR"),
    "10,000-digit number": (raw_replace('"50.00"', "9" * 10_000), "MALFORMED_JSON"),
    "10,000-digit fraction": (raw_replace('"50.00"', "0." + "1" * 10_000), "MALFORMED_JSON"),
    "10,000-digit string": (price("9" * 10_000), "VALIDATION_ERROR"),
    "41 significant digits": (price("1." + "1" * 40), "VALIDATION_ERROR"),
    "zero price": (price("0"), "VALIDATION_ERROR"),
    "negative price": (price("-50"), "VALIDATION_ERROR"),
    "zero FX rate": (
        changed(lambda b: b["market_data_snapshot"].update(fx_rates=[{"pair": "EUR/USD", "rate": "0"}])),
        "VALIDATION_ERROR",
    ),
    "negative FX rate": (
        changed(lambda b: b["market_data_snapshot"].update(fx_rates=[{"pair": "EUR/USD", "rate": "-1.1"}])),
        "VALIDATION_ERROR",
    ),
    "boolean price": (price(True), "VALIDATION_ERROR"),
    "duplicate positions": (
        changed(lambda b: b["portfolio_snapshot"]["positions"].append({"instrument_id": "AAA", "quantity": "1"})),
        "VALIDATION_ERROR",
    ),
    "duplicate prices": (
        changed(lambda b: b["market_data_snapshot"]["prices"].append(
            {"instrument_id": "AAA", "price": "1", "currency": "USD"})),
        "VALIDATION_ERROR",
    ),
    "duplicate targets": (
        changed(lambda b: b["model_portfolio"]["targets"].append({"instrument_id": "AAA", "weight": "0.1"})),
        "VALIDATION_ERROR",
    ),
    "duplicate shelf entries": (
        changed(lambda b: b["shelf_entries"].append({"instrument_id": "AAA", "status": "APPROVED"})),
        "VALIDATION_ERROR",
    ),
    "duplicate cash currencies": (
        changed(lambda b: b["portfolio_snapshot"]["cash_balances"].append({"currency": "USD", "amount": "1"})),
        "VALIDATION_ERROR",
    ),
    "nesting 100,000 deep": (nested(100_000), "MALFORMED_JSON"),
    "array nesting 1,000,000 deep": (b"[" * 1_000_000 + b"]" * 1_000_000, "MALFORMED_JSON"),
    "unclosed nesting 5,000,000 deep": (b"[" * 5_000_000, "MALFORMED_JSON"),
    "options nested 500 deep": (
        changed(lambda b: b["scenarios"].update(baseline={"options": json.loads(nested(500))})),
        "VALIDATION_ERROR",
    ),
    "invalid UTF-8": (b'{"portfolio_snapshot": "\xff\xfe\xfd"}', "MALFORMED_JSON"),
    "truncated UTF-8": (TEXT.encode()[:-3] + b'"\xe2\x82', "MALFORMED_JSON"),
    "UTF-16": (TEXT.encode("utf-16"), "MALFORMED_JSON"),
    "byte order mark": (b"\xef\xbb\xbf" + TEXT.encode(), "MALFORMED_JSON"),
    "lone surrogate": (
        changed(lambda b: b["scenarios"].update(baseline={"description": "\ud800"})), "VALIDATION_ERROR"
    ),
    "NUL in an id": (
        changed(lambda b: b["portfolio_snapshot"].update(portfolio_id="pf\x00x")), "VALIDATION_ERROR"
    ),
    "not JSON": (b"portfolio=1", "MALFORMED_JSON"),
    "trailing garbage": (TEXT.encode() + b"}", "MALFORMED_JSON"),
    "JSON null": (b"null", "VALIDATION_ERROR"),
    "JSON array": (b"[" + TEXT.encode() + b"]", "VALIDATION_ERROR"),
    "21 scenarios": (
        changed(lambda b: b.update(scenarios={f"s{i}": {} for i in range(21)})), "VALIDATION_ERROR"
    ),
    "100,000 scenarios": (
        changed(lambda b: b.update(scenarios={f"s{i}": {} for i in range(100_000)})), "VALIDATION_ERROR"
    ),
    "bad scenario name": (changed(lambda b: b.update(scenarios={"Bad Name!": {}})), "VALIDATION_ERROR"),
    "10,001 positions": (
        changed(lambda b: b["portfolio_snapshot"].update(
            positions=[{"instrument_id": f"I{i}", "quantity": "1"} for i in range(10_001)])),
        "VALIDATION_ERROR",
    ),
    "1,001 lots": (
        changed(lambda b: b["portfolio_snapshot"]["positions"][0].update(lots=[
            {"lot_id": f"l{i}", "quantity": "0", "unit_cost": {"amount": "1", "currency": "USD"},
             "purchase_date": "2020-01-01"} for i in range(1_001)])),
        "VALIDATION_ERROR",
    ),
    "1,000,000 empty positions": (
        changed(lambda b: b["portfolio_snapshot"].update(positions=[{}] * 1_000_000)), "VALIDATION_ERROR"
    ),
    "10 MB string": (
        changed(lambda b: b["portfolio_snapshot"].update(portfolio_id="p" * 10_000_000)), "VALIDATION_ERROR"
    ),
}


def post(client: Any, path: str, raw: bytes, content_type: str = "application/json", **extra: Any) -> Any:
    return client.generic("POST", path, raw, content_type=content_type, **extra)


def assert_problem(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    body = parse(response)
    assert body["status"] == status and body["code"] == code, body
    assert body["correlation_id"] == response["X-Correlation-Id"]
    return body


def assert_healthy(client: Any) -> None:
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    assert post(client, "/rebalance/analyze", TEXT.encode()).status_code == 200


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("name", list(HOSTILE_BODIES))
def test_a_hostile_body_is_a_400_problem_and_nothing_is_stored(client, path, name):
    raw, code = HOSTILE_BODIES[name]
    started = time.monotonic()
    body = assert_problem(post(client, path, raw), 400, code)
    assert time.monotonic() - started < 10, "refused, but slowly"
    assert body["errors"], body
    assert len(json.dumps(body)) < 64 * 1024, "the problem must not echo the hostile input"
    assert not Operation.objects.exists()


def test_the_service_is_healthy_after_every_hostile_body(client):
    for raw, _ in HOSTILE_BODIES.values():
        for path in BODY_ENDPOINTS:
            assert post(client, path, raw).status_code == 400
    assert_healthy(client)


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/xml",
     "application/json-patch+json", ""],
)
def test_a_body_that_is_not_json_is_a_415(client, path, content_type):
    assert_problem(post(client, path, TEXT.encode(), content_type=content_type), 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
def test_a_200_mib_declared_body_is_a_413_before_it_is_read(client, path):
    # The test client hands over a tiny body under a 200 MiB Content-Length: had anything tried to
    # read the declared length, the request would fail differently.
    response = post(client, path, b"{}", CONTENT_LENGTH=str(200 * 1024 * 1024))
    body = assert_problem(response, 413, "REQUEST_TOO_LARGE")
    assert body["detail"] == "The request body is 209715200 bytes; the limit is 16777216 bytes."
    assert_healthy(client)


@override_settings(DPM_MAX_REQUEST_BYTES=100)
def test_the_limit_is_read_at_call_time(client):
    assert_problem(post(client, "/rebalance/analyze", TEXT.encode()), 413, "REQUEST_TOO_LARGE")


@pytest.mark.parametrize("length", ["abc", "-1", "1" * 5000, "1e3"])
def test_a_content_length_that_is_not_a_number_is_a_400(client, length):
    assert_problem(post(client, "/rebalance/analyze", b"{}", CONTENT_LENGTH=length), 400, "INVALID_CONTENT_LENGTH")


def test_an_empty_body_is_a_400(client):
    assert_problem(post(client, "/rebalance/analyze", b""), 400, "VALIDATION_ERROR")


# --- hostile path and query parameters of the operations endpoints ------------------------------

HOSTILE_IDS = [
    "dop_" + "0" * 32, "DOP_" + "0" * 32, "dop_" + "g" * 32, "dop_" + "0" * 33, "%00", "dop_%00", "a" * 2000,
    "%FF%FE", "%E2%80%AE", "%F0%9F%92%A9", "..", "%2e%2e", "1%20OR%201=1", "'%3B--",
]


@pytest.mark.parametrize("operation_id", HOSTILE_IDS)
def test_a_hostile_operation_id_is_a_404_on_every_endpoint(client, operation_id):
    operation_row()
    path = f"/rebalance/operations/{operation_id}"
    for response in (client.get(path), client.post(f"{path}/execute"), client.post(f"{path}/cancel")):
        if response.status_code == 404 and parse(response)["code"] == "NOT_FOUND":
            continue  # the path itself matches no route (e.g. `..`)
        assert_problem(response, 404, "DPM_ASYNC_OPERATION_NOT_FOUND")


@pytest.mark.parametrize(
    "correlation_id", ["%00", "a%00b", "x" * 129, "%FF", "%E2%80%AE", "a%20b", "a%0Ab", "*", "%25", "%5C"]
)
def test_a_hostile_correlation_id_in_the_path_is_a_404(client, correlation_id):
    operation_row(correlation_id="real-1")
    response = client.get(f"/rebalance/operations/by-correlation/{correlation_id}")
    assert_problem(response, 404, "DPM_ASYNC_OPERATION_NOT_FOUND")


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "query",
    [
        "limit=0", "limit=-1", "limit=201", "limit=1e3", "limit=1.5", "limit=" + "9" * 1000, "limit=%00", "limit=",
        "cursor=%00", "cursor=" + "A" * 600, "cursor=====", "cursor=%FF", "cursor=" + _cursor([1, 2]),
        "cursor=" + _cursor({"a": 1}), "cursor=" + _cursor(["x", "dop_" + "0" * 32]),
        "cursor=" + _cursor(["2026-01-01T00:00:00.000000Z", "dop_%00"]),
        "cursor=" + _cursor(["2026-01-01T00:00:00.000000Z", "' OR 1=1 --"]),
        "cursor=" + _cursor(["2026-01-01T00:00:00.000000Z", "dop_" + "0" * 32] * 1000)[:500],
        "created_from=0001-01-01T00:00:00%2B14:00", "created_to=9999-12-31T23:59:59-14:00",
        "created_from=2026-13-45", "created_from=2026-01-01T24:00:00Z", "created_from=2026-01-01T00:00:00%2B99:99",
        "created_from=%00", "created_from=" + "1" * 1000, "created_from=10000-01-01T00:00:00Z",
        "created_from=2027-01-01&created_to=2026-01-01", "status=%00", "status=pending", "status=PENDING%00",
        "operation_type=X", "correlation_id=%00", "correlation_id=" + "x" * 129, "correlation_id=a%0Ab",
        "unknown=1", "%00=1", "limit=1&limit=2", "status=PENDING&status=FAILED",
    ],
)
def test_a_hostile_list_query_is_a_400(client, query):
    operation_row()
    body = assert_problem(client.get(f"{LIST_URL}?{query}"), 400, "VALIDATION_ERROR")
    assert body["errors"]


@pytest.mark.parametrize(
    "query",
    [
        "cursor=" + _cursor(["9999-12-31T23:59:59.999999Z", "dop_" + "f" * 32]),
        "cursor=" + _cursor(["0001-01-01T00:00:00.000000Z", "dop_" + "0" * 32]),
        "created_from=0001-01-01T00:00:00Z", "created_to=9999-12-31T23:59:59Z",
        "created_from=2026-01-01T00:00:00.9999999999Z",
    ],
)
def test_extreme_but_valid_list_queries_answer_200(client, query):
    operation_row()
    assert client.get(f"{LIST_URL}?{query}").status_code == 200


# --- chunked bodies at the WSGI edge (dpm_async/limits.py; over a real gunicorn: test_http_server) --

def _through_chunked_limit(body: bytes, *, terminated: bool) -> dict:
    """The environ ChunkedBodyLimit hands to the application, for a chunked `body`."""
    import io

    from dpm_async.limits import ChunkedBodyLimit

    seen: dict = {}

    def application(environ, start_response):
        seen.update(environ, read=environ["wsgi.input"].read())
        return [b""]

    environ = {"REQUEST_METHOD": "POST", "HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": io.BytesIO(body)}
    if terminated:
        environ["wsgi.input_terminated"] = True
    ChunkedBodyLimit(application)(environ, lambda *args: None)
    return seen


def test_a_chunked_body_is_read_and_handed_on_with_its_length():
    seen = _through_chunked_limit(TEXT.encode(), terminated=True)
    assert (seen["CONTENT_LENGTH"], seen["read"]) == (str(len(TEXT.encode())), TEXT.encode())
    assert "dpm_async.chunked_body_too_large" not in seen


@override_settings(DPM_MAX_REQUEST_BYTES=100)
def test_a_chunked_body_over_the_limit_is_read_no_further_and_flagged():
    class Endless:
        read_bytes = 0

        def read(self, size: int) -> bytes:
            self.read_bytes += size
            return b" " * size

    from dpm_async.limits import ChunkedBodyLimit

    stream, seen = Endless(), {}
    ChunkedBodyLimit(lambda environ, start: seen.update(environ) or [b""])(
        {"HTTP_TRANSFER_ENCODING": "chunked", "wsgi.input": stream, "wsgi.input_terminated": True}, None
    )
    assert stream.read_bytes == 101  # the limit + 1, never more
    assert seen["dpm_async.chunked_body_too_large"] is True and seen["CONTENT_LENGTH"] == "0"


def test_a_chunked_body_the_server_cannot_end_is_not_read():
    seen = _through_chunked_limit(TEXT.encode(), terminated=False)
    assert seen["read"] == TEXT.encode() and "CONTENT_LENGTH" not in seen  # untouched: nothing read
    assert seen["dpm_async.chunked_body_unreadable"] is True


@pytest.mark.parametrize(
    ("flag", "status", "code"),
    [("dpm_async.chunked_body_too_large", 413, "REQUEST_TOO_LARGE"),
     ("dpm_async.chunked_body_unreadable", 411, "LENGTH_REQUIRED")],
)
def test_the_chunked_verdicts_are_problems(client, flag, status, code):
    assert_problem(post(client, "/rebalance/analyze", b"", **{flag: True}), status, code)


# --- requests Django's own settings refuse ------------------------------------------------------

TOO_MANY_FIELDS = "&".join(["a"] * 1001)  # DATA_UPLOAD_MAX_NUMBER_FIELDS is 1,000


def refused_lines(caplog: Any) -> list[Any]:
    return [record for record in caplog.records if record.levelno >= 30]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/health/live"), ("GET", "/health/ready"), ("GET", LIST_URL), ("POST", "/rebalance/analyze"),
     ("POST", "/rebalance/analyze/async"), ("GET", "/rebalance/operations/dop_" + "0" * 32),
     ("GET", "/schema/"), ("GET", "/docs/"), ("GET", "/admin/login/")],
)
def test_a_query_string_of_1001_fields_is_a_400_problem_and_one_warning_line(client, caplog, method, path):
    response = client.generic(method, f"{path}?{TOO_MANY_FIELDS}", TEXT, content_type="application/json")
    assert (response.status_code, response["Content-Type"]) == (400, "application/problem+json")
    assert parse(response)["code"] == "TOO_MANY_FIELDS"
    [line] = refused_lines(caplog)
    assert (line.levelname, line.exc_info, line.exc_text) == ("WARNING", None, None)
    assert Operation.objects.count() == 0


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:8000.evil", "[::1"])
def test_a_host_this_service_does_not_answer_for_is_a_400_problem_and_one_warning_line(client, caplog, host):
    response = client.get("/health/live", headers={"Host": host})
    assert (response.status_code, parse(response)["code"]) == (400, "DISALLOWED_HOST")
    assert response["X-Correlation-Id"]
    [line] = refused_lines(caplog)
    assert (line.levelname, line.exc_info, line.exc_text) == ("WARNING", None, None)


def test_a_refused_request_does_not_harm_the_next_one(client):
    assert client.get(f"/health/live?{TOO_MANY_FIELDS}").status_code == 400
    assert client.get("/health/live").status_code == 200
