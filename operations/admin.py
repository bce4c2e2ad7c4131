"""The support console: a read-only admin of operations for support engineers (docs/operations.md).

Support staff (manage.py support_user) list, filter and search operations, and read on one page
what happened to one: each scenario's verdict and failed rules, the batch's warnings and metrics,
the error, the timeline and the tasks that ran it. The request and the result are downloaded as
streams. Nothing here edits an operation: cancel and purge call the same services as the API and
cron, and each is logged with the staff user and kept in the admin's history.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import CharField, Field, Model, Q, QuerySet
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.dateparse import parse_date
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.views.decorators.http import require_POST
from django_tasks_db.models import DBTaskResult

from dpm_async.encoding import IDENTITY, body_encode
from operations.access import OPERATIONS_ALL
from operations.errors import FAILURE_CODES, OperationNotCancellable, OperationNotFound
from operations.maintenance import operations_maintain
from operations.models import Operation, OperationStatus
from operations.results import (
    operation_request_chunks,
    operation_request_length,
    operation_result_envelope,
    operation_result_pieces,
    operation_result_size,
    operation_rule_results,
    operation_scenario_verdicts,
)
from operations.services import operation_cancel
from operations.support import CANCEL_PERMISSION, TASK_ROWS_PERMISSION, TASK_ROWS_VIEW_PERMISSION
from operations.tasks import operation_run_task

logger = logging.getLogger(__name__)

# A document up to this size is also shown pretty-printed on a page; larger ones are downloads.
PRETTY_MAX_BYTES = 256 * 1024
# The list never counts more rows than this (a COUNT over 100,000+ rows on every page load).
COUNT_CAP = 10_000
# Owners a username search matches at most (one indexed query on auth_user).
OWNER_SEARCH_LIMIT = 100

_STATUS_COLOURS: dict[str, str] = {
    OperationStatus.PENDING: "#6c757d",
    OperationStatus.RUNNING: "#0b63c5",
    OperationStatus.SUCCEEDED: "#1e7e34",
    OperationStatus.FAILED: "#b02a37",
}


class CappedCountPaginator(Paginator[Operation]):
    """Counts at most COUNT_CAP + 1 rows (`SELECT COUNT(*) FROM (… LIMIT n)`): the last pages of a
    huge list are reached by filtering, not by paging."""

    @cached_property
    def count(self) -> int:
        rows: Any = self.object_list  # the changelist's QuerySet
        return int(rows[: COUNT_CAP + 1].count())


class DateRangeFilter(admin.FieldListFilter):
    """From/to dates (both inclusive, UTC days) on a datetime column: `<field>__from`, `<field>__to`."""

    template = "admin/operations/date_range_filter.html"

    def __init__(self, field: Field[Any, Any], request: HttpRequest, params: dict[str, Any],
                 model: type[Model], model_admin: Any, field_path: str) -> None:
        self.from_name = f"{field_path}__from"
        self.to_name = f"{field_path}__to"
        super().__init__(field, request, params, model, model_admin, field_path)
        self.title = getattr(field, "verbose_name", field_path).replace("_", " ")

    def expected_parameters(self) -> list[str | None]:
        return [self.from_name, self.to_name]

    def _day(self, name: str) -> datetime | None:
        value = self.used_parameters.get(name)
        if isinstance(value, list):
            value = value[-1] if value else None
        try:
            day = parse_date(value) if isinstance(value, str) and value else None
        except ValueError:  # well formed but no such day (2026-02-30): ignored, like any other bad date
            day = None
        return datetime.combine(day, time.min, tzinfo=UTC) if day else None

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        start, end = self._day(self.from_name), self._day(self.to_name)
        if start is not None:
            queryset = queryset.filter(**{f"{self.field_path}__gte": start})
        if end is not None:
            queryset = queryset.filter(**{f"{self.field_path}__lt": end + timedelta(days=1)})
        return queryset

    def choices(self, changelist: Any) -> Any:
        hidden = [(name, value) for name, values in changelist.params.items()
                  if name not in (self.from_name, self.to_name, "p")
                  for value in (values if isinstance(values, list) else [values])]
        start, end = self._day(self.from_name), self._day(self.to_name)
        yield {
            "from_name": self.from_name, "to_name": self.to_name,
            "from": start.date().isoformat() if start else "", "to": end.date().isoformat() if end else "",
            "hidden": hidden, "active": bool(start or end),
            "clear_url": changelist.get_query_string(remove=[self.from_name, self.to_name]),
        }


class OwnerFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # Users, not DISTINCT owners of the operations (that would read the whole table); for
        # more than a hundred, the owner's name in the search box.
        users = get_user_model().objects.order_by("username").values_list("pk", "username")[:100]
        return [(str(pk), username) for pk, username in users]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Operation]) -> QuerySet[Operation]:
        value = self.value()
        # Any other value (a name, "²", a number past the column's range) matches no one.
        if value and value.isascii() and value.isdigit() and int(value) < 2**63:
            return queryset.filter(owner_id=int(value))
        if value:
            return queryset.none()
        return queryset


class ErrorCodeFilter(admin.SimpleListFilter):
    title = "error code"
    parameter_name = "error_code"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(code, code) for code in FAILURE_CODES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Operation]) -> QuerySet[Operation]:
        code = self.value()
        if code:
            # `error -> 'code'`: the expression of the operation_error_code_idx index.
            return queryset.filter(error__code=code)
        return queryset


@dataclass(frozen=True)
class VerdictRow:
    name: str
    status: str
    failed_reason: str
    failed_rules: list[str]
    rules_total: int


@dataclass(frozen=True)
class TaskRow:
    id: str
    status: str
    enqueued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    url: str | None


def _verdict_rows(operation: Operation) -> list[VerdictRow]:
    rules = {scenario.name: scenario.rule_results for scenario in operation_rule_results(operation)}
    rows = []
    for verdict in operation_scenario_verdicts(operation):
        scenario_rules = rules.get(verdict.name, [])
        failed = [f"{rule['rule_id']} ({rule['severity']}): {rule['reason_code']}, measured {rule['measured']}"
                  for rule in scenario_rules if rule["status"] == "FAIL"]
        rows.append(VerdictRow(verdict.name, verdict.status, verdict.failed_reason or "", failed,
                               len(scenario_rules)))
    return rows


def _task_rows(operation: Operation, request: HttpRequest) -> list[TaskRow]:
    can_open = request.user.has_perm(TASK_ROWS_VIEW_PERMISSION)
    rows = (
        DBTaskResult.objects.filter(task_path=operation_run_task.module_path)
        .alias(operation_id=Cast(KT("args_kwargs__args__0"), CharField()))
        .filter(operation_id=operation.id)
        .order_by("enqueued_at")
        .values_list("id", "status", "enqueued_at", "started_at", "finished_at")
    )
    return [
        TaskRow(str(pk), status, enqueued, started, finished,
                reverse(f"admin:{TASK_ROWS_PERMISSION[0]}_dbtaskresult_change", args=[quote(pk)]) if can_open else None)
        for pk, status, enqueued, started, finished in rows
    ]


def _timeline(operation: Operation, tasks: list[TaskRow]) -> list[tuple[str, datetime]]:
    events: list[tuple[str, datetime | None]] = [("created", operation.created_at)]
    for task in tasks:
        events += [(f"task {task.id[:8]} enqueued", task.enqueued_at),
                   (f"task {task.id[:8]} started", task.started_at),
                   (f"task {task.id[:8]} ended ({task.status})", task.finished_at)]
    if operation.started_at:
        events.append((f"attempt {operation.attempt} started", operation.started_at))
    if operation.lease_expires_at:
        events.append(("lease ends (renewed while running)", operation.lease_expires_at))
    if operation.finished_at:
        events.append((f"finished {operation.status}", operation.finished_at))
    events.append(("expires", operation.expires_at))
    return sorted(((label, at) for label, at in events if at is not None), key=lambda event: event[1])


@admin.register(Operation)
class OperationAdmin(admin.ModelAdmin[Operation]):
    list_display = ("id", "owner", "correlation_id", "status_badge", "error_code", "scenarios", "created",
                    "duration")
    list_display_links = ("id",)
    list_select_related = ("owner",)
    list_filter = (
        "status", OwnerFilter, "execution_mode", ErrorCodeFilter,
        ("created_at", DateRangeFilter), ("finished_at", DateRangeFilter),
    )
    search_fields = ("id", "correlation_id", "owner__username")  # by prefix: get_search_results
    search_help_text = "Operation id or correlation id by prefix, or the owner's user name (prefix)."
    # Only indexed orderings: the primary key and (created_at, id).
    sortable_by = ("id", "created")
    # Facet counts would count every filter's choices over the whole table on each page.
    show_facets = admin.ShowFacets.NEVER
    ordering = ("-created_at", "-id")
    list_per_page = 50
    show_full_result_count = False
    paginator = CappedCountPaginator
    actions = ("cancel_selected",)
    # Three to a line: the verdicts (above them on the page) stay in sight.
    fields = (("id", "status_badge", "owner_name"), ("correlation_link", "execution_mode", "operation_type"),
              ("progress", "attempt", "cancel_requested"), "request_fingerprint")
    readonly_fields = ("id", "status_badge", "owner_name", "correlation_link", "execution_mode", "operation_type",
                       "progress", "attempt", "cancel_requested", "request_fingerprint")
    change_form_template = "admin/operations/operation/change_form.html"
    change_list_template = "admin/operations/operation/change_list.html"

    # --- reads ---------------------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet[Operation]:
        # The payload columns are never loaded by the list, nor the request by any page: the
        # detail page reads the envelope (a few KB) and each scenario's rules.
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name == "operations_operation_changelist":
            return queryset.only("id", "owner__username", "correlation_id", "status", "error", "scenarios_total",
                                 "created_at", "started_at", "finished_at")
        return queryset.defer("request")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Operation], search_term: str
    ) -> tuple[QuerySet[Operation], bool]:
        # Prefixes only (`LIKE 'term%'`, each on an index: the primary key's and the correlation
        # id's pattern indexes, auth_user's username index); a `LIKE '%term%'` would scan.
        term = search_term.strip().replace("\x00", "")
        if not term:
            return queryset, False
        owners = list(
            get_user_model().objects.filter(username__startswith=term)
            .order_by("username").values_list("pk", flat=True)[:OWNER_SEARCH_LIMIT]
        )
        condition = Q(id__startswith=term) | Q(correlation_id__startswith=term)
        if owners:
            condition |= Q(owner_id__in=owners)
        return queryset.filter(condition), False

    @admin.display(description="status")
    def status_badge(self, operation: Operation) -> str:
        colour = _STATUS_COLOURS.get(operation.status, "#444")
        return format_html('<span class="status-badge" style="background:{};color:#fff;padding:1px 6px;'
                           'border-radius:8px;font-size:11px;white-space:nowrap">{}</span>', colour, operation.status)

    @admin.display(description="error code")
    def error_code(self, operation: Operation) -> str:
        return str(operation.error.get("code", "-")) if operation.error else "-"

    @admin.display(description="owner")
    def owner_name(self, operation: Operation) -> str:
        # Text, not the admin's link to the user: support cannot open users.
        return operation.owner.get_username() if operation.owner else "- (anonymous)"

    @admin.display(description="scenarios")
    def scenarios(self, operation: Operation) -> int:
        return operation.scenarios_total

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, operation: Operation) -> str:
        # Compact, so the eight columns fit a 1366 px screen beside the filters.
        return f"{operation.created_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="duration")
    def duration(self, operation: Operation) -> str:
        if operation.started_at is None or operation.finished_at is None:
            return "-"
        return f"{(operation.finished_at - operation.started_at).total_seconds():.1f} s"

    @admin.display(description="correlation id")
    def correlation_link(self, operation: Operation) -> str:
        url = reverse("admin:operations_operation_changelist") + "?" + \
            urlencode({"correlation_id": operation.correlation_id})
        return format_html('<a href="{}" title="every operation with this correlation id">{}</a>', url,
                           operation.correlation_id)

    @admin.display(description="progress")
    def progress(self, operation: Operation) -> str:
        current = f", running {operation.current_scenario}" if operation.current_scenario else ""
        return (f"{operation.scenarios_done} of {operation.scenarios_total} scenarios done, "
                f"{operation.scenarios_failed} failed{current}")

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        operation = self.get_object(request, unquote(object_id))
        context = dict(extra_context or {})
        if operation is not None and self.has_view_permission(request, operation):
            envelope = operation_result_envelope(operation)
            tasks = _task_rows(operation, request)
            result_size = operation_result_size(operation)
            request_size = operation_request_length(operation.id)
            verdicts = _verdict_rows(operation)
            by_status: dict[str, list[str]] = {}
            for row in verdicts:
                by_status.setdefault(row.status, []).append(row.name)
            context.update(
                verdicts=verdicts,
                # "BLOCKED 1: trusted" first: what went wrong, before the table of every scenario.
                verdict_summary=sorted(by_status.items(), key=lambda item: item[0] == "READY"),
                envelope_warnings=envelope.warnings if envelope else [],
                comparison_metrics=json.dumps(envelope.comparison_metrics, indent=2) if envelope else None,
                error_json=json.dumps(operation.error, indent=2, ensure_ascii=False) if operation.error else None,
                timeline=_timeline(operation, tasks),
                tasks=tasks,
                result_size=result_size,
                request_size=request_size,
                result_viewable=result_size is not None and result_size <= PRETTY_MAX_BYTES,
                request_viewable=request_size <= PRETTY_MAX_BYTES,
                can_cancel=self.has_cancel_permission(request) and not operation.is_terminal,
                document_urls={name: reverse(f"admin:operations_operation_{name}", args=[quote(operation.id)])
                               for name in ("request_download", "result_download", "request_view",
                                            "result_view", "cancel")},
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        context = {**(extra_context or {}), "can_purge": self.has_purge_permission(request),
                   "purge_url": reverse("admin:operations_operation_purge")}
        return super().changelist_view(request, extra_context=context)

    # --- permissions: read-only; cancel by permission; purge for superusers ----------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Operation | None = None) -> bool:
        return False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CANCEL_PERMISSION)

    def has_purge_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    # --- the pages of one operation's documents, and the two actions ---------------------------

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        mine = [
            path("purge/", site.admin_view(require_POST(self.purge_view)), name="operations_operation_purge"),
            path("<path:object_id>/cancel/", site.admin_view(require_POST(self.cancel_view)),
                 name="operations_operation_cancel"),
            path("<path:object_id>/request.json", site.admin_view(self.request_download_view),
                 name="operations_operation_request_download"),
            path("<path:object_id>/result.json", site.admin_view(self.result_download_view),
                 name="operations_operation_result_download"),
            path("<path:object_id>/request/", site.admin_view(self.request_view),
                 name="operations_operation_request_view"),
            path("<path:object_id>/result/", site.admin_view(self.result_view),
                 name="operations_operation_result_view"),
        ]
        return mine + super().get_urls()

    def _viewable(self, request: HttpRequest, object_id: str) -> Operation:
        operation = self.get_object(request, unquote(object_id))
        if operation is None:
            raise Http404("no such operation")
        if not self.has_view_permission(request, operation):
            raise PermissionDenied
        return operation

    def request_download_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        operation = self._viewable(request, object_id)
        response = StreamingHttpResponse(operation_request_chunks(operation.id), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{operation.id}-request.json"'
        return response

    def result_download_view(self, request: HttpRequest, object_id: str) -> StreamingHttpResponse:
        operation = self._viewable(request, object_id)
        if operation.result_envelope is None:
            raise Http404("this operation has no result")
        # The stored frames are decompressed in 1 MB chunks as the answer is sent, one scenario
        # row fetched at a time (operations/results.py).
        body = body_encode(operation_result_pieces(operation), IDENTITY)
        response = StreamingHttpResponse(body.chunks, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{operation.id}-result.json"'
        if body.length is not None:
            response["Content-Length"] = str(body.length)
        return response

    def _document_page(self, request: HttpRequest, operation: Operation, name: str, text: bytes | None,
                       download_url: str) -> TemplateResponse:
        pretty = None
        if text is not None:
            pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        context = {**self.admin_site.each_context(request), "opts": self.opts, "operation": operation,
                   "title": f"{operation.id}: {name}", "pretty": pretty, "download_url": download_url,
                   "limit": PRETTY_MAX_BYTES}
        return TemplateResponse(request, "admin/operations/operation/document.html", context)

    def request_view(self, request: HttpRequest, object_id: str) -> TemplateResponse:
        operation = self._viewable(request, object_id)
        small = operation_request_length(operation.id) <= PRETTY_MAX_BYTES
        text = b"".join(operation_request_chunks(operation.id)) if small else None
        return self._document_page(request, operation, "request", text, reverse(
            "admin:operations_operation_request_download", args=[quote(operation.id)]))

    def result_view(self, request: HttpRequest, object_id: str) -> TemplateResponse:
        operation = self._viewable(request, object_id)
        size = operation_result_size(operation)
        if size is None:
            raise Http404("this operation has no result")
        text = b"".join(body_encode(operation_result_pieces(operation), IDENTITY).chunks) \
            if size <= PRETTY_MAX_BYTES else None
        return self._document_page(request, operation, "result", text, reverse(
            "admin:operations_operation_result_download", args=[quote(operation.id)]))

    def _cancel(self, request: HttpRequest, operation_id: str) -> str | None:
        """Cancels through the API's service; what happened, or None when it had finished or gone."""
        try:
            operation = operation_cancel(operation_id, scope=OPERATIONS_ALL)
        except (OperationNotCancellable, OperationNotFound):  # finished or gone meanwhile
            return None
        message = ("Cancel requested (the run stops before its next scenario)"
                   if operation.status == OperationStatus.RUNNING else "Cancelled")
        logger.info("support console: %s cancelled operation %s", request.user.get_username(), operation_id)
        self.log_change(request, operation, f"{message} from the support console.")
        return message

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponseRedirect:
        operation = self._viewable(request, object_id)
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        message = self._cancel(request, operation.id)
        if message is None:
            self.message_user(request, f"{operation.id} is already finished or expired.", messages.WARNING)
        else:
            self.message_user(request, f"{message}: {operation.id}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:operations_operation_change", args=[quote(operation.id)]))

    @admin.action(description="Cancel the selected operations", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Operation]) -> None:
        cancelled = refused = 0
        for operation_id in queryset.values_list("id", flat=True):
            if self._cancel(request, operation_id) is None:
                refused += 1
            else:
                cancelled += 1
        self.message_user(request, f"Cancelled {cancelled} operation(s); {refused} already finished or expired.",
                          messages.SUCCESS if not refused else messages.WARNING)

    def purge_view(self, request: HttpRequest) -> HttpResponseRedirect:
        if not self.has_purge_permission(request):
            raise PermissionDenied
        done = operations_maintain()
        message = (f"Purged {done.purged} expired operation(s); settled {done.recovered} RUNNING operation(s) "
                   "with an expired lease.")
        logger.info("support console: %s ran the purge: %s", request.user.get_username(), message)
        # No single object: the history entry is on the operations' content type.
        LogEntry.objects.create(
            user_id=int(request.user.pk or 0), content_type=ContentType.objects.get_for_model(Operation),
            object_id=None, object_repr="expired operations", action_flag=CHANGE, change_message=message,
        )
        self.message_user(request, message, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:operations_operation_changelist"))
