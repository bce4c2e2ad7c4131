"""Request body limit: a body larger than DPM_MAX_REQUEST_BYTES is refused before it is read."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from dpm_async.problems import REQUEST_TOO_LARGE, problem_response


class RequestBodyLimitMiddleware:
    """Answers 413 from the declared Content-Length alone, so an oversized body is never buffered.

    A body without a Content-Length (chunked) is bounded where it is read, in the JSON parser.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                length = int(declared)
            except ValueError:
                return problem_response(400, "INVALID_CONTENT_LENGTH", "Content-Length is not a number.")
            limit = settings.DPM_MAX_REQUEST_BYTES
            if length > limit:
                return problem_response(
                    413,
                    REQUEST_TOO_LARGE,
                    f"The request body is {length} bytes; the limit is {limit} bytes.",
                    headers={"Connection": "close"},
                )
        return self.get_response(request)
