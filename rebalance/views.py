"""HTTP face of the rebalance domain: parse and validate, call one service, return."""

from __future__ import annotations

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.views import APIView

from dpm_async.correlation import CORRELATION_HEADER, correlation_id_supplied
from dpm_async.encoding import (
    ZSTD,
    Frame,
    encoded_response,
    request_coding,
    wants_single_frame,
    zstd_compress,
)
from dpm_async.openapi import (
    BATCH_TOO_LARGE_DESCRIPTION,
    REQUEST_TOO_LARGE_DESCRIPTION,
    THROTTLED_DESCRIPTION,
    TOO_MANY_AUTH_FAILURES_DESCRIPTION,
    Shape,
    encoded_answer_headers,
    problem_responses,
)
from dpm_async.throttles import AnalyzeRateThrottle
from rebalance.batch import BatchRebalanceRequest, BatchRebalanceResult
from rebalance.cost import batch_cost_check
from rebalance.parsing import batch_request_parse
from rebalance.services import batch_result_pieces, rebalance_analyze_batch

CORRELATION_PARAMETER = OpenApiParameter(
    CORRELATION_HEADER,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Caller's correlation id (`[A-Za-z0-9._-]{1,128}`); generated when absent and echoed on every response.",
)


class RebalanceAnalysisView(APIView):
    """`POST /rebalance/analyze`: the canonical synchronous what-if batch."""

    throttle_classes = [AnalyzeRateThrottle]

    @extend_schema(
        operation_id="rebalance_analyze",
        summary="Run a what-if batch synchronously",
        description=(
            "Runs up to 20 option scenarios over one portfolio, market data, model portfolio and "
            "shelf. A scenario with invalid options or a fault is listed in `failed_scenarios`; "
            "the batch still answers 200 and carries the warning `PARTIAL_BATCH_FAILURE`."
        ),
        request=Shape(BatchRebalanceRequest),
        parameters=[CORRELATION_PARAMETER, *encoded_answer_headers([200])],
        responses={
            200: Shape(BatchRebalanceResult),
            **problem_responses(
                {
                    400: "`VALIDATION_ERROR` / `MALFORMED_JSON`: the body is not valid JSON or fails "
                    "validation; `errors` names each field. `INVALID_CORRELATION_ID`: bad `X-Correlation-Id`.",
                    413: f"{REQUEST_TOO_LARGE_DESCRIPTION} {BATCH_TOO_LARGE_DESCRIPTION}",
                    415: "`UNSUPPORTED_MEDIA_TYPE`: the body is not application/json.",
                    429: f"{THROTTLED_DESCRIPTION} {TOO_MANY_AUTH_FAILURES_DESCRIPTION}",
                },
                writes=True,
            ),
        },
        tags=["rebalance"],
    )
    def post(self, request: Request) -> HttpResponse | StreamingHttpResponse:
        batch = batch_request_parse(request.data)
        batch_cost_check(batch)
        coding = request_coding(request)
        if coding != ZSTD:
            outcome = rebalance_analyze_batch(batch, correlation_id=correlation_id_supplied())
            return encoded_response([outcome.json()], coding)
        # A zstd caller gets each scenario's text compressed as soon as it is encoded: the answer
        # is those frames in order, and the batch holds ~6 MB instead of ~70 MB meanwhile.
        outcome = rebalance_analyze_batch(batch, correlation_id=correlation_id_supplied(), keep=zstd_compress)
        frames = ((s.name, Frame(s.body, s.size, len(s.body))) for s in outcome.scenarios)
        return encoded_response(batch_result_pieces(outcome.head(), frames, outcome.tail()), coding,
                                single_frame=wants_single_frame(request))
