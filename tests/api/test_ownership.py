"""An operation belongs to its submitter (spec/api.md section 9): for anyone else it does not exist,
except for staff with the view permission, who may read it; correlation ids are unique per owner."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client, override_settings

from operations.links import operation_execute_url, operation_status_url
from operations.models import Operation, OperationStatus
from tests.factories.bodies import batch_body
from tests.factories.operations import (
    LIST_URL,
    api_headers,
    api_user,
    operation_row,
    parse,
    submit,
)

pytestmark = pytest.mark.django_db

NOT_FOUND = "DPM_ASYNC_OPERATION_NOT_FOUND"


@pytest.fixture
def alice() -> Client:
    """The owner: the `client` fixture's user."""
    return Client(headers=api_headers())


@pytest.fixture
def bob() -> Client:
    return Client(headers=api_headers(api_user("bob")))


def staff_client(username: str = "support", *, view: bool = True, superuser: bool = False) -> Client:
    user = api_user(username, is_staff=True, is_superuser=superuser)
    if view:
        user.user_permissions.add(Permission.objects.get(codename="view_operation"))
    return Client(headers=api_headers(user))


def listed(client: Client, query: str = "") -> set[str]:
    response = client.get(LIST_URL + query)
    assert response.status_code == 200
    return {item["operation_id"] for item in parse(response)["items"]}


def code(response) -> str:
    return parse(response)["code"]


# --- another owner's operation does not exist ----------------------------------------------------

@pytest.mark.parametrize("status", [OperationStatus.PENDING, OperationStatus.RUNNING, OperationStatus.SUCCEEDED])
def test_another_owners_operation_is_404_on_every_operation_endpoint(alice, bob, status):
    operation = operation_row(status=status, correlation_id="alice-1")
    for response in (
        bob.get(operation_status_url(operation.id)),
        bob.get("/rebalance/operations/by-correlation/alice-1"),
        bob.post(operation_execute_url(operation.id)),
        bob.post(f"{operation_status_url(operation.id)}/cancel"),
    ):
        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"
        assert code(response) == NOT_FOUND
    # Byte for byte the answer for an id that does not exist at all: nothing tells them apart.
    unknown = bob.get("/rebalance/operations/dop_" + "f" * 32, headers={"X-Correlation-Id": "same"})
    foreign = bob.get(operation_status_url(operation.id), headers={"X-Correlation-Id": "same"})
    assert unknown.content == foreign.content
    # Untouched, and still the owner's.
    assert Operation.objects.get(pk=operation.pk).status == status
    assert alice.get(operation_status_url(operation.id)).status_code == 200


def test_another_owners_operations_are_absent_from_lists(alice, bob):
    mine = operation_row(correlation_id="shared-name")
    theirs = operation_row(owner=api_user("bob"), correlation_id="shared-name")
    assert listed(alice) == {mine.id}
    assert listed(bob) == {theirs.id}
    assert listed(bob, "?correlation_id=shared-name") == {theirs.id}
    assert listed(bob, "?status=PENDING&limit=1") == {theirs.id}


def test_paging_a_list_never_leaks_another_owners_rows(alice, bob):
    mine = {operation_row().id for _ in range(3)}
    for _ in range(4):
        operation_row(owner=api_user("bob"))
    seen: set[str] = set()
    cursor = ""
    while True:
        page = parse(alice.get(LIST_URL + "?limit=1" + (f"&cursor={cursor}" if cursor else "")))
        seen |= {item["operation_id"] for item in page["items"]}
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == mine


def test_cancel_and_execute_by_another_owner_change_nothing(bob):
    pending = operation_row()
    assert bob.post(f"{operation_status_url(pending.id)}/cancel").status_code == 404
    assert bob.post(operation_execute_url(pending.id)).status_code == 404
    stored = Operation.objects.get(pk=pending.pk)
    assert (stored.status, stored.attempt, stored.error) == (OperationStatus.PENDING, 0, None)


# --- correlation ids are unique per owner ------------------------------------------------------

@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_two_owners_may_use_the_same_correlation_id_with_different_bodies(alice, bob):
    first = submit(alice, batch_body(), **{"X-Correlation-Id": "orch-7"})
    second = submit(bob, batch_body(other={"options": {}}), **{"X-Correlation-Id": "orch-7"})
    assert (first.status_code, second.status_code) == (202, 202)
    assert parse(first)["operation_id"] != parse(second)["operation_id"]
    # Each owner's replay and conflict concern only its own operation.
    replay = submit(bob, batch_body(other={"options": {}}), **{"X-Correlation-Id": "orch-7"})
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    assert parse(replay)["operation_id"] == parse(second)["operation_id"]
    conflict = submit(alice, batch_body(other={"options": {}}), **{"X-Correlation-Id": "orch-7"})
    assert conflict.status_code == 409
    assert parse(conflict)["operation_id"] == parse(first)["operation_id"]
    # By correlation id, each sees its own.
    assert parse(alice.get("/rebalance/operations/by-correlation/orch-7"))["operation_id"] == parse(first)["operation_id"]
    assert parse(bob.get("/rebalance/operations/by-correlation/orch-7"))["operation_id"] == parse(second)["operation_id"]


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_the_same_body_from_two_owners_is_two_operations_not_a_replay(alice, bob):
    first = submit(alice, **{"X-Correlation-Id": "orch-8"})
    second = submit(bob, **{"X-Correlation-Id": "orch-8"})
    assert (first.status_code, second.status_code) == (202, 202)
    assert "Idempotent-Replayed" not in second
    assert Operation.objects.filter(correlation_id="orch-8").count() == 2


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY", DPM_API_AUTH_REQUIRED=False)
def test_anonymous_submissions_share_one_correlation_namespace(anonymous_client, alice):
    first = submit(anonymous_client, **{"X-Correlation-Id": "local-1"})
    again = submit(anonymous_client, **{"X-Correlation-Id": "local-1"})
    conflict = submit(anonymous_client, batch_body(x={"options": {}}), **{"X-Correlation-Id": "local-1"})
    own = submit(alice, batch_body(x={"options": {}}), **{"X-Correlation-Id": "local-1"})
    assert (first.status_code, again.status_code, conflict.status_code, own.status_code) == (202, 200, 409, 202)
    assert Operation.objects.filter(correlation_id="local-1", owner__isnull=True).count() == 1


# --- staff ---------------------------------------------------------------------------------------

def test_staff_with_the_view_permission_read_every_owners_operations():
    staff = staff_client()
    operation = operation_row(status=OperationStatus.SUCCEEDED, correlation_id="alice-9")
    theirs = operation_row(owner=api_user("bob"))
    assert staff.get(operation_status_url(operation.id)).status_code == 200
    assert parse(staff.get("/rebalance/operations/by-correlation/alice-9"))["operation_id"] == operation.id
    assert listed(staff) == {operation.id, theirs.id}


def test_staff_may_not_execute_or_cancel_another_owners_operation():
    staff = staff_client()
    operation = operation_row()
    for response in (staff.post(operation_execute_url(operation.id)), staff.post(f"{operation_status_url(operation.id)}/cancel")):
        assert response.status_code == 403
        assert parse(response) == {
            "type": "https://dpm-async.dev/problems/dpm-async-operation-not-owned",
            "title": "Forbidden",
            "status": 403,
            "detail": f"Operation {operation.id} belongs to another user: only its owner can execute or cancel "
                      "it (staff cancel through the admin).",
            "code": "DPM_ASYNC_OPERATION_NOT_OWNED",
            "correlation_id": response["X-Correlation-Id"],
            "operation_id": operation.id,
        }
    assert Operation.objects.get(pk=operation.pk).status == OperationStatus.PENDING


@override_settings(DPM_ASYNC_EXECUTION_MODE="ACCEPT_ONLY")
def test_staff_execute_and_cancel_their_own_operations():
    staff = staff_client()
    first = parse(submit(staff, **{"X-Correlation-Id": "mine-1"}))
    second = parse(submit(staff, **{"X-Correlation-Id": "mine-2"}))
    assert parse(staff.post(first["execute_url"]))["status"] == "SUCCEEDED"
    assert parse(staff.post(second["status_url"] + "/cancel"))["status"] == "FAILED"


def test_staff_lookup_by_correlation_prefers_their_own_then_the_newest():
    staff = staff_client()
    older = operation_row(correlation_id="dup", owner=api_user("bob"))
    newer = operation_row(correlation_id="dup")
    assert parse(staff.get("/rebalance/operations/by-correlation/dup"))["operation_id"] == newer.id
    own = operation_row(correlation_id="dup", owner=User.objects.get(username="support"))
    assert parse(staff.get("/rebalance/operations/by-correlation/dup"))["operation_id"] == own.id
    assert listed(staff, "?correlation_id=dup") == {older.id, newer.id, own.id}


def test_staff_without_the_view_permission_see_only_their_own():
    staff = staff_client(view=False)
    operation = operation_row()
    assert staff.get(operation_status_url(operation.id)).status_code == 404
    assert listed(staff) == set()


def test_a_superuser_reads_everything():
    superuser = staff_client("root", view=False, superuser=True)
    operation = operation_row()
    assert superuser.get(operation_status_url(operation.id)).status_code == 200


def test_the_view_permission_without_staff_status_grants_nothing():
    user = api_user("carol")
    user.user_permissions.add(Permission.objects.get(codename="view_operation"))
    operation = operation_row()
    assert Client(headers=api_headers(user)).get(operation_status_url(operation.id)).status_code == 404


# --- deleting a user -----------------------------------------------------------------------------

def test_deleting_a_user_deletes_their_operations_rather_than_orphaning_them():
    bob = api_user("bob")
    operation_row(owner=bob)
    kept = operation_row()
    bob.delete()
    assert list(Operation.objects.values_list("pk", flat=True)) == [kept.pk]
