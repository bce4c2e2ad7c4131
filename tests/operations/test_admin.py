"""The support console at /admin/ (api.md section 8): read-only, searchable, actions via services."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from operations import admin as operations_admin
from operations.models import Operation, OperationStatus
from rebalance.parsing import batch_request_parse
from rebalance.services import rebalance_analyze_batch
from tests.factories.bodies import batch_body
from tests.factories.operations import operation_row

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/operations/operation/"


def change_url(operation: Operation) -> str:
    # The admin escapes "_" in primary keys ("dop_22..." unquoted raw would read "_22" as '"'), so
    # the URL is built the way the admin's own links are: quote() then reverse().
    return reverse("admin:operations_operation_change", args=[quote(operation.id)])


@pytest.fixture
def staff(client):
    user = User.objects.create_superuser("support", "support@example.com", "pw")
    client.force_login(user)
    return client


def test_changelist_lists_without_loading_payloads(staff, django_assert_max_num_queries):
    operation_row(status=OperationStatus.SUCCEEDED)
    with django_assert_max_num_queries(12) as captured:
        response = staff.get(CHANGELIST)
    assert response.status_code == 200
    for query in captured.captured_queries:
        assert "operationscenarioresult" not in query["sql"]
        if "operations_operation" in query["sql"]:
            assert '"result_envelope"' not in query["sql"] and '."request"' not in query["sql"]


def test_changelist_filters_and_search(staff):
    pending = operation_row(correlation_id="find-me")
    done = operation_row(status=OperationStatus.SUCCEEDED)
    expired = operation_row(created_at=timezone.now() - timedelta(days=3))

    def listed(query: str) -> set[str]:
        response = staff.get(CHANGELIST + query)
        assert response.status_code == 200
        return {o.id for o in response.context["cl"].result_list}

    assert listed("?status__exact=SUCCEEDED") == {done.id}
    assert listed("?operation_type__exact=ANALYZE_SCENARIOS") == {pending.id, done.id, expired.id}
    assert listed("?q=find-me") == {pending.id}
    assert listed(f"?q={done.id}") == {done.id}
    assert listed("?q=find") == set()  # exact match only: both columns are indexed
    assert listed("?expiry=expired") == {expired.id}
    assert listed("?expiry=live") == {pending.id, done.id}


def test_detail_is_read_only_with_formatted_json(staff):
    error = {"code": "ENGINE_ERROR", "message": "The batch could not be run.", "details": {}}
    operation = operation_row(status=OperationStatus.FAILED, error=error)
    response = staff.get(change_url(operation))
    assert response.status_code == 200
    page = response.content.decode()
    assert "&quot;code&quot;: &quot;ENGINE_ERROR&quot;" in page
    assert "&quot;portfolio_snapshot&quot;: {" in page  # the request, indented
    assert 'name="_save"' not in page  # no form to save


def test_detail_shows_only_the_head_of_a_large_request(staff):
    big = json.dumps({"scenarios": {"x": {}}, "pad": ["x" * 100] * 2000})  # ~200 KB
    operation = operation_row(request=big)
    response = staff.get(change_url(operation))
    assert response.status_code == 200, (response.status_code, response.headers.get("Location"))
    page = response.content.decode()
    assert f"Showing the first {operations_admin.PREVIEW_CHARS:,} of {len(big):,} characters" in page
    assert len(page) < len(big)


def test_detail_shows_each_scenario_s_verdict_and_the_envelope_not_the_result(staff, django_assert_max_num_queries):
    body = batch_body(ok={"options": {}}, bad={"options": {"max_turnover_pct": "1.5"}})
    operation = operation_row(status=OperationStatus.SUCCEEDED, body=body,
                              result=rebalance_analyze_batch(batch_request_parse(body), correlation_id="a").json())
    with django_assert_max_num_queries(12) as captured:
        response = staff.get(change_url(operation))
    page = response.content.decode()
    assert "<tr><td>bad</td><td>FAILED</td><td>INVALID_OPTIONS: Value error, max_turnover_pct must be between 0 " \
           "and 1 inclusive</td></tr>" in page
    assert "<tr><td>ok</td><td>READY</td><td></td></tr>" in page
    assert "&quot;warnings&quot;: [" in page and "PARTIAL_BATCH_FAILURE" in page
    assert "2 of 2 scenarios done, 1 failed" in page
    assert not any("operationscenarioresult" in query["sql"] for query in captured.captured_queries)


def test_nothing_can_be_added_changed_or_deleted(staff):
    operation = operation_row()
    assert staff.get(CHANGELIST + "add/").status_code == 403
    assert staff.post(change_url(operation), {"status": "SUCCEEDED"}).status_code == 403
    assert staff.post(f"{CHANGELIST}{operation.id}/delete/", {"post": "yes"}).status_code == 403
    assert Operation.objects.get(pk=operation.id).status == OperationStatus.PENDING


def test_cancel_action_goes_through_the_service(staff):
    pending = operation_row()
    done = operation_row(status=OperationStatus.SUCCEEDED)
    response = staff.post(CHANGELIST, {"action": "cancel_selected", "_selected_action": [pending.id, done.id]},
                          follow=True)
    assert response.status_code == 200
    assert "Cancelled 1 operation(s); 1 already finished or expired." in response.content.decode()
    assert Operation.objects.get(pk=pending.id).error["code"] == "OPERATION_CANCELLED"
    assert Operation.objects.get(pk=done.id).status == OperationStatus.SUCCEEDED


def test_purge_action_goes_through_the_service(staff):
    expired = operation_row(created_at=timezone.now() - timedelta(days=3))
    live = operation_row()
    response = staff.post(CHANGELIST, {"action": "purge_expired", "_selected_action": [live.id]}, follow=True)
    assert "Purged 1 expired operation(s)." in response.content.decode()
    assert list(Operation.objects.values_list("pk", flat=True)) == [live.id]
    assert not Operation.objects.filter(pk=expired.id).exists()


def test_view_only_staff_can_browse_but_not_act(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_operation"))
    client.force_login(user)
    operation = operation_row()
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "cancel_selected" not in response.content.decode()
    assert client.get(change_url(operation)).status_code == 200


# --- who gets in (spec/api.md section 9) -------------------------------------------------------

def test_the_admin_is_for_staff_only(client):
    user = User.objects.create_user("plain", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_operation"))
    client.force_login(user)
    operation = operation_row()
    for path in ("/admin/", CHANGELIST, change_url(operation)):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), path


def test_an_api_token_does_not_open_the_admin(client):
    # The `client` fixture carries a token; the admin only knows sessions.
    response = client.get(CHANGELIST)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_without_the_view_permission_cannot_browse_operations(client):
    client.force_login(User.objects.create_user("helpdesk", password="pw", is_staff=True))
    assert client.get(CHANGELIST).status_code == 403


def test_the_owner_is_shown(staff):
    operation = operation_row()
    assert "api-user" in staff.get(CHANGELIST).content.decode()
    assert "api-user" in staff.get(change_url(operation)).content.decode()


def test_a_nul_byte_search_does_not_fail(staff):
    operation_row()
    assert staff.get(CHANGELIST + "?q=%00").status_code == 200


def test_api_tokens_are_not_in_the_admin(staff):
    from tests.factories.operations import api_token

    key = api_token()
    assert staff.get("/admin/authtoken/tokenproxy/").status_code == 404
    assert key not in staff.get("/admin/").content.decode()


def test_deactivating_a_user_in_the_admin_cuts_off_their_token(staff):
    from django.test import Client

    from tests.factories.operations import api_headers, api_user

    program = Client(headers=api_headers())
    assert program.get("/rebalance/operations").status_code == 200
    User.objects.filter(pk=api_user().pk).update(is_active=False)
    assert program.get("/rebalance/operations").status_code == 401
