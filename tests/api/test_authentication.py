"""Who may call (spec/api.md section 9): tokens for programs, sessions for people, 401 otherwise."""

from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dpm_async.models import ApiToken
from operations.links import operation_status_url
from operations.models import Operation
from tests.factories.bodies import batch_body
from tests.factories.operations import api_headers, api_user, operation_row, parse, submit

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]
OPERATION_ID = "dop_" + "0" * 32

# Every endpoint that needs a caller, with a request that would otherwise be valid.
AUTHENTICATED_ENDPOINTS = [
    ("post", "/rebalance/analyze"),
    ("post", "/rebalance/analyze/async"),
    ("get", "/rebalance/operations"),
    ("get", f"/rebalance/operations/{OPERATION_ID}"),
    ("get", "/rebalance/operations/by-correlation/corr-1"),
    ("post", f"/rebalance/operations/{OPERATION_ID}/execute"),
    ("post", f"/rebalance/operations/{OPERATION_ID}/cancel"),
]


def call(client: Client, method: str, path: str, **headers: str):
    if method == "post":
        return client.post(path, data=json.dumps(batch_body()), content_type="application/json", headers=headers)
    return client.get(path, headers=headers)


def not_authenticated(detail: str, correlation_id: str) -> dict:
    return {
        "type": "https://dpm-async.dev/problems/not-authenticated",
        "title": "Unauthorized",
        "status": 401,
        "detail": detail,
        "code": "NOT_AUTHENTICATED",
        "correlation_id": correlation_id,
    }


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED_ENDPOINTS)
def test_no_credentials_is_a_401_problem_with_a_token_challenge(anonymous_client, method, path):
    response = call(anonymous_client, method, path, **{"X-Correlation-Id": "who-1"})
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == "Token"
    assert response["X-Correlation-Id"] == "who-1"
    assert parse(response) == not_authenticated("Authentication credentials were not provided.", "who-1")


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED_ENDPOINTS)
@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("Token 0123456789abcdef0123456789abcdef01234567", "Invalid token."),
        ("Token", "Invalid token header. No credentials provided."),
        ("Token a b", "Invalid token header. Token string should not contain spaces."),
    ],
)
def test_a_bad_token_is_a_401(anonymous_client, method, path, authorization, detail):
    response = call(anonymous_client, method, path, Authorization=authorization, **{"X-Correlation-Id": "bad-1"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert parse(response) == not_authenticated(detail, "bad-1")


def test_a_token_authenticates_and_a_revoked_one_no_longer_does(anonymous_client):
    headers = api_headers()
    assert anonymous_client.get("/rebalance/operations", headers=headers).status_code == 200
    ApiToken.objects.filter(user=api_user()).delete()
    assert anonymous_client.get("/rebalance/operations", headers=headers).status_code == 401


def test_an_inactive_users_token_is_refused(anonymous_client):
    headers = api_headers()
    User.objects.filter(pk=api_user().pk).update(is_active=False)
    response = anonymous_client.get("/rebalance/operations", headers=headers)
    assert response.status_code == 401
    assert parse(response)["detail"] == "User inactive or deleted."


def test_credentials_are_checked_before_the_operations_switch(anonymous_client):
    with override_settings(DPM_ASYNC_OPERATIONS_ENABLED=False):
        assert anonymous_client.get("/rebalance/operations").status_code == 401


@pytest.mark.parametrize("path", ["/health/live", "/health/ready", "/schema/", "/docs/"])
def test_probes_schema_and_docs_need_no_credentials_and_ignore_bad_ones(anonymous_client, path):
    assert anonymous_client.get(path).status_code == 200
    assert anonymous_client.get(path, headers={"Authorization": "Token not-a-token"}).status_code == 200


def test_an_admin_session_authenticates_reads():
    client = Client()
    client.force_login(api_user())
    operation = operation_row()
    assert client.get(f"/rebalance/operations/{operation.id}").status_code == 200


def test_a_session_caller_must_send_the_csrf_token_on_posts():
    client = Client(enforce_csrf_checks=True)
    client.force_login(api_user())
    response = submit(client)
    assert response.status_code == 403
    assert parse(response)["code"] == "PERMISSION_DENIED"
    assert "CSRF" in parse(response)["detail"]
    assert not Operation.objects.exists()


def test_a_token_caller_needs_no_csrf_token():
    client = Client(enforce_csrf_checks=True, headers=api_headers())
    assert submit(client).status_code == 202


# --- DPM_API_AUTH_REQUIRED=false ---------------------------------------------------------------

@override_settings(DPM_API_AUTH_REQUIRED=False)
def test_without_required_auth_anonymous_callers_are_served_as_nobody(anonymous_client, client):
    response = submit(anonymous_client, **{"X-Correlation-Id": "local-1"})
    assert response.status_code == 202
    operation = Operation.objects.get(pk=parse(response)["operation_id"])
    assert operation.owner is None
    assert anonymous_client.get(operation_status_url(operation.id)).status_code == 200
    # An authenticated caller is still itself: the anonymous operations are not its own.
    assert client.get(operation_status_url(operation.id)).status_code == 404
    # And a bad token is still refused rather than taken for anonymous.
    assert anonymous_client.get("/rebalance/operations", headers={"Authorization": "Token nope"}).status_code == 401


def test_turning_auth_off_logs_a_warning_at_start():
    environment = {**os.environ, "DPM_API_AUTH_REQUIRED": "false", "DJANGO_SETTINGS_MODULE": "tests.settings"}
    completed = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=environment,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert "WARNING dpm_async.settings" in completed.stderr
    assert "DPM_API_AUTH_REQUIRED=false: the API answers anonymous callers" in completed.stderr


def test_the_example_environment_requires_auth():
    lines = (REPO / ".env.example").read_text().splitlines()
    assert "DPM_API_AUTH_REQUIRED=true" in lines


# --- tokens: hashed, several per user, named, expiring, revoked one by one -----------------------

def issue_token(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("issue_token", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1], err.getvalue().strip()


def command(name: str, *args: str) -> str:
    out = io.StringIO()
    call_command(name, *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def calls_with(client: Client, key: str) -> int:
    return client.get("/rebalance/operations", headers={"Authorization": f"Token {key}"}).status_code


def test_issue_token_creates_a_user_and_prints_the_key_last(anonymous_client):
    key, summary = issue_token("orchestrator", "--create-user")
    user = User.objects.get(username="orchestrator")
    token = ApiToken.objects.get(user=user)
    assert re.fullmatch(r"dpm_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", key)
    assert summary == f"new token {token.prefix} 'default' for orchestrator (no expiry) (user created)"
    assert key.startswith(token.prefix + "_")
    assert not user.has_usable_password() and not user.is_staff
    assert calls_with(anonymous_client, key) == 200


def test_the_key_is_stored_only_as_its_digest():
    key, _ = issue_token("orchestrator", "--create-user")
    token = ApiToken.objects.get()
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    secret = key.split("_", 2)[2]
    stored = json.dumps(list(ApiToken.objects.values()), default=str)
    assert secret not in stored and key not in stored


def test_a_user_holds_several_named_tokens_and_each_is_revoked_on_its_own(anonymous_client):
    old, _ = issue_token("orchestrator", "--create-user", "--name", "orchestrator")
    new, _ = issue_token("orchestrator", "--name", "orchestrator")
    batch, _ = issue_token("orchestrator", "--name", "nightly-batch")
    assert len({old, new, batch}) == 3
    assert [calls_with(anonymous_client, key) for key in (old, new, batch)] == [200, 200, 200]
    # Rotation: the new key works alongside the old one until the old one is revoked.
    old_id = ApiToken.objects.order_by("created_at", "id").first().pk
    assert command("revoke_token", str(old_id)).strip() == "revoked 1 token(s)"
    assert [calls_with(anonymous_client, key) for key in (old, new, batch)] == [401, 200, 200]
    assert command("revoke_token", "--user", "orchestrator", "--name", "nightly-batch").strip() == "revoked 1 token(s)"
    assert [calls_with(anonymous_client, key) for key in (new, batch)] == [200, 401]


def test_list_tokens_shows_names_prefixes_and_expiry_but_never_a_key():
    key, _ = issue_token("orchestrator", "--create-user", "--name", "orchestrator", "--expires-in-days", "30")
    issue_token("support", "--create-user", "--staff", "--name", "dashboards")
    listing = command("list_tokens")
    token = ApiToken.objects.get(name="orchestrator")
    lines = listing.splitlines()
    assert lines[0].split() == ["id", "user", "name", "prefix", "created", "expires", "last", "used"]
    assert len(lines) == 3
    assert f"{token.pk}" in lines[1] and "orchestrator" in lines[1] and token.prefix in lines[1]
    assert f"{token.expires_at:%Y-%m-%dT%H:%MZ}" in lines[1]
    assert key not in listing and key.split("_", 2)[2] not in listing
    assert "dashboards" not in command("list_tokens", "orchestrator")


def test_an_expired_token_is_refused(anonymous_client):
    key, _ = issue_token("orchestrator", "--create-user", "--expires-in-days", "1")
    assert calls_with(anonymous_client, key) == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1), created_at=timezone.now() - timedelta(days=2))
    response = anonymous_client.get("/rebalance/operations", headers={"Authorization": f"Token {key}"})
    assert response.status_code == 401 and parse(response)["detail"] == "Token expired."
    assert "(expired)" in command("list_tokens")


def test_authentication_is_one_query_and_notes_use_at_most_every_five_minutes(anonymous_client):
    key, _ = issue_token("orchestrator", "--create-user")
    headers = {"Authorization": f"Token {key}"}

    def token_queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            assert anonymous_client.get("/rebalance/operations", headers=headers).status_code == 200
        return [query["sql"].split()[0] for query in captured.captured_queries if "dpm_async_apitoken" in query["sql"]]

    assert token_queries() == ["SELECT", "UPDATE"]  # the token with its user (one join); first use noted
    first_use = ApiToken.objects.get().last_used_at
    assert first_use is not None
    assert token_queries() == ["SELECT"]
    ApiToken.objects.update(last_used_at=first_use - timedelta(minutes=6))
    assert token_queries() == ["SELECT", "UPDATE"]
    assert ApiToken.objects.get().last_used_at > first_use - timedelta(minutes=1)


def test_issue_token_refuses_an_unknown_user_without_create_user():
    with pytest.raises(CommandError, match="no user 'ghost'; pass --create-user"):
        issue_token("ghost")
    assert not User.objects.filter(username="ghost").exists()


def test_issue_token_staff_grants_the_view_permission():
    issue_token("support", "--create-user", "--staff")
    user = User.objects.get(username="support")
    assert user.is_staff and user.has_perm("operations.view_operation")
    assert not user.has_perm("operations.change_operation")


def test_revoke_token_refuses_unknown_ids_and_revokes_nothing():
    issue_token("orchestrator", "--create-user")
    with pytest.raises(CommandError, match="no token with id 999999"):
        command("revoke_token", "999999", str(ApiToken.objects.get().pk))
    assert ApiToken.objects.count() == 1
    assert command("revoke_token", "--user", "orchestrator", "--dry-run").strip() == "dry run: would revoke 1 token(s)"
    assert ApiToken.objects.count() == 1


def test_issue_token_prints_the_key_as_the_last_line_in_a_real_process(tmp_path):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings",
                   "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=environment, check=True,
                   timeout=300)
    completed = subprocess.run([sys.executable, "manage.py", "issue_token", "conformance", "--create-user"],
                               cwd=REPO, env=environment, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert re.fullmatch(r"dpm_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", completed.stdout.splitlines()[-1])


# --- the upgrade from DRF's clear-text tokens ----------------------------------------------------

def test_the_upgrade_carries_drf_keys_over_hashed_and_deletes_the_clear_text(anonymous_client):
    from django.apps import apps

    migration = importlib.import_module("dpm_async.migrations.0002_carry_over_authtoken_keys")
    legacy_key = "0123456789abcdef0123456789abcdef01234567"
    user = api_user("legacy-client")
    with connection.cursor() as cursor:
        cursor.execute('CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created timestamp with time zone '
                       'NOT NULL, user_id integer NOT NULL)' if connection.vendor == "postgresql" else
                       'CREATE TABLE authtoken_token ("key" varchar(40) PRIMARY KEY, created datetime NOT NULL, '
                       'user_id integer NOT NULL)')
        cursor.execute("INSERT INTO authtoken_token (\"key\", created, user_id) VALUES (%s, %s, %s)",
                       [legacy_key, "2025-01-02 03:04:05", user.pk])
    # The migration uses only its schema editor's connection (SQLite's editor cannot open inside a test's transaction).
    migration.carry_over(apps, SimpleNamespace(connection=connection))
    token = ApiToken.objects.get(user=user)
    assert (token.name, token.prefix, token.expires_at) == ("legacy (authtoken)", "", None)
    assert token.digest == hashlib.sha256(legacy_key.encode()).hexdigest()
    assert f"{token.created_at:%Y-%m-%d %H:%M:%S}" == "2025-01-02 03:04:05"
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM authtoken_token")
        assert cursor.fetchone()[0] == 0
    assert calls_with(anonymous_client, legacy_key) == 200
    assert "(legacy)" in command("list_tokens", "legacy-client")


def test_the_admin_lists_tokens_without_digests_and_revokes_them():
    key, _ = issue_token("orchestrator", "--create-user", "--name", "orchestrator")
    token = ApiToken.objects.get()
    admin = User.objects.create_superuser("root-admin", password="x" * 20)
    client = Client()
    client.force_login(admin)
    page = client.get("/admin/dpm_async/apitoken/")
    assert page.status_code == 200
    text = page.content.decode()
    assert token.prefix in text and "orchestrator" in text
    assert token.digest not in text and key not in text
    assert client.get(f"/admin/dpm_async/apitoken/{token.pk}/change/").status_code == 200
    response = client.post("/admin/dpm_async/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    assert response.status_code == 302
    assert not ApiToken.objects.exists()
