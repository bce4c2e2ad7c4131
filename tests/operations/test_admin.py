"""The support console at /admin/ (docs/operations.md, "Support console"): read-only, prefix
search, every filter, the detail page's verdicts, streamed downloads, actions through services."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.templatetags.admin_list import result_headers
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from operations import admin as operations_admin
from operations.models import Operation, OperationStatus
from operations.support import support_user_save
from operations.tasks import operation_run_task
from tests.factories.bodies import batch_body, support_batch
from tests.factories.operations import api_token, api_user, operation_row, stored_full_result, submitted

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/operations/operation/"


def change_url(operation: Operation) -> str:
    # The admin escapes "_" in primary keys, so URLs are built as the admin's own links are.
    return reverse("admin:operations_operation_change", args=[quote(operation.id)])


def url(name: str, operation: Operation) -> str:
    return reverse(f"admin:operations_operation_{name}", args=[quote(operation.id)])


@pytest.fixture
def support() -> Client:
    client = Client()
    client.force_login(support_user_save("alice", "a-long-password").user)
    return client


@pytest.fixture
def superuser() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def listed(client: Client, query: str = "") -> list[str]:
    response = client.get(CHANGELIST + query)
    assert response.status_code == 200, (query, response.status_code)
    return [o.id for o in response.context["cl"].result_list]


# --- the list ------------------------------------------------------------------------------------

def test_the_list_shows_the_support_columns_without_loading_payloads(support, django_assert_max_num_queries):
    failed = operation_row(status=OperationStatus.FAILED)
    with django_assert_max_num_queries(12) as captured:
        response = support.get(CHANGELIST)
    headers = [column["text"] for column in result_headers(response.context["cl"]) if column["text"]]
    assert headers[1:] == ["id", "owner", "correlation id", "status", "error code", "scenarios",
                           "created (UTC)", "duration"]
    page = response.content.decode()
    assert failed.id in page and "ENGINE_ERROR" in page and 'class="status-badge"' in page
    for query in captured.captured_queries:
        assert "operationscenarioresult" not in query["sql"]
        if "operations_operation" in query["sql"]:
            assert '"result_envelope"' not in query["sql"] and '"request"' not in query["sql"]


def test_the_list_sorts_only_by_indexed_columns(support):
    response = support.get(CHANGELIST)
    sortable = [column["text"] for column in result_headers(response.context["cl"]) if column["sortable"]]
    assert sortable == ["id", "created (UTC)"]


def test_search_matches_ids_and_correlation_ids_by_prefix_and_owners_by_name(support):
    mine = operation_row(correlation_id="ticket-4711-a")
    other = operation_row(correlation_id="other", owner=api_user("bob"))
    assert listed(support, "?q=ticket-47") == [mine.id]
    assert listed(support, "?q=4711") == []  # a prefix, never a substring (that would scan)
    assert listed(support, f"?q={other.id[:12]}") == [other.id]
    assert listed(support, "?q=bo") == [other.id]
    assert support.get(CHANGELIST + "?q=%00").status_code == 400  # a NUL byte: a bad request


def test_every_filter_narrows_the_list(support):
    old = timezone.now() - timedelta(days=10)
    pending = operation_row(owner=api_user("bob"), execution_mode="ACCEPT_ONLY")
    done = operation_row(status=OperationStatus.SUCCEEDED, created_at=old, execution_mode="INLINE")
    failed = operation_row(status=OperationStatus.FAILED, error={"code": "OPERATION_CANCELLED", "message": "x",
                                                                "details": {}})
    bob = User.objects.get(username="bob")
    assert listed(support, "?status__exact=SUCCEEDED") == [done.id]
    assert listed(support, f"?owner={bob.pk}") == [pending.id]
    assert listed(support, "?execution_mode__exact=ACCEPT_ONLY") == [pending.id]
    assert listed(support, "?error_code=OPERATION_CANCELLED") == [failed.id]
    day = old.date().isoformat()
    assert listed(support, f"?created_at__from={day}&created_at__to={day}") == [done.id]
    assert set(listed(support, f"?created_at__from={(old + timedelta(days=1)).date()}")) == {pending.id, failed.id}
    assert listed(support, f"?finished_at__to={day}") == [done.id]
    assert listed(support, "?created_at__from=not-a-date") != []  # ignored, not an error
    assert listed(support, "?created_at__from=2026-02-30&finished_at__to=9999-99-99") != []  # no such days
    assert listed(support, "?owner=99999999999999999999999") == listed(support, "?owner=%C2%B2") == []
    # The range's form keeps the other filters as they are.
    response = support.get(CHANGELIST + "?status__exact=SUCCEEDED&q=dop")
    assert '<input type="hidden" name="status__exact" value="SUCCEEDED">' in response.content.decode()


def test_the_count_is_capped(monkeypatch, support):
    monkeypatch.setattr(operations_admin, "COUNT_CAP", 2)
    for _ in range(4):
        operation_row()
    assert support.get(CHANGELIST).context["cl"].result_count == 3


# --- the detail page ---------------------------------------------------------------------------

def test_the_detail_page_says_which_scenario_was_blocked_and_why(support, django_assert_max_num_queries):
    operation = submitted(support_batch(), correlation_id="case-1")
    assert operation.status == OperationStatus.SUCCEEDED and operation.execution_mode == "INLINE"
    with django_assert_max_num_queries(40):
        response = support.get(change_url(operation))
    assert response.status_code == 200
    rows = {row.name: row for row in response.context["verdicts"]}
    assert len(rows) == 20
    assert rows["trusted"].status == "BLOCKED"
    assert rows["trusted"].failed_rules == ["NO_SHORTING (HARD): SELL_EXCEEDS_HOLDINGS, measured -80"]
    assert rows["invalid"].status == "FAILED" and rows["invalid"].failed_reason.startswith("INVALID_OPTIONS")
    assert rows["s00"].status == "READY" and rows["s00"].failed_rules == []
    page = response.content.decode()
    assert "PARTIAL_BATCH_FAILURE" in page and "comparison metrics" in page
    assert f'href="{CHANGELIST}?correlation_id=case-1"' in page
    assert listed(support, "?correlation_id=case-1") == [operation.id]
    labels = [label for label, _ in response.context["timeline"]]
    assert labels[0] == "created" and "attempt 1 started" in labels and labels[-1] == "expires"
    assert "finished SUCCEEDED" in labels


def test_the_detail_page_shows_the_error(support):
    operation = operation_row(status=OperationStatus.FAILED)
    page = support.get(change_url(operation)).content.decode()
    assert "&quot;code&quot;: &quot;ENGINE_ERROR&quot;" in page
    assert 'name="_save"' not in page


def test_the_detail_page_links_the_task_rows_that_ran_it(support):
    operation = operation_row()
    with override_settings(TASKS={"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}):
        operation_run_task.enqueue(operation.id)
        operation_run_task.enqueue("dop_" + "0" * 32)
    task = DBTaskResult.objects.get(args_kwargs__args=[operation.id])
    response = support.get(change_url(operation))
    assert [row.id for row in response.context["tasks"]] == [str(task.pk)]
    task_url = reverse("admin:django_tasks_database_dbtaskresult_change", args=[quote(task.pk)])
    assert task_url in response.content.decode()
    assert support.get(task_url).status_code == 200


def test_the_result_download_streams_the_stored_bytes(support):
    operation = submitted(support_batch(), correlation_id="download")
    response = support.get(url("result_download", operation))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="{operation.id}-result.json"'
    body = b"".join(response.streaming_content)
    assert body == stored_full_result(operation.id)
    assert int(response["Content-Length"]) == len(body)


def test_the_request_download_streams_the_stored_request_in_chunks(monkeypatch, support):
    operation = submitted(batch_body(), correlation_id="request", mode="ACCEPT_ONLY")
    stored = Operation.objects.get(pk=operation.id).request
    chunks = list(operations_admin.operation_request_chunks(operation.id, chunk_chars=100))
    assert len(chunks) > 3 and b"".join(chunks) == stored
    response = support.get(url("request_download", operation))
    assert response.streaming and response["Content-Disposition"].startswith("attachment;")
    assert b"".join(response.streaming_content) == stored


def test_small_documents_are_shown_pretty_printed(support):
    operation = submitted(batch_body(), correlation_id="pretty")
    page = support.get(url("result_view", operation)).content.decode()
    assert '"batch_run_id": ' in page.replace("&quot;", '"')
    page = support.get(url("request_view", operation)).content.decode()
    assert '"portfolio_snapshot": {' in page.replace("&quot;", '"')


def test_large_documents_are_only_downloaded(monkeypatch, support):
    monkeypatch.setattr(operations_admin, "PRETTY_MAX_BYTES", 100)
    operation = submitted(batch_body(), correlation_id="large")
    response = support.get(change_url(operation))
    assert not response.context["result_viewable"] and "download-result" in response.content.decode()
    assert "download it instead" in support.get(url("result_view", operation)).content.decode()


def test_downloads_need_the_view_permission():
    operation = operation_row(status=OperationStatus.SUCCEEDED)
    helpdesk = Client()
    helpdesk.force_login(User.objects.create_user("helpdesk", password="pw", is_staff=True))
    for name in ("result_download", "request_download", "result_view", "request_view"):
        assert helpdesk.get(url(name, operation)).status_code == 403
    assert Client().get(url("result_download", operation)).status_code == 302  # to the login page


# --- what support may not do -------------------------------------------------------------------

def test_support_cannot_add_edit_or_delete_an_operation(support):
    operation = operation_row()
    assert support.get(CHANGELIST + "add/").status_code == 403
    assert support.post(change_url(operation), {"status": "SUCCEEDED"}).status_code == 403
    assert support.post(reverse("admin:operations_operation_delete", args=[quote(operation.id)]),
                        {"post": "yes"}).status_code == 403
    assert Operation.objects.get(pk=operation.id).status == OperationStatus.PENDING


def test_support_cannot_purge_nor_see_the_purge_button(support):
    expired = operation_row(created_at=timezone.now() - timedelta(days=3))
    assert 'id="purge-expired"' not in support.get(CHANGELIST).content.decode()
    assert support.post(reverse("admin:operations_operation_purge")).status_code == 403
    assert Operation.objects.filter(pk=expired.id).exists()


def test_support_cannot_see_api_tokens_or_users(support):
    key = api_token()
    assert support.get("/admin/dpm_async/apitoken/").status_code == 403
    assert support.get("/admin/auth/user/").status_code == 403
    assert key not in support.get("/admin/").content.decode()


def test_non_staff_users_are_sent_to_the_login_page():
    operation = operation_row()
    user = User.objects.create_user("plain", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_operation"))
    client = Client()
    client.force_login(user)
    for path in ("/admin/", CHANGELIST, change_url(operation), url("result_download", operation)):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path


def test_an_api_token_does_not_open_the_admin(client):
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


# --- actions -----------------------------------------------------------------------------------

def test_the_cancel_action_goes_through_the_service_and_is_in_the_history(support):
    pending = operation_row()
    done = operation_row(status=OperationStatus.SUCCEEDED)
    response = support.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [pending.id, done.id]},
                            follow=True)
    assert "Cancelled 1 operation(s); 1 already finished or expired." in response.content.decode()
    assert Operation.objects.get(pk=pending.id).error["code"] == "OPERATION_CANCELLED"
    assert Operation.objects.get(pk=done.id).status == OperationStatus.SUCCEEDED
    [entry] = LogEntry.objects.all()
    assert (entry.user.username, entry.object_id) == ("alice", pending.id)
    assert entry.get_change_message() == "Cancelled from the support console."


def test_the_cancel_button_cancels_a_pending_operation(support, caplog):
    operation = submitted(batch_body(), correlation_id="to-cancel", mode="ACCEPT_ONLY")
    page = support.get(change_url(operation)).content.decode()
    assert 'id="cancel-operation"' in page
    with caplog.at_level("INFO", logger="operations.admin"):
        response = support.post(url("cancel", operation))
    assert response.status_code == 302
    assert Operation.objects.get(pk=operation.id).error["code"] == "OPERATION_CANCELLED"
    assert f"support console: alice cancelled operation {operation.id}" in caplog.text
    assert LogEntry.objects.get(object_id=operation.id).user.username == "alice"
    assert 'id="cancel-operation"' not in support.get(change_url(operation)).content.decode()


def test_cancelling_a_running_operation_says_the_cancel_is_requested(support):
    operation = operation_row(status=OperationStatus.RUNNING)
    response = support.post(url("cancel", operation), follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        f"Cancel requested (the run stops before its next scenario): {operation.id}."]
    assert Operation.objects.get(pk=operation.id).cancel_requested


def test_cancel_needs_the_cancel_permission_and_a_post():
    operation = operation_row()
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_operation"))
    client = Client()
    client.force_login(viewer)
    assert 'id="cancel-operation"' not in client.get(change_url(operation)).content.decode()
    assert "cancel_selected" not in client.get(CHANGELIST).content.decode()
    assert client.post(url("cancel", operation)).status_code == 403
    support_client = Client()
    support_client.force_login(support_user_save("carol", "pw-carol-1").user)
    assert support_client.get(url("cancel", operation)).status_code == 405
    assert Operation.objects.get(pk=operation.id).status == OperationStatus.PENDING


def test_the_purge_button_needs_no_selection_and_recovers_lapsed_leases(superuser, caplog):
    now = timezone.now()
    expired = operation_row(created_at=now - timedelta(days=3))
    live = operation_row()
    dead = operation_row(status=OperationStatus.RUNNING, lease_expires_at=now - timedelta(minutes=1))
    assert 'id="purge-expired"' in superuser.get(CHANGELIST).content.decode()
    with caplog.at_level("INFO", logger="operations.admin"):
        response = superuser.post(reverse("admin:operations_operation_purge"), follow=True)
    message = "Purged 1 expired operation(s); settled 1 RUNNING operation(s) with an expired lease."
    assert message in response.content.decode()
    assert set(Operation.objects.values_list("pk", flat=True)) == {live.id, dead.id}
    assert Operation.objects.get(pk=dead.id).status != OperationStatus.RUNNING
    assert not Operation.objects.filter(pk=expired.id).exists()
    assert f"support console: root ran the purge: {message}" in caplog.text
    entry = LogEntry.objects.get()
    assert (entry.user.username, entry.get_change_message()) == ("root", message)


def test_the_old_purge_action_is_gone(superuser):
    response = superuser.get(CHANGELIST)
    assert "purge_expired" not in response.content.decode()
    assert operations_admin.OperationAdmin.actions == ("cancel_selected",)


@pytest.mark.parametrize("path", [
    "?q=%00abc", "?correlation_id=%00", "?status__exact=%00", "?error_code=%00", "%00/change/", "%00/result.json",
])
def test_a_nul_byte_in_an_admin_address_is_a_bad_request(support, path):
    # PostgreSQL refuses text holding a NUL (a DataError: a 500 with a traceback before the guard).
    assert support.get(CHANGELIST + path).status_code == 400


def test_a_nul_byte_in_an_admin_form_is_a_bad_request(support):
    response = support.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": ["\x00"]})
    assert response.status_code == 400
