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


def problem_responses(descriptions: dict[int, str]) -> dict[Any, OpenApiResponse]:
    """`responses=` entries for error statuses, documented as application/problem+json."""
    return {
        (status, PROBLEM_CONTENT_TYPE): OpenApiResponse(
            response=ProblemSerializer,
            description=description,
            examples=[
                OpenApiExample(
                    f"problem {status}",
                    value={
                        "type": "https://dpm-async.dev/problems/validation-error",
                        "title": "Bad Request",
                        "status": status,
                        "detail": description,
                        "code": "VALIDATION_ERROR",
                        "correlation_id": "corr_0f2a9c1b6d7e4f3a8b5c2d1e0f9a8b7c",
                    },
                )
            ] if status == 400 else [],
        )
        for status, description in descriptions.items()
    }
