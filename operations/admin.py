"""A read-only console for support teams (spec/api.md section 8).

Staff browse, filter and search operations and read their request, result and error as formatted
JSON. Nothing here edits an operation: the two actions call the same services as the API.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.db.models.fields import TextField
from django.db.models.functions import Cast, Length, Substr
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from operations.access import OPERATIONS_ALL
from operations.clock import now_or_database
from operations.errors import OperationNotCancellable, OperationNotFound
from operations.maintenance import operations_purge
from operations.models import Operation
from operations.results import operation_scenario_verdicts
from operations.services import PURGE_BATCH_SIZE, operation_cancel

# The detail page shows at most this much of a stored request: the database cuts the text, so the
# rest never leaves it. A result is never shown whole (up to hundreds of MB): the page shows its
# envelope and each scenario's verdict, read from the operation's row alone.
PREVIEW_CHARS = 64 * 1024


class ExpiryFilter(admin.SimpleListFilter):
    title = "expiry"
    parameter_name = "expiry"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("live", "Live"), ("expired", "Expired (404 on the API, awaiting purge)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Operation]) -> QuerySet[Operation]:
        if self.value() == "live":
            return queryset.filter(expires_at__gt=now_or_database())
        if self.value() == "expired":
            return queryset.filter(expires_at__lte=now_or_database())
        return queryset


def _preview(text: str | None, total_chars: int | None) -> str:
    if text is None:
        return "-"
    if total_chars is not None and total_chars > len(text):
        note = f"Showing the first {len(text):,} of {total_chars:,} characters (the whole document is too large for a page)."
        return format_html('<p>{}</p><pre style="white-space: pre-wrap">{}</pre>', note, text)
    try:
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = text
    return format_html('<pre style="white-space: pre-wrap">{}</pre>', pretty)


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin[Operation]):
    list_display = ("id", "operation_type", "status", "owner", "correlation_id", "created_at", "finished_at",
                    "expires_at", "attempt")
    list_select_related = ("owner",)
    list_filter = ("status", "operation_type", ("created_at", admin.DateFieldListFilter), ExpiryFilter)
    # Exact matches only: both columns are indexed, a `LIKE '%…%'` would scan the table.
    search_fields = ("=id", "=correlation_id")
    search_help_text = "Exact operation id (dop_…) or correlation id."
    ordering = ("-created_at", "-id")
    list_per_page = 50
    show_full_result_count = False
    actions = ("cancel_selected", "purge_expired")
    fields = ("id", "operation_type", "status", "owner", "correlation_id", "request_fingerprint", "created_at",
              "started_at", "finished_at", "expires_at", "attempt", "lease_expires_at", "cancel_requested",
              "progress", "error_pretty", "verdicts", "envelope_pretty", "request_pretty")
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Operation]:
        # The payload columns are never loaded whole: the detail page gets a bounded preview,
        # cut by the database, and the list none at all.
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "operations_operation_change":
            return queryset.defer("request").annotate(
                request_head=Substr(Cast("request", TextField()), 1, PREVIEW_CHARS),
                request_chars=Length(Cast("request", TextField())),
            )
        queryset = queryset.defer("request", "result_envelope")
        return queryset

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Operation], search_term: str
    ) -> tuple[QuerySet[Operation], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(id=term) | Q(correlation_id=term)), False

    @admin.display(description="error")
    def error_pretty(self, operation: Operation) -> str:
        if operation.error is None:
            return "-"
        return format_html('<pre style="white-space: pre-wrap">{}</pre>',
                           json.dumps(operation.error, indent=2, ensure_ascii=False))

    @admin.display(description="progress")
    def progress(self, operation: Operation) -> str:
        current = f", running {operation.current_scenario}" if operation.current_scenario else ""
        return (f"{operation.scenarios_done} of {operation.scenarios_total} scenarios done, "
                f"{operation.scenarios_failed} failed{current}")

    @admin.display(description="scenarios")
    def verdicts(self, operation: Operation) -> str:
        rows = [(v.name, v.status, v.failed_reason or "") for v in operation_scenario_verdicts(operation)]
        if not rows:
            return "-"
        return format_html(
            "<table>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="result envelope")
    def envelope_pretty(self, operation: Operation) -> str:
        if operation.result_envelope is None:
            return "-"
        return _preview(operation.result_envelope.decode(), None)

    @admin.display(description="request (canonical)")
    def request_pretty(self, operation: Operation) -> str:
        return _preview(getattr(operation, "request_head", None), getattr(operation, "request_chars", None))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("operations.change_operation")

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("operations.delete_operation")

    @admin.action(description="Cancel the selected operations", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Operation]) -> None:
        cancelled = refused = 0
        for operation_id in queryset.values_list("id", flat=True):
            try:
                operation_cancel(operation_id, scope=OPERATIONS_ALL)
                cancelled += 1
            except (OperationNotCancellable, OperationNotFound):  # finished or gone: report, go on
                refused += 1
        self.message_user(request, f"Cancelled {cancelled} operation(s); {refused} already finished or expired.",
                          messages.SUCCESS if not refused else messages.WARNING)

    @admin.action(description="Purge all expired operations (the selection is ignored)", permissions=["purge"])
    def purge_expired(self, request: HttpRequest, queryset: QuerySet[Operation]) -> None:
        purged = operations_purge(batch_size=PURGE_BATCH_SIZE)
        self.message_user(request, f"Purged {purged} expired operation(s).", messages.SUCCESS)
