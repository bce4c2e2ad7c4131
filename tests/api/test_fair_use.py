"""Fair use (docs/deployment.md, "Fair use" and "Request cost"): request rates per caller and scope,
the cap on unfinished operations per owner, the limit on failed credentials per address, and the
cost limit of one batch. Each refusal is a problem with a stable code (and `Retry-After` for 429).

The suite runs with the limits off (tests/settings.py); each test here turns on the one it tests.
The counters live in the local-memory cache here; tests/api/test_fair_use_redis.py runs them on
Redis.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connections
from django.test import Client, override_settings

from operations.models import Operation, OperationStatus
from tests.factories.bodies import batch_body
from tests.factories.operations import ASYNC_URL, api_headers, api_user, operation_row, submit

pytestmark = pytest.mark.django_db

ANALYZE_URL = "/rebalance/analyze"


@pytest.fixture(autouse=True)
def _fresh_counters() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


def analyze(client: Client, body: Any = None, **headers: str) -> Any:
    return client.post(ANALYZE_URL, data=json.dumps(body or batch_body()), content_type="application/json",
                       headers=headers)


def problem(response: Any) -> dict[str, Any]:
    assert response["Content-Type"] == "application/problem+json"
    return json.loads(response.content)


def assert_throttled(response: Any, code: str = "THROTTLED") -> dict[str, Any]:
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    body = problem(response)
    assert body["code"] == code and body["status"] == 429
    return body


# --- request rates ----------------------------------------------------------------------------

@override_settings(DPM_THROTTLE_ANALYZE_RATE="3/min")
def test_analyze_is_throttled_per_caller_with_retry_after(client):
    assert [analyze(client).status_code for _ in range(3)] == [200, 200, 200]
    body = assert_throttled(analyze(client))
    assert 1 <= int(analyze(client)["Retry-After"]) <= 60
    assert body["type"] == "https://dpm-async.dev/problems/throttled"
    # Another caller has a budget of its own.
    other = Client(headers=api_headers(api_user("other-caller")))
    assert analyze(other).status_code == 200


@override_settings(DPM_THROTTLE_ANALYZE_RATE="2/min", DPM_THROTTLE_SUBMIT_RATE="3/min",
                   DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_analyze_and_submit_have_separate_rates(client):
    assert [analyze(client).status_code for _ in range(2)] == [200, 200]
    assert_throttled(analyze(client))
    statuses = [submit(client, **{"X-Correlation-Id": f"rate-{n}"}).status_code for n in range(3)]
    assert statuses == [202, 202, 202]
    assert_throttled(submit(client, **{"X-Correlation-Id": "rate-3"}))
    # Reading is not throttled.
    assert client.get("/rebalance/operations").status_code == 200


@override_settings(DPM_THROTTLE_ANALYZE_RATE="off", DPM_THROTTLE_SUBMIT_RATE="off")
def test_off_switches_the_rates_off(client):
    assert {analyze(client).status_code for _ in range(30)} == {200}


@override_settings(DPM_API_AUTH_REQUIRED=False, DPM_THROTTLE_ANALYZE_RATE="2/min")
def test_anonymous_callers_are_counted_by_address():
    first, second = Client(REMOTE_ADDR="192.0.2.1"), Client(REMOTE_ADDR="192.0.2.2")
    assert [analyze(first).status_code for _ in range(2)] == [200, 200]
    assert_throttled(analyze(first))
    assert analyze(second).status_code == 200
    # One IPv6 /64 is one caller; the next /64 another.
    v6 = [Client(REMOTE_ADDR=f"2001:db8:0:1::{n}") for n in (1, 2, 3)]
    assert [analyze(c).status_code for c in v6] == [200, 200, 429]
    assert analyze(Client(REMOTE_ADDR="2001:db8:0:2::1")).status_code == 200


# --- unfinished operations per owner ----------------------------------------------------------

@override_settings(DPM_ASYNC_MAX_UNFINISHED_PER_OWNER=3, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_the_cap_refuses_a_new_operation_but_never_a_replay(client):
    for n in range(3):
        assert submit(client, **{"X-Correlation-Id": f"cap-{n}"}).status_code == 202
    refused = submit(client, **{"X-Correlation-Id": "cap-3"})
    body = assert_throttled(refused, "DPM_ASYNC_TOO_MANY_UNFINISHED_OPERATIONS")
    assert refused["Retry-After"] == "5"
    assert set(body) == {"type", "title", "status", "detail", "code", "correlation_id"}
    assert not Operation.objects.filter(correlation_id="cap-3").exists()
    # A replay returns the existing operation.
    replay = submit(client, **{"X-Correlation-Id": "cap-1"})
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    # Another owner is not held up, and a finished operation frees a slot.
    other = Client(headers=api_headers(api_user("other-owner")))
    assert submit(other, **{"X-Correlation-Id": "cap-3"}).status_code == 202
    Operation.objects.filter(correlation_id="cap-0").update(status=OperationStatus.FAILED, error={
        "code": "OPERATION_CANCELLED", "message": "x", "details": {}}, finished_at=Operation.objects.get(
        correlation_id="cap-0").created_at)
    assert submit(client, **{"X-Correlation-Id": "cap-3"}).status_code == 202


@override_settings(DPM_ASYNC_MAX_UNFINISHED_PER_OWNER=3, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_running_operations_count_and_finished_ones_do_not():
    client = Client(headers=api_headers(api_user()))
    operation_row(status=OperationStatus.RUNNING)
    operation_row(status=OperationStatus.PENDING)
    for status in (OperationStatus.SUCCEEDED, OperationStatus.FAILED):
        operation_row(status=status)
    # Two unfinished, two finished: the third unfinished one still fits under a cap of 3...
    assert submit(client, **{"X-Correlation-Id": "third"}).status_code == 202
    # ...and the fourth does not.
    assert_throttled(submit(client, **{"X-Correlation-Id": "fourth"}), "DPM_ASYNC_TOO_MANY_UNFINISHED_OPERATIONS")


@pytest.mark.django_db(transaction=True)
@override_settings(DPM_ASYNC_MAX_UNFINISHED_PER_OWNER=3, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_racing_submissions_never_exceed_the_cap():
    """Twelve submissions released at once, each on its own connection: exactly three get in.

    On PostgreSQL (the suite's second pass) the owner's advisory lock serialises them; on SQLite
    its write lock does."""
    headers = api_headers()
    barrier = threading.Barrier(12)
    statuses: list[int] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            status = submit(Client(headers=headers), **{"X-Correlation-Id": f"race-{n}"}).status_code
            with lock:
                statuses.append(status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [202] * 3 + [429] * 9
    assert Operation.objects.filter(owner=api_user()).count() == 3


@pytest.mark.django_db(transaction=True)
@override_settings(DPM_ASYNC_MAX_UNFINISHED_PER_OWNER=1, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_racing_replays_of_the_last_slot_are_all_answered_with_the_operation():
    headers = api_headers()
    barrier = threading.Barrier(8)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            barrier.wait(timeout=30)
            status = submit(Client(headers=headers), **{"X-Correlation-Id": "same"}).status_code
            with lock:
                statuses.append(status)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(statuses) == [200] * 7 + [202]


# --- failed credentials per address -----------------------------------------------------------

@override_settings(DPM_AUTH_FAILURE_RATE="3/min")
def test_wrong_tokens_are_limited_per_address_before_the_token_is_looked_up(django_assert_num_queries):
    guesser = Client(REMOTE_ADDR="198.51.100.7", headers={"Authorization": "Token dpm_guess"})
    assert [guesser.get("/rebalance/operations").status_code for _ in range(3)] == [401, 401, 401]
    with django_assert_num_queries(0):
        refused = guesser.get("/rebalance/operations")
    body = assert_throttled(refused, "TOO_MANY_AUTH_FAILURES")
    assert body["detail"] == "Too many failed authentication attempts from this address; try again later."
    # Even the right token is not looked at from that address for now...
    assert Client(REMOTE_ADDR="198.51.100.7", headers=api_headers()).get("/rebalance/operations").status_code == 429
    # ...while another address is served.
    assert Client(REMOTE_ADDR="198.51.100.8", headers=api_headers()).get("/rebalance/operations").status_code == 200


@override_settings(DPM_AUTH_FAILURE_RATE="3/min")
def test_successful_requests_do_not_use_the_failure_budget():
    good = Client(REMOTE_ADDR="198.51.100.9", headers=api_headers())
    assert {good.get("/rebalance/operations").status_code for _ in range(10)} == {200}
    bad = Client(REMOTE_ADDR="198.51.100.9", headers={"Authorization": "Token dpm_wrong"})
    assert [bad.get("/rebalance/operations").status_code for _ in range(4)] == [401, 401, 401, 429]
    # Without credentials at all nothing is guessed, so nothing is counted either.
    assert Client(REMOTE_ADDR="198.51.100.10").get("/rebalance/operations").status_code == 401


@override_settings(DPM_AUTH_FAILURE_RATE="2/min")
def test_the_metrics_token_is_limited_too():
    guesser = Client(REMOTE_ADDR="198.51.100.11", headers={"Authorization": "Token dpm_guess"})
    assert [guesser.get("/metrics").status_code for _ in range(3)] == [401, 401, 429]


@pytest.fixture
def staff_member() -> Any:
    user = get_user_model().objects.create_user("staff-member", password="the-right-password-42", is_staff=True)
    return user


def admin_login(address: str, password: str) -> Any:
    return Client(REMOTE_ADDR=address).post("/admin/login/", {
        "username": "staff-member", "password": password, "next": "/admin/"})


@override_settings(DPM_AUTH_FAILURE_RATE="3/min")
def test_admin_login_is_refused_after_failures_before_the_password_is_hashed(staff_member, monkeypatch):
    assert [admin_login("203.0.113.5", "wrong").status_code for _ in range(3)] == [200, 200, 200]
    hashed: list[str] = []
    real_check = type(staff_member).check_password
    monkeypatch.setattr(type(staff_member), "check_password",
                        lambda self, raw: hashed.append(raw) or real_check(self, raw))
    refused = admin_login("203.0.113.5", "the-right-password-42")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) >= 1
    assert refused["Content-Type"] == "text/html; charset=utf-8"
    assert b"Too many failed logins" in refused.content
    assert hashed == []
    # Another address logs in.
    assert admin_login("203.0.113.6", "the-right-password-42").status_code == 302


@override_settings(DPM_AUTH_FAILURE_RATE="2/min")
def test_admin_logins_that_succeed_do_not_count(staff_member):
    assert {admin_login("203.0.113.7", "the-right-password-42").status_code for _ in range(5)} == {302}
    assert Client(REMOTE_ADDR="203.0.113.7").get("/admin/login/").status_code == 200


@override_settings(DPM_AUTH_FAILURE_RATE="2/min")
def test_wrong_tokens_and_wrong_passwords_share_the_address_budget(staff_member):
    guesser = Client(REMOTE_ADDR="203.0.113.8", headers={"Authorization": "Token dpm_guess"})
    assert guesser.get("/rebalance/operations").status_code == 401
    assert admin_login("203.0.113.8", "wrong").status_code == 200
    assert admin_login("203.0.113.8", "wrong").status_code == 429
    assert guesser.get("/rebalance/operations").status_code == 429


# --- request cost -----------------------------------------------------------------------------

def _wide_body(instruments: int, scenarios: int) -> dict[str, Any]:
    body = batch_body(**{f"s{n}": {"options": {}} for n in range(scenarios)})
    body["shelf_entries"] = [{"instrument_id": f"I{n}", "status": "APPROVED"} for n in range(instruments)]
    return body


@override_settings(DPM_MAX_BATCH_CELLS=20)
@pytest.mark.parametrize("url", [ANALYZE_URL, ASYNC_URL])
def test_a_batch_over_the_cell_limit_is_413_before_the_engine_runs(client, url, monkeypatch):
    from rebalance import services

    monkeypatch.setattr(services, "rebalance_analyze_batch", lambda *a, **k: pytest.fail("the engine ran"))
    # 7 shelf instruments (AAA and BBB among the positions and targets: 9 distinct) x 3 scenarios.
    response = client.post(url, data=json.dumps(_wide_body(7, 3)), content_type="application/json")
    assert response.status_code == 413
    body = problem(response)
    assert body["code"] == "BATCH_TOO_LARGE"
    assert (body["batch_cells"], body["max_batch_cells"]) == (27, 20)
    assert not Operation.objects.exists()


@override_settings(DPM_MAX_BATCH_CELLS=27, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_a_batch_at_the_cell_limit_is_accepted(client):
    assert submit(client, _wide_body(7, 3)).status_code == 202


# --- the client's address ---------------------------------------------------------------------

@pytest.mark.parametrize(("proxies", "remote", "forwarded", "expected"), [
    ((), "192.0.2.1", "", "192.0.2.1"),
    # No trusted proxy: X-Forwarded-For is the client's own word, ignored.
    ((), "192.0.2.1", "198.51.100.1", "192.0.2.1"),
    # A trusted proxy: the rightmost address that is not one of ours.
    (("10.0.0.0/8",), "10.0.0.5", "198.51.100.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
    # A request that did not come through the proxy: its own address, whatever it claims.
    (("10.0.0.0/8",), "192.0.2.1", "198.51.100.1", "192.0.2.1"),
    # Only proxies in the chain: the leftmost.
    (("10.0.0.0/8",), "10.0.0.5", "10.0.0.6", "10.0.0.6"),
    # A malformed entry stops the walk at the last address vouched for.
    (("10.0.0.0/8",), "10.0.0.5", "198.51.100.1, junk", "10.0.0.5"),
    # IPv6 by /64, IPv4-mapped IPv6 as IPv4.
    ((), "2001:db8:1:2:3:4:5:6", "", "2001:db8:1:2::/64"),
    ((), "::ffff:192.0.2.4", "", "192.0.2.4"),
    (("::1/128",), "::1", "2001:db8::1", "2001:db8::/64"),
])
def test_client_address(proxies, remote, forwarded, expected, rf):
    from dpm_async.addresses import client_address

    request = rf.get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    with override_settings(DPM_TRUSTED_PROXIES=proxies):
        assert client_address(request) == expected
