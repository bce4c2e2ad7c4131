"""HTTP face of the async operations (spec/api.md sections 1 to 4): parse, call one service, answer.

Errors are raised by the services as problems (operations.errors) and turned into responses by the
one exception handler; nothing here catches.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dpm_async.correlation import CORRELATION_HEADER, correlation_id_of_request
from dpm_async.openapi import Shape, problem_responses
from operations.access import OperationScope, operation_scope_for_user
from operations.config import manual_execution_check, manual_execution_enabled, operations_enabled_check
from operations.execution import operation_execute
from operations.links import operation_status_url
from operations.models import Operation
from operations.resource import OperationPage, OperationResource, operation_resource_json, operation_summary
from operations.selectors import operation_get, operation_get_by_correlation, operations_list
from operations.serializers import OperationListQuerySerializer, cursor_encode, operation_list_query_parse
from operations.services import operation_cancel
from operations.submission import operation_submit
from rebalance.batch import BatchRebalanceRequest
from rebalance.parsing import batch_request_parse

LOCATION_HEADER = "Location"
RETRY_AFTER_HEADER = "Retry-After"
IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"
# Seconds a client should wait before polling an unfinished operation again.
RETRY_AFTER_SECONDS = 1

# --- OpenAPI pieces --------------------------------------------------------------------------

_CORRELATION_REQUEST = OpenApiParameter(
    CORRELATION_HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Caller's correlation id (`[A-Za-z0-9._-]{1,128}`); generated when absent. It becomes "
    "the operation's correlation id.",
)
_CORRELATION_RESPONSE = OpenApiParameter(
    CORRELATION_HEADER, location=OpenApiParameter.HEADER, response=True, required=True,
    description="The request's resolved correlation id.",
)
_LOCATION_RESPONSE = OpenApiParameter(
    LOCATION_HEADER, location=OpenApiParameter.HEADER, response=[200, 202], required=True,
    description="The operation's `status_url`.",
)
_RETRY_AFTER_RESPONSE = OpenApiParameter(
    RETRY_AFTER_HEADER, location=OpenApiParameter.HEADER, response=[200, 202], type=int,
    description="Seconds to wait before polling again; sent while the operation is PENDING or RUNNING.",
)
_REPLAYED_RESPONSE = OpenApiParameter(
    IDEMPOTENT_REPLAYED_HEADER, location=OpenApiParameter.HEADER, response=[200], type=str, enum=["true"],
    description="`true` when an identical earlier submission is returned instead of a new operation.",
)
_OPERATION_ID = OpenApiParameter("operation_id", location=OpenApiParameter.PATH, type=str,
                                 description="`dop_` and 32 hex digits.")
_DISABLED = "`DPM_ASYNC_OPERATIONS_DISABLED`: async operations are switched off."
_NOT_FOUND = ("`DPM_ASYNC_OPERATION_NOT_FOUND`: no such operation, it expired, or it belongs to another "
              "user (for the caller it does not exist).")
_NOT_OWNED = ("`DPM_ASYNC_OPERATION_NOT_OWNED`: staff can read this operation but only its owner can "
              "execute or cancel it. `PERMISSION_DENIED`: a session caller without the CSRF token.")


def _operation_response(operation: Operation, *, status: int = 200, replayed: bool = False,
                        location: bool = False) -> HttpResponse:
    response = HttpResponse(
        operation_resource_json(operation, executable_enabled=manual_execution_enabled()),
        status=status,
        content_type="application/json",
    )
    if location:
        response[LOCATION_HEADER] = operation_status_url(operation.id)
    if not operation.is_terminal:
        response[RETRY_AFTER_HEADER] = str(RETRY_AFTER_SECONDS)
    if replayed:
        response[IDEMPOTENT_REPLAYED_HEADER] = "true"
    return response


class OperationsAPIView(APIView):
    """Every operations endpoint answers 404 DPM_ASYNC_OPERATIONS_DISABLED when they are off."""

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        operations_enabled_check()

    @staticmethod
    def scope(request: Request) -> OperationScope:
        """Which operations the caller sees and acts on (operations/access.py)."""
        return operation_scope_for_user(request.user)


class RebalanceAnalysisAsyncView(OperationsAPIView):
    """`POST /rebalance/analyze/async`: accept a batch as an operation."""

    @extend_schema(
        operation_id="rebalance_analyze_async",
        summary="Submit a what-if batch as an operation",
        description=(
            "Validates the body exactly like `POST /rebalance/analyze` and stores it as an "
            "operation. By `DPM_ASYNC_EXECUTION_MODE`: `INLINE` runs it before answering (202 with "
            "the finished operation); `ACCEPT_ONLY` and `WORKER` answer at once with it PENDING. "
            "Submitting again with the same `X-Correlation-Id` and the same body returns the "
            "existing operation (200, `Idempotent-Replayed: true`)."
        ),
        request=Shape(BatchRebalanceRequest),
        parameters=[_CORRELATION_REQUEST, _CORRELATION_RESPONSE, _LOCATION_RESPONSE, _RETRY_AFTER_RESPONSE,
                    _REPLAYED_RESPONSE],
        responses={
            202: OpenApiResponse(Shape(OperationResource), description="Accepted; the operation with its true status."),
            200: OpenApiResponse(Shape(OperationResource), description="Replay of an identical earlier submission."),
            **problem_responses(
                {
                    400: "`VALIDATION_ERROR` / `MALFORMED_JSON`: the body is invalid; `errors` names each "
                    "field. `INVALID_CORRELATION_ID`: bad `X-Correlation-Id`.",
                    404: _DISABLED,
                    409: "`DPM_ASYNC_OPERATION_CORRELATION_CONFLICT`: the correlation id belongs to an "
                    "operation submitted with a different body (`operation_id`, `status_url` name it).",
                    413: "`REQUEST_TOO_LARGE`: the body is larger than the configured limit.",
                    415: "`UNSUPPORTED_MEDIA_TYPE`: the body is not application/json.",
                },
                writes=True,
            ),
        },
        tags=["operations"],
    )
    def post(self, request: Request) -> HttpResponse:
        batch = batch_request_parse(request.data)
        submission = operation_submit(
            batch, correlation_id=correlation_id_of_request(), owner_id=self.scope(request).owner_id
        )
        return _operation_response(
            submission.operation,
            status=200 if submission.replayed else 202,
            replayed=submission.replayed,
            location=True,
        )


class OperationListView(OperationsAPIView):
    """`GET /rebalance/operations`: newest first, filtered, keyset-paged."""

    @extend_schema(
        operation_id="operations_list",
        summary="List operations",
        description="Newest first. Items carry no `result` or `error`. Unknown parameters are a 400.",
        parameters=[OperationListQuerySerializer, _CORRELATION_RESPONSE],
        responses={
            200: Shape(OperationPage),
            **problem_responses(
                {
                    400: "`VALIDATION_ERROR`: an unknown, repeated or invalid query parameter (`errors`). "
                    "`INVALID_CORRELATION_ID`: bad `X-Correlation-Id`.",
                    404: _DISABLED,
                }
            ),
        },
        tags=["operations"],
    )
    def get(self, request: Request) -> Response:
        query = operation_list_query_parse(request.query_params)
        page = operations_list(query.filters, scope=self.scope(request), limit=query.limit, after=query.after)
        executable_enabled = manual_execution_enabled()
        body: OperationPage = {
            "items": [operation_summary(item, executable_enabled=executable_enabled) for item in page.items],
            "next_cursor": cursor_encode(page.next_key) if page.next_key else None,
        }
        return Response(body)


class OperationDetailView(OperationsAPIView):
    """`GET /rebalance/operations/{operation_id}`."""

    @extend_schema(
        operation_id="operation_get",
        summary="Get an operation",
        description="With `result` once SUCCEEDED and `error` once FAILED; `Retry-After` while unfinished.",
        parameters=[_OPERATION_ID, _CORRELATION_RESPONSE, _RETRY_AFTER_RESPONSE],
        responses={200: Shape(OperationResource), **problem_responses({404: f"{_DISABLED} {_NOT_FOUND}"})},
        tags=["operations"],
    )
    def get(self, request: Request, operation_id: str) -> HttpResponse:
        return _operation_response(operation_get(operation_id, scope=self.scope(request)))


class OperationByCorrelationView(OperationsAPIView):
    """`GET /rebalance/operations/by-correlation/{correlation_id}`."""

    @extend_schema(
        operation_id="operation_get_by_correlation",
        summary="Get the operation with a correlation id",
        parameters=[
            OpenApiParameter("correlation_id", location=OpenApiParameter.PATH, type=str,
                             description="The `X-Correlation-Id` the operation was submitted with."),
            _CORRELATION_RESPONSE,
            _RETRY_AFTER_RESPONSE,
        ],
        responses={200: Shape(OperationResource), **problem_responses({404: f"{_DISABLED} {_NOT_FOUND}"})},
        tags=["operations"],
    )
    def get(self, request: Request, correlation_id: str) -> HttpResponse:
        return _operation_response(operation_get_by_correlation(correlation_id, scope=self.scope(request)))


class OperationExecuteView(OperationsAPIView):
    """`POST /rebalance/operations/{operation_id}/execute`: run a PENDING operation now."""

    @extend_schema(
        operation_id="operation_execute",
        summary="Execute a PENDING operation",
        description=(
            "Claims the operation and runs it within this request, whatever the execution mode. "
            "200 with the finished operation, also when the run FAILED (see `error`). Checks, in "
            "order: operations disabled (404), manual execution disabled (404), unknown, expired or "
            "another user's (404; 403 for staff who can read it), not PENDING or claimed by a "
            "concurrent caller (409)."
        ),
        request=None,
        parameters=[_OPERATION_ID, _CORRELATION_RESPONSE],
        responses={
            200: Shape(OperationResource),
            **problem_responses(
                {
                    403: _NOT_OWNED,
                    404: f"{_DISABLED} `DPM_ASYNC_MANUAL_EXECUTION_DISABLED`: execute is switched off. "
                    f"{_NOT_FOUND}",
                    409: "`DPM_ASYNC_OPERATION_NOT_EXECUTABLE`: the operation is not PENDING "
                    "(`operation_status` says what it is).",
                }
            ),
        },
        tags=["operations"],
    )
    def post(self, request: Request, operation_id: str) -> HttpResponse:
        manual_execution_check()
        return _operation_response(operation_execute(operation_id, scope=self.scope(request)))


class OperationCancelView(OperationsAPIView):
    """`POST /rebalance/operations/{operation_id}/cancel`."""

    @extend_schema(
        operation_id="operation_cancel",
        summary="Cancel an unfinished operation",
        description=(
            "A PENDING operation becomes FAILED with `OPERATION_CANCELLED` at once. A RUNNING one "
            "stops before its next scenario and then ends the same way; the answer still shows it "
            "RUNNING. A finished one is a 409. Only the owner cancels an operation (staff cancel "
            "through the admin)."
        ),
        request=None,
        parameters=[_OPERATION_ID, _CORRELATION_RESPONSE, _RETRY_AFTER_RESPONSE],
        responses={
            200: Shape(OperationResource),
            **problem_responses(
                {
                    403: _NOT_OWNED,
                    404: f"{_DISABLED} {_NOT_FOUND}",
                    409: "`DPM_ASYNC_OPERATION_NOT_CANCELLABLE`: the operation already finished "
                    "(`operation_status` says how).",
                }
            ),
        },
        tags=["operations"],
    )
    def post(self, request: Request, operation_id: str) -> HttpResponse:
        return _operation_response(operation_cancel(operation_id, scope=self.scope(request)))
