"""The feature flags and settings of api.md section 5, read at call time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import override_settings

from operations.models import Operation
from tests.factories.bodies import batch_body
from tests.factories.operations import operation_row, parse, submit

pytestmark = pytest.mark.django_db

DISABLED_BODY = {
    "type": "https://dpm-async.dev/problems/dpm-async-operations-disabled",
    "title": "Not Found",
    "status": 404,
    "detail": "Async operations are disabled on this service (DPM_ASYNC_OPERATIONS_ENABLED=false).",
    "code": "DPM_ASYNC_OPERATIONS_DISABLED",
    "correlation_id": "flag-1",
}


def endpoints(operation_id: str) -> list[tuple[str, str]]:
    return [
        ("post", "/rebalance/analyze/async"),
        ("get", "/rebalance/operations"),
        ("get", f"/rebalance/operations/{operation_id}"),
        ("get", "/rebalance/operations/by-correlation/corr-x"),
        ("post", f"/rebalance/operations/{operation_id}/execute"),
        ("post", f"/rebalance/operations/{operation_id}/cancel"),
    ]


@override_settings(DPM_ASYNC_OPERATIONS_ENABLED=False)
def test_every_operations_endpoint_is_404_when_disabled(client):
    operation = operation_row(correlation_id="corr-x")
    for method, url in endpoints(operation.id):
        kwargs = {"data": json.dumps(batch_body()), "content_type": "application/json"} if method == "post" else {}
        response = getattr(client, method)(url, headers={"X-Correlation-Id": "flag-1"}, **kwargs)
        assert response.status_code == 404, url
        assert response["Content-Type"] == "application/problem+json"
        assert parse(response) == DISABLED_BODY, url
    assert Operation.objects.get(pk=operation.id).status == "PENDING"
    assert Operation.objects.count() == 1


@override_settings(DPM_ASYNC_OPERATIONS_ENABLED=False)
def test_disabled_wins_over_a_bad_body(client):
    response = client.post("/rebalance/analyze/async", data=b"{", content_type="application/json",
                           headers={"X-Correlation-Id": "flag-1"})
    assert parse(response) == DISABLED_BODY


@override_settings(DPM_ASYNC_OPERATIONS_ENABLED=False)
def test_the_synchronous_endpoint_still_works_when_disabled(client):
    response = client.post("/rebalance/analyze", data=json.dumps(batch_body()), content_type="application/json")
    assert response.status_code == 200


def test_flags_are_read_at_call_time(client):
    operation = operation_row()
    url = f"/rebalance/operations/{operation.id}"
    assert client.get(url).status_code == 200
    with override_settings(DPM_ASYNC_OPERATIONS_ENABLED=False):
        assert client.get(url).status_code == 404
    assert client.get(url).status_code == 200


@override_settings(DPM_ASYNC_MANUAL_EXECUTION_ENABLED=False, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_manual_execution_off_keeps_everything_else(client):
    accepted = submit(client)
    assert accepted.status_code == 202
    payload = parse(accepted)
    assert payload["is_executable"] is False
    assert client.get(payload["status_url"]).status_code == 200
    assert client.post(payload["execute_url"]).status_code == 404


@override_settings(DPM_ASYNC_OPERATIONS_TTL_SECONDS=30, DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_ttl_setting_sets_expiry(client):
    payload = parse(submit(client))
    operation = Operation.objects.get(pk=payload["operation_id"])
    assert operation.expires_at - operation.created_at == timedelta(seconds=30)


def _settings_in_a_fresh_process(**env: str) -> dict:
    script = (
        "import django, json; from django.conf import settings; django.setup(); "
        "print(json.dumps({'mode': settings.DPM_ASYNC_EXECUTION_MODE, "
        "'ttl': settings.DPM_ASYNC_OPERATIONS_TTL_SECONDS, 'warnings': list(settings.DPM_SETTINGS_WARNINGS)}))"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **env}
    completed = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True,
                               cwd=Path(__file__).resolve().parents[2], timeout=120, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.django_db(False)
def test_an_invalid_mode_falls_back_to_inline_with_a_warning():
    loaded = _settings_in_a_fresh_process(DPM_ASYNC_EXECUTION_MODE="QUEUE")
    assert loaded["mode"] == "INLINE"
    assert loaded["warnings"] == [
        "DPM_ASYNC_EXECUTION_MODE='QUEUE' is not allowed: use one of INLINE, ACCEPT_ONLY, WORKER (any case); "
        "falling back to INLINE"
    ]


@pytest.mark.django_db(False)
def test_the_mode_is_trimmed_and_case_insensitive_in_the_environment():
    assert _settings_in_a_fresh_process(DPM_ASYNC_EXECUTION_MODE="  accept_only ")["mode"] == "ACCEPT_ONLY"


@pytest.mark.django_db(False)
def test_an_invalid_ttl_falls_back_with_a_warning():
    loaded = _settings_in_a_fresh_process(DPM_ASYNC_OPERATIONS_TTL_SECONDS="0")
    assert loaded["ttl"] == 86400
    assert loaded["warnings"] == [
        "DPM_ASYNC_OPERATIONS_TTL_SECONDS='0' is not allowed: use a whole number of at least 1; "
        "falling back to the default 86400"
    ]
