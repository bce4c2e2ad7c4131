"""Who may call the API (spec/api.md section 9; docs/security.md).

Programs authenticate with a DRF token (`Authorization: Token <key>`), people with the admin's
session. `ApiAuthRequired` is the default permission of every API view; the health probes opt out.
The token helpers below are what `manage.py issue_token` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class ApiAuthRequired(BasePermission):
    """An authenticated caller, unless DPM_API_AUTH_REQUIRED=false (read at call time).

    When it refuses, DRF raises NotAuthenticated, and since TokenAuthentication is the first
    authentication class that becomes a 401 with `WWW-Authenticate: Token`.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if not settings.DPM_API_AUTH_REQUIRED:
            return True
        user = request.user
        return bool(user is not None and user.is_authenticated)


class UserNotFound(Exception):
    """The user named for a token does not exist (and was not to be created)."""


@dataclass(frozen=True)
class IssuedToken:
    key: str
    username: str
    # True when the user did not exist and was created for the token.
    user_created: bool
    # True when the user already had a token: the same key is returned, not a new one.
    existing: bool


def api_token_issue(username: str, *, create_user: bool = False, staff: bool = False,
                    rotate: bool = False) -> IssuedToken:
    """The API token of `username`, created if the user has none.

    `create_user` creates a missing user (with an unusable password: it logs in by token only);
    `staff` marks the user staff (the admin, and read access to every operation together with the
    `operations.view_operation` permission, granted here too). `rotate` replaces an existing key
    with a new one, so the old key stops working at once. DRF keeps one token per user.
    """
    user_model = get_user_model()
    with transaction.atomic():
        user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
        user_created = False
        if user is None:
            if not create_user:
                raise UserNotFound(username)
            user = user_model.objects.create_user(**{user_model.USERNAME_FIELD: username})
            user.set_unusable_password()
            user.save()
            user_created = True
        if staff:
            from django.contrib.auth.models import Permission

            user.is_staff = True
            user.save(update_fields=["is_staff"])
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="operations", codename="view_operation")
            )
        if rotate:
            Token.objects.filter(user=user).delete()
        token, created = Token.objects.get_or_create(user=user)
    return IssuedToken(key=token.key, username=username, user_created=user_created, existing=not created)


def api_token_revoke(username: str) -> bool:
    """Deletes the API token of `username`; the key stops working at once. False if it had none."""
    user_model = get_user_model()
    deleted, _ = Token.objects.filter(**{f"user__{user_model.USERNAME_FIELD}": username}).delete()
    return deleted > 0
