"""HTTP face of the async operations (spec/api.md sections 1 to 4): parse, call one service, answer.

Errors are raised by the services as problems (operations.errors) and turned into responses by the
one exception handler; nothing here catches.
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dpm_async.correlation import CORRELATION_HEADER, correlation_id_of_request
from dpm_async.encoding import Piece, encoded_response, request_coding, wants_single_frame
from dpm_async.openapi import (
    BATCH_TOO_LARGE_DESCRIPTION,
    REQUEST_TOO_LARGE_DESCRIPTION,
    THROTTLED_DESCRIPTION,
    TOO_MANY_AUTH_FAILURES_DESCRIPTION,
    Shape,
    encoded_answer_headers,
    problem_responses,
)
from dpm_async.throttles import SubmitRateThrottle
from operations.access import OperationScope, operation_scope_for_user
from operations.config import manual_execution_check, manual_execution_enabled, operations_enabled_check
from operations.errors import OperationResultNotReady, ScenarioResultNotFound
from operations.execution import operation_execute
from operations.links import operation_status_url
from operations.maintenance import (
    operation_get_by_correlation_current,
    operation_get_current,
    operations_list_current,
)
from operations.models import Operation, OperationStatus
from operations.resource import (
    OperationOverview,
    OperationPage,
    OperationResource,
    operation_etag,
    operation_overview_json,
    operation_resource_pieces,
    operation_summary,
    retry_after_seconds,
    scenario_result_etag,
)
from operations.results import operation_scenario_result
from operations.serializers import OperationListQuerySerializer, cursor_encode, operation_list_query_parse
from operations.services import operation_cancel
from operations.submission import operation_submit
from rebalance.batch import BatchRebalanceRequest
from rebalance.cost import batch_cost_check
from rebalance.engine.shapes import SCENARIO_NAME_PATTERN
from rebalance.engine.wire_types import RebalanceResult
from rebalance.parsing import batch_request_parse

LOCATION_HEADER = "Location"
RETRY_AFTER_HEADER = "Retry-After"
IDEMPOTENT_REPLAYED_HEADER = "Idempotent-Replayed"
ETAG_HEADER = "ETag"
IF_NONE_MATCH_META_KEY = "HTTP_IF_NONE_MATCH"
# A resource whose result is larger than this is streamed (its stored frames fetched one at a time
# as it is sent); a smaller one is built whole, which costs less for a few hundred KB.
STREAM_ABOVE_BYTES = 1 << 20
_SCENARIO_NAME = re.compile(SCENARIO_NAME_PATTERN)
# The instant `Retry-After` is estimated at (a test sets its own).
clock = timezone.now

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
    RETRY_AFTER_HEADER, location=OpenApiParameter.HEADER, response=[200, 202, 304], type=int,
    description="Seconds to wait before polling again, 1 to 30, from the progress so far (time per finished "
    "scenario times scenarios left); sent while the operation is PENDING or RUNNING.",
)
_ETAG_RESPONSE = OpenApiParameter(
    ETAG_HEADER, location=OpenApiParameter.HEADER, response=[200, 202, 304], required=True, type=str,
    description="A weak validator of the operation's current state: send it back as `If-None-Match` to be "
    "answered 304 while nothing changed.",
)
_IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match", location=OpenApiParameter.HEADER, required=False, type=str,
    description="The `ETag` of an earlier answer: 304 without a body while it is still current.",
)
_ENCODED = encoded_answer_headers([200, 202], not_modified=True)
_CONDITIONAL = [_IF_NONE_MATCH, _ETAG_RESPONSE]
_NOT_MODIFIED = OpenApiResponse(response=None, description="Not modified: `If-None-Match` names the current `ETag`. No body.")
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


def _not_modified(request: HttpRequest, etag: str) -> bool:
    """`If-None-Match` names `etag` (weak comparison, RFC 9110 section 13.1.2), or is `*`."""
    header = request.META.get(IF_NONE_MATCH_META_KEY)
    if not header:
        return False
    tags = parse_etags(header)
    return "*" in tags or any(_weak(tag) == _weak(etag) for tag in tags)


def _weak(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def _not_modified_response(etag: str, retry_after: int | None) -> HttpResponse:
    response = HttpResponse(status=304)
    del response["Content-Type"]
    response[ETAG_HEADER] = etag
    if retry_after is not None:
        response[RETRY_AFTER_HEADER] = str(retry_after)
    patch_vary_headers(response, ("Accept-Encoding",))
    return response


def _with_state_headers(response: HttpResponse | StreamingHttpResponse, etag: str,
                        retry_after: int | None) -> HttpResponse | StreamingHttpResponse:
    response[ETAG_HEADER] = etag
    if retry_after is not None:
        response[RETRY_AFTER_HEADER] = str(retry_after)
    return response


def _operation_response(request: HttpRequest, operation: Operation, *, status: int = 200,
                        replayed: bool = False, location: bool = False,
                        conditional: bool = False) -> HttpResponse | StreamingHttpResponse:
    """The resource in the caller's coding, with `ETag`, `Vary`, and `Retry-After` while unfinished;
    304 when `conditional` (a GET) and `If-None-Match` names the current state."""
    executable_enabled = manual_execution_enabled()
    etag = operation_etag(operation, executable_enabled=executable_enabled)
    retry_after = retry_after_seconds(operation, clock())
    if conditional and _not_modified(request, etag):
        return _not_modified_response(etag, retry_after)
    pieces = list(operation_resource_pieces(operation, executable_enabled=executable_enabled))
    response = encoded_response(pieces, request_coding(request), status=status, stream=_is_large(pieces),
                                single_frame=wants_single_frame(request))
    if location:
        response[LOCATION_HEADER] = operation_status_url(operation.id)
    if replayed:
        response[IDEMPOTENT_REPLAYED_HEADER] = "true"
    return _with_state_headers(response, etag, retry_after)


def _is_large(pieces: list[Piece]) -> bool:
    return sum(len(p) if isinstance(p, bytes) else p.size for p in pieces) > STREAM_ABOVE_BYTES


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

    throttle_classes = [SubmitRateThrottle]

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
                    _REPLAYED_RESPONSE, _ETAG_RESPONSE, *_ENCODED],
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
                    413: f"{REQUEST_TOO_LARGE_DESCRIPTION} {BATCH_TOO_LARGE_DESCRIPTION}",
                    415: "`UNSUPPORTED_MEDIA_TYPE`: the body is not application/json.",
                    429: f"{THROTTLED_DESCRIPTION} `DPM_ASYNC_TOO_MANY_UNFINISHED_OPERATIONS`: the caller has "
                    "`DPM_ASYNC_MAX_UNFINISHED_PER_OWNER` operations PENDING or RUNNING; try again after "
                    f"`Retry-After` seconds. {TOO_MANY_AUTH_FAILURES_DESCRIPTION}",
                },
                writes=True,
            ),
        },
        tags=["operations"],
    )
    def post(self, request: Request) -> HttpResponse | StreamingHttpResponse:
        batch = batch_request_parse(request.data)
        batch_cost_check(batch)
        submission = operation_submit(
            batch, correlation_id=correlation_id_of_request(), owner_id=self.scope(request).owner_id
        )
        return _operation_response(
            request,
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
        page = operations_list_current(query.filters, scope=self.scope(request), limit=query.limit, after=query.after)
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
        description=(
            "With `result` once SUCCEEDED and `error` once FAILED; `progress` and `scenario_statuses` "
            "while it runs; `Retry-After` while unfinished. A finished result is streamed from storage; "
            "a client that accepts `zstd` gets the stored compressed bytes as they are. "
            "`If-None-Match` with the current `ETag`: 304."
        ),
        parameters=[_OPERATION_ID, _CORRELATION_RESPONSE, _RETRY_AFTER_RESPONSE, *_CONDITIONAL, *_ENCODED],
        responses={200: Shape(OperationResource), 304: _NOT_MODIFIED,
                   **problem_responses({404: f"{_DISABLED} {_NOT_FOUND}"})},
        tags=["operations"],
    )
    def get(self, request: Request, operation_id: str) -> HttpResponse | StreamingHttpResponse:
        return _operation_response(request, operation_get_current(operation_id, scope=self.scope(request)), conditional=True)


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
            *_CONDITIONAL,
            *_ENCODED,
        ],
        responses={200: Shape(OperationResource), 304: _NOT_MODIFIED,
                   **problem_responses({404: f"{_DISABLED} {_NOT_FOUND}"})},
        tags=["operations"],
    )
    def get(self, request: Request, correlation_id: str) -> HttpResponse | StreamingHttpResponse:
        operation = operation_get_by_correlation_current(correlation_id, scope=self.scope(request))
        return _operation_response(request, operation, conditional=True)


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
        parameters=[_OPERATION_ID, _CORRELATION_RESPONSE, _ETAG_RESPONSE, *_ENCODED],
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
    def post(self, request: Request, operation_id: str) -> HttpResponse | StreamingHttpResponse:
        manual_execution_check()
        return _operation_response(request, operation_execute(operation_id, scope=self.scope(request)))


class OperationCancelView(OperationsAPIView):
    """`POST /rebalance/operations/{operation_id}/cancel`."""

    @extend_schema(
        operation_id="operation_cancel",
        summary="Cancel an unfinished operation",
        description=(
            "A PENDING operation becomes FAILED with `OPERATION_CANCELLED` at once. A RUNNING one "
            "stops before its next scenario and then ends the same way; the answer still shows it "
            "RUNNING, with `cancel_requested: true`. A finished one is a 409. Only the owner cancels "
            "an operation (staff cancel through the admin)."
        ),
        request=None,
        parameters=[_OPERATION_ID, _CORRELATION_RESPONSE, _RETRY_AFTER_RESPONSE, _ETAG_RESPONSE, *_ENCODED],
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
    def post(self, request: Request, operation_id: str) -> HttpResponse | StreamingHttpResponse:
        return _operation_response(request, operation_cancel(operation_id, scope=self.scope(request)))


class OperationSummaryView(OperationsAPIView):
    """`GET /rebalance/operations/{operation_id}/summary`: the resource with the envelope, not the result."""

    @extend_schema(
        operation_id="operation_summary",
        summary="Get an operation without its result: progress, verdicts and the batch envelope",
        description=(
            "The operation resource with `result_summary` (the result without `results`: "
            "`comparison_metrics`, `failed_scenarios`, `warnings`, ...) instead of `result`, and each "
            "scenario's status in `scenario_statuses`. Never reads the stored result: a few KB whatever "
            "its size. `If-None-Match` with the current `ETag`: 304."
        ),
        parameters=[_OPERATION_ID, _CORRELATION_RESPONSE, _RETRY_AFTER_RESPONSE, *_CONDITIONAL, *_ENCODED],
        responses={200: Shape(OperationOverview), 304: _NOT_MODIFIED,
                   **problem_responses({404: f"{_DISABLED} {_NOT_FOUND}"})},
        tags=["operations"],
    )
    def get(self, request: Request, operation_id: str) -> HttpResponse | StreamingHttpResponse:
        operation = operation_get_current(operation_id, scope=self.scope(request))
        executable_enabled = manual_execution_enabled()
        etag = operation_etag(operation, executable_enabled=executable_enabled)
        retry_after = retry_after_seconds(operation, clock())
        if _not_modified(request, etag):
            return _not_modified_response(etag, retry_after)
        body = operation_overview_json(operation, executable_enabled=executable_enabled)
        return _with_state_headers(encoded_response([body], request_coding(request)), etag, retry_after)


class OperationScenarioResultView(OperationsAPIView):
    """`GET /rebalance/operations/{operation_id}/results/{scenario_name}`: one scenario's result."""

    @extend_schema(
        operation_id="operation_scenario_result",
        summary="Get one scenario's result of a finished operation",
        description=(
            "Exactly the `RebalanceResult` the full result holds under `results.<scenario_name>`, byte "
            "for byte, read alone from storage. A client that accepts `zstd` gets the stored compressed "
            "bytes as they are. `If-None-Match` with the current `ETag`: 304."
        ),
        parameters=[
            _OPERATION_ID,
            OpenApiParameter("scenario_name", location=OpenApiParameter.PATH, type=str,
                             description="A scenario name of the batch (`[a-z0-9_-]{1,64}`)."),
            _CORRELATION_RESPONSE,
            *_CONDITIONAL,
            *_ENCODED,
        ],
        responses={
            200: Shape(RebalanceResult),
            304: _NOT_MODIFIED,
            **problem_responses(
                {
                    404: f"{_DISABLED} {_NOT_FOUND} `DPM_ASYNC_SCENARIO_RESULT_NOT_FOUND`: the operation has no "
                    "result under that name: no such scenario (`scenario_name` names it), or it failed (the "
                    "detail gives its reason, as `failed_scenarios` does).",
                    409: "`DPM_ASYNC_OPERATION_RESULT_NOT_READY`: the operation has not SUCCEEDED: it is PENDING "
                    "or RUNNING (poll it), or FAILED (see its `error`); `operation_status` says which.",
                }
            ),
        },
        tags=["operations"],
    )
    def get(self, request: Request, operation_id: str, scenario_name: str) -> HttpResponse | StreamingHttpResponse:
        operation = operation_get_current(operation_id, scope=self.scope(request))
        if operation.status != OperationStatus.SUCCEEDED:
            raise OperationResultNotReady(operation.id, operation.status)
        if not _SCENARIO_NAME.fullmatch(scenario_name):
            raise ScenarioResultNotFound(operation.id, None)
        etag = scenario_result_etag(operation, scenario_name)
        if _not_modified(request, etag):
            return _not_modified_response(etag, None)
        result = operation_scenario_result(operation, scenario_name)
        pieces: list[Piece] = [result.frame]
        response = encoded_response(pieces, request_coding(request), stream=result.frame.size > STREAM_ABOVE_BYTES)
        response[ETAG_HEADER] = etag
        return response
