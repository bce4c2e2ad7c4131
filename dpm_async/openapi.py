"""Shared pieces of the OpenAPI document: the problem body and the error responses."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse
from rest_framework import serializers

from dpm_async.problems import PROBLEM_CONTENT_TYPE


class ProblemFieldErrorSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="Path of the offending value, e.g. `portfolio_snapshot.positions[3].quantity`.")
    message = serializers.CharField()


class ProblemSerializer(serializers.Serializer):
    """An RFC 9457 problem; `code` is stable and documented, `detail` is for people."""

    type = serializers.CharField()
    title = serializers.CharField()
    status = serializers.IntegerField()
    detail = serializers.CharField()
    code = serializers.CharField(help_text="Stable UPPER_SNAKE code, listed in docs/api.md.")
    correlation_id = serializers.CharField(allow_null=True)
    errors = ProblemFieldErrorSerializer(many=True, required=False, help_text="Present on 400s about the body.")


# Answers every endpoint can give before its view runs, documented on each.
INVALID_CORRELATION_ID_DESCRIPTION = "`INVALID_CORRELATION_ID`: `X-Correlation-Id` does not match `[A-Za-z0-9._-]{1,128}`."
NOT_AUTHENTICATED_DESCRIPTION = (
    "`NOT_AUTHENTICATED`: no credentials, or an unknown or revoked token (`WWW-Authenticate: Token`). "
    "Send `Authorization: Token <key>`."
)

_EXAMPLES = {
    400: ("validation-error", "Bad Request", "VALIDATION_ERROR", None),
    401: ("not-authenticated", "Unauthorized", "NOT_AUTHENTICATED", "Authentication credentials were not provided."),
}


def _examples(status: int, description: str) -> list[OpenApiExample]:
    if status not in _EXAMPLES:
        return []
    slug, title, code, detail = _EXAMPLES[status]
    return [
        OpenApiExample(
            f"problem {status}",
            value={
                "type": f"https://dpm-async.dev/problems/{slug}",
                "title": title,
                "status": status,
                "detail": detail or description,
                "code": code,
                "correlation_id": "corr_0f2a9c1b6d7e4f3a8b5c2d1e0f9a8b7c",
            },
        )
    ]


def problem_responses(descriptions: dict[int, str], *, authenticated: bool = True) -> dict[Any, OpenApiResponse]:
    """`responses=` entries for error statuses, documented as application/problem+json.

    Every endpoint also gets the 400 of a bad `X-Correlation-Id` (unless it documents its own 400,
    which should name it) and, when `authenticated`, the 401 of a caller without credentials.
    """
    descriptions = dict(descriptions)
    descriptions.setdefault(400, INVALID_CORRELATION_ID_DESCRIPTION)
    if authenticated:
        descriptions.setdefault(401, NOT_AUTHENTICATED_DESCRIPTION)
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            response=ProblemSerializer,
            description=description,
            examples=_examples(status, description),
        )
        for status, description in sorted(descriptions.items())
    }
