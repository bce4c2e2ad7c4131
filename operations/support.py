"""Support engineers: staff users of the **Support** group, who work in the admin (docs/operations.md).

The group can view every operation and cancel one, and view the tasks backend's rows; nothing
else. It cannot change or delete an operation, purge
(superusers only), or see API tokens (docs/security.md, "The support console").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django_tasks_db.models import DBTaskResult

SUPPORT_GROUP = "Support"
CANCEL_PERMISSION = "operations.cancel_operation"

# (app label, codename): what the group holds, and all it holds.
SUPPORT_PERMISSIONS: tuple[tuple[str, str], ...] = (
    ("operations", "view_operation"),
    ("operations", "cancel_operation"),
)
# The tasks backend's rows, for the operation page's links to the tasks that ran it (the app's
# label is "django_tasks_database", not its module's name).
TASK_ROWS_PERMISSION = (DBTaskResult._meta.app_label, f"view_{DBTaskResult._meta.model_name}")
TASK_ROWS_VIEW_PERMISSION = ".".join(TASK_ROWS_PERMISSION)


def support_permissions() -> list[Permission]:
    """The Support group's permissions."""
    return [Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in (*SUPPORT_PERMISSIONS, TASK_ROWS_PERMISSION)]


def support_group_ensure() -> Group:
    """The Support group, created if missing, holding exactly `support_permissions()`."""
    group, _ = Group.objects.get_or_create(name=SUPPORT_GROUP)
    group.permissions.set(support_permissions())
    return group


@dataclass(frozen=True)
class SupportUser:
    user: AbstractBaseUser
    created: bool


@transaction.atomic
def support_user_save(username: str, password: str) -> SupportUser:
    """Creates `username` as an active staff member of the Support group with `password`, or makes an
    existing user one (password reset, staff, active, in the group). A superuser stays one."""
    if not username.strip():
        raise ValueError("a user name is required")
    if not password:
        raise ValueError("a password is required")
    User = get_user_model()
    lookup: dict[str, Any] = {User.USERNAME_FIELD: username}
    user, created = User.objects.get_or_create(**lookup)
    user.set_password(password)
    user.is_staff = True
    user.is_active = True
    user.save()
    user.groups.add(support_group_ensure())
    return SupportUser(user=user, created=created)
