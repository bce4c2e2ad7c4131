"""`manage.py support_user`: a support engineer's admin login, in the Support group."""

from __future__ import annotations

import getpass
from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("support_user", *args, stdout=out)
    return out.getvalue()


def test_creates_a_staff_user_who_logs_in_with_the_environment_s_password(monkeypatch):
    monkeypatch.setenv("DPM_SUPPORT_PASSWORD", "correct horse battery")
    assert run("alice") == "created support user alice (Support group); log in at /admin/\n"
    user = User.objects.get(username="alice")
    assert user.is_staff and user.is_active and not user.is_superuser
    assert [group.name for group in user.groups.all()] == ["Support"]
    client = Client()
    assert client.login(username="alice", password="correct horse battery")
    assert client.get("/admin/operations/operation/").status_code == 200


def test_the_support_group_holds_exactly_view_and_cancel_and_the_task_rows(monkeypatch):
    monkeypatch.setenv("DPM_SUPPORT_PASSWORD", "pw-123456")
    run("alice")
    permissions = sorted(f"{p.content_type.app_label}.{p.codename}" for p in Group.objects.get(name="Support")
                         .permissions.all())
    assert permissions == ["django_tasks_database.view_dbtaskresult", "operations.cancel_operation",
                           "operations.view_operation"]
    user = User.objects.get(username="alice")
    assert not user.has_perm("operations.change_operation") and not user.has_perm("operations.delete_operation")
    assert not user.has_perm("dpm_async.view_apitoken")


def test_updates_an_existing_user_s_password_and_makes_them_support(monkeypatch):
    User.objects.create_user("bob", password="old-password")
    monkeypatch.setenv("DPM_SUPPORT_PASSWORD", "new-password")
    assert run("bob").startswith("updated support user bob")
    user = User.objects.get(username="bob")
    assert user.check_password("new-password") and user.is_staff
    assert user.groups.filter(name="Support").exists()
    run("bob")  # again: nothing doubles
    assert user.groups.count() == 1 and Group.objects.filter(name="Support").count() == 1


def test_prompts_twice_without_the_environment_variable(monkeypatch):
    monkeypatch.delenv("DPM_SUPPORT_PASSWORD", raising=False)
    answers = iter(["typed-password", "typed-password"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    run("carol")
    assert User.objects.get(username="carol").check_password("typed-password")


def test_refuses_two_different_prompted_passwords(monkeypatch):
    monkeypatch.delenv("DPM_SUPPORT_PASSWORD", raising=False)
    answers = iter(["one", "two"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    with pytest.raises(CommandError, match="the passwords differ"):
        run("dave")
    assert not User.objects.filter(username="dave").exists()
