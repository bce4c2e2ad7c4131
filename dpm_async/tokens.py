"""Issuing, listing and revoking API tokens (docs/security.md): what the token commands and the
admin call. Authentication reads them in dpm_async/authentication.py.

A key is `dpm_<12 hex>_<43 base64url>`: a public prefix that names it in listings, then 256 random
bits. Only its SHA-256 digest is stored, and a request's key is found by that digest.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from dpm_async.models import ApiToken

KEY_PREFIX = "dpm_"
# `last_used_at` is rewritten only when it is older than this: one UPDATE per key per five
# minutes at most, instead of one per request.
API_TOKEN_USE_RESOLUTION = timedelta(minutes=5)


class UserNotFound(Exception):
    """The user named for a token does not exist (and was not to be created)."""


def api_token_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    key: str
    token: ApiToken
    # True when the user did not exist and was created for the token.
    user_created: bool


def api_token_issue(username: str, *, name: str = "default", expires_at: datetime | None = None,
                    create_user: bool = False, staff: bool = False) -> IssuedToken:
    """A new API key for `username`, named `name`; the user's other keys stay valid.

    `create_user` creates a missing user (with an unusable password: it calls by token only);
    `staff` marks the user staff (the admin, /metrics, and read access to every operation together
    with the `operations.view_operation` permission, granted here too). The key is returned once
    and never stored: only its digest is.
    """
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        raise ValueError("the expiry must be in the future")
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
            user.is_staff = True
            user.save(update_fields=["is_staff"])
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label="operations", codename="view_operation")
            )
        public = KEY_PREFIX + secrets.token_hex(6)
        key = f"{public}_{secrets.token_urlsafe(32)}"
        token = ApiToken.objects.create(user=user, name=name, prefix=public, digest=api_token_digest(key),
                                        created_at=now, expires_at=expires_at)
    return IssuedToken(key=key, token=token, user_created=user_created)


def api_tokens_of(username: str | None = None) -> QuerySet[ApiToken]:
    """Every token (of `username`), with its user, oldest first within each user."""
    tokens = ApiToken.objects.select_related("user")
    if username is not None:
        user_model = get_user_model()
        tokens = tokens.filter(**{f"user__{user_model.USERNAME_FIELD}": username})
    return tokens.order_by("user_id", "created_at", "id")


def api_tokens_revoke(tokens: QuerySet[ApiToken]) -> int:
    """Deletes `tokens`: their keys stop working with the next request. Returns how many."""
    deleted, _ = tokens.delete()
    return deleted


def api_token_mark_used(token: ApiToken, now: datetime) -> None:
    """Records that `token` was used, at most once per API_TOKEN_USE_RESOLUTION (conditional UPDATE:
    of concurrent requests, one writes)."""
    if token.last_used_at is not None and now - token.last_used_at < API_TOKEN_USE_RESOLUTION:
        return
    ApiToken.objects.filter(pk=token.pk, last_used_at=token.last_used_at).update(last_used_at=now)
