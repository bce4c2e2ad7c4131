"""API tokens in the admin: a read-only list for support staff, and a revoke action (docs/security.md).

No key is ever shown (none is stored); tokens are issued with `manage.py issue_token`, the only
place a key is ever shown. Revoking deletes the token: its key stops working with the next
request. Unticking a user's "active" box cuts off all their tokens at once, and deleting the user
deletes them.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from dpm_async.models import ApiToken
from dpm_async.tokens import api_tokens_revoke


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    list_display = ("id", "user", "name", "prefix", "created_at", "expires_at", "last_used_at")
    list_filter = ("created_at", "expires_at")
    search_fields = ("user__username", "name", "prefix")
    readonly_fields = ("user", "name", "prefix", "created_at", "expires_at", "last_used_at")
    exclude = ("digest",)
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens (their keys stop working at once)",
                  permissions=["delete"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = api_tokens_revoke(queryset)
        self.message_user(request, f"Revoked {revoked} token(s).", messages.SUCCESS)
