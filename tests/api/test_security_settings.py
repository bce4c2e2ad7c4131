"""Production settings, security headers and what reaches the log (docs/security.md)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import RequestFactory, override_settings

from dpm_async.correlation import CorrelationIdLogFilter
from dpm_async.middleware import CorrelationIdMiddleware
from rebalance import services as rebalance_services
from tests.factories.bodies import batch_body
from tests.factories.operations import api_token, parse

REPO = Path(__file__).resolve().parents[2]

# What a production deployment sets (docs/security.md); nothing read from a .env file.
PRODUCTION = {
    "DJANGO_ENV_FILE": "",
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
    "DJANGO_ALLOWED_HOSTS": "dpm.example.com",
}


def run_manage(*args: str, **variables: str) -> subprocess.CompletedProcess:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith(("DJANGO_", "DPM_", "DATABASE_URL"))}
    environment.update(variables)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=environment,
                          capture_output=True, text=True, timeout=120)


def settings_values(*names: str, **variables: str) -> dict:
    code = "from django.conf import settings; import json; print(json.dumps({n: getattr(settings, n) for n in %r}))"
    completed = run_manage("shell", "-c", code % (names,), **variables)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_check_deploy_is_clean_with_the_production_variables():
    completed = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "System check identified no issues (0 silenced)." in completed.stdout


def test_https_is_enforced_by_default_when_debug_is_off():
    values = settings_values(
        "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS", "SECURE_PROXY_SSL_HEADER", "ALLOWED_HOSTS", "DEBUG",
        **PRODUCTION,
    )
    assert values == {
        "SECURE_SSL_REDIRECT": True, "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True, "SECURE_PROXY_SSL_HEADER": None,
        "ALLOWED_HOSTS": ["dpm.example.com"], "DEBUG": False,
    }


def test_plain_http_for_make_run_and_a_proxy_header_behind_tls():
    local = settings_values("SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "SECURE_HSTS_SECONDS",
                            **PRODUCTION, DJANGO_SECURE_HTTPS="false")
    assert local == {"SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False, "SECURE_HSTS_SECONDS": 0}
    proxied = settings_values("SECURE_PROXY_SSL_HEADER", **PRODUCTION,
                              DJANGO_SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https")
    assert proxied == {"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}


def test_the_example_environment_serves_plain_http():
    assert "DJANGO_SECURE_HTTPS=false" in (REPO / ".env.example").read_text().splitlines()


def test_no_secret_key_and_debug_off_refuses_to_start():
    variables = {**PRODUCTION, "DJANGO_SECRET_KEY": ""}
    completed = run_manage("check", **variables)
    assert completed.returncode != 0 and "DJANGO_SECRET_KEY is not set" in completed.stderr


# --- headers -------------------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/rebalance/operations", "/health/live"])
def test_security_headers_on_every_answer(client, anonymous_client, path):
    for response in (client.get(path), anonymous_client.get(path)):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_errors_are_not_cached_either(client):
    too_large = client.generic("POST", "/rebalance/analyze", b"{}", content_type="application/json",
                               CONTENT_LENGTH=str(10**9))
    bad_id = client.get("/health/live", headers={"X-Correlation-Id": "not valid"})
    assert too_large.status_code == 413 and bad_id.status_code == 400
    assert too_large["Cache-Control"] == bad_id["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_static_files_keep_their_own_caching(anonymous_client):
    response = anonymous_client.get("/static/admin/css/base.css")
    assert response.status_code == 200 and "no-store" not in response["Cache-Control"]


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=31536000)
def test_with_https_enforced_http_is_redirected_but_probes_are_not(client):
    response = client.get("/rebalance/operations")
    assert response.status_code == 301 and response["Location"] == "https://testserver/rebalance/operations"
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").status_code == 200
    secure = client.get("/rebalance/operations", secure=True)
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")


# --- logs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value",
    ["abc\nINJECTED 0000 ERROR fake line", "abc\r\nINJECTED", "abc\x1b[2JINJECTED", "abc INJECTED", "\u2028INJECTED"],
)
def test_a_correlation_id_cannot_inject_log_lines(value, caplog):
    logger = logging.getLogger("dpm_async.test")

    def view(request):
        logger.warning("handled")
        from django.http import HttpResponse
        return HttpResponse("ok")

    handler = logging.StreamHandler()
    handler.addFilter(CorrelationIdLogFilter())
    request = RequestFactory().get("/health/live", HTTP_X_CORRELATION_ID=value)
    with caplog.at_level(logging.INFO):
        response = CorrelationIdMiddleware(view)(request)
    assert response.status_code == 400
    assert json.loads(response.content)["code"] == "INVALID_CORRELATION_ID"
    # The invalid value is neither echoed nor used: the answer carries a generated id.
    assert response["X-Correlation-Id"].startswith("corr_") and "INJECTED" not in response["X-Correlation-Id"]
    assert "INJECTED" not in caplog.text and "handled" not in caplog.text


def test_log_lines_carry_only_validated_correlation_ids(caplog):
    records: list[logging.LogRecord] = []

    def view(request):
        record = logging.LogRecord("dpm_async.test", logging.WARNING, __file__, 1, "inside", None, None)
        CorrelationIdLogFilter().filter(record)
        records.append(record)
        from django.http import HttpResponse
        return HttpResponse("ok")

    request = RequestFactory().get("/health/live", HTTP_X_CORRELATION_ID="orch-42.a_b-c")
    assert CorrelationIdMiddleware(view)(request).status_code == 200
    assert records[0].correlation_id == "orch-42.a_b-c"


@pytest.mark.django_db
def test_an_internal_error_logs_neither_the_body_nor_the_token(client, caplog, monkeypatch):
    marker = "confidential-portfolio-marker"
    body = batch_body()
    body["portfolio_snapshot"]["portfolio_id"] = marker

    def fail(*args, **kwargs):
        raise RuntimeError("engine fault")

    monkeypatch.setattr("rebalance.views.rebalance_analyze_batch", fail)
    assert rebalance_services.rebalance_analyze_batch is not fail
    with caplog.at_level(logging.DEBUG):
        response = client.post("/rebalance/analyze", data=json.dumps(body), content_type="application/json",
                               headers={"X-Correlation-Id": "fault-1"})
    assert response.status_code == 500
    assert parse(response) == {
        "type": "https://dpm-async.dev/problems/internal-error",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "An internal error occurred.",
        "code": "INTERNAL_ERROR",
        "correlation_id": "fault-1",
    }
    assert "engine fault" in caplog.text  # the traceback is logged, for the operator
    assert marker not in caplog.text
    assert api_token() not in caplog.text


@pytest.mark.django_db
@pytest.mark.breaks_the_contract
@pytest.mark.parametrize(
    ("exception", "status", "code"),
    [("django.http.Http404", 404, "NOT_FOUND"), ("django.core.exceptions.PermissionDenied", 403, "PERMISSION_DENIED")],
)
def test_djangos_own_exceptions_in_a_view_become_their_problems(client, monkeypatch, exception, status, code):
    from django.utils.module_loading import import_string

    def fail(*args, **kwargs):
        raise import_string(exception)()

    monkeypatch.setattr("rebalance.views.rebalance_analyze_batch", fail)
    response = client.post("/rebalance/analyze", data=json.dumps(batch_body()), content_type="application/json")
    assert response.status_code == status and parse(response)["code"] == code
