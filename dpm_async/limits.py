"""Request body limit: a body larger than DPM_MAX_REQUEST_BYTES is refused before it is read.

Two pieces. `RequestBodyLimitMiddleware` answers 413 from the declared Content-Length alone, so
an oversized body is never read (gunicorn then drains at most 64 KiB of it and closes the
connection). `ChunkedBodyLimit` wraps the WSGI application for bodies sent without a
Content-Length (`Transfer-Encoding: chunked`): Django would read such a body as empty, so it is
read here, at most limit + 1 bytes, and handed on with its length - or flagged as too large.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from dpm_async.problems import REQUEST_TOO_LARGE, problem_response

LENGTH_REQUIRED = "LENGTH_REQUIRED"
INVALID_CONTENT_LENGTH = "INVALID_CONTENT_LENGTH"

# Set in the WSGI environ by ChunkedBodyLimit, read by RequestBodyLimitMiddleware.
CHUNKED_BODY_TOO_LARGE = "dpm_async.chunked_body_too_large"
CHUNKED_BODY_UNREADABLE = "dpm_async.chunked_body_unreadable"

_READ_SIZE = 64 * 1024


def _is_chunked(environ: dict[str, Any]) -> bool:
    return not environ.get("CONTENT_LENGTH") and "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()


def _read_at_most(stream: Any, size: int) -> bytes:
    """Up to `size` bytes of `stream`, read in bounded pieces until it ends."""
    body = bytearray()
    while len(body) < size:
        piece = stream.read(min(_READ_SIZE, size - len(body)))
        if not piece:
            break
        body += piece
    return bytes(body)


class ChunkedBodyLimit:
    """WSGI wrapper: reads a chunked request body, bounded by DPM_MAX_REQUEST_BYTES.

    Only when the server marks its input as terminated (`wsgi.input_terminated`, which gunicorn
    sets): reading to the end is then safe. The body becomes an in-memory stream with a
    Content-Length, as if the client had declared one. A body over the limit is not read further
    (limit + 1 bytes at most) and RequestBodyLimitMiddleware answers 413; a server that cannot
    end the stream gets a 411, since reading would never stop.
    """

    def __init__(self, application: Callable[..., Iterable[bytes]]):
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if _is_chunked(environ):
            if environ.get("wsgi.input_terminated"):
                limit = settings.DPM_MAX_REQUEST_BYTES
                body = _read_at_most(environ["wsgi.input"], limit + 1)
                if len(body) > limit:
                    environ[CHUNKED_BODY_TOO_LARGE] = True
                    body = b""
                environ["wsgi.input"] = io.BytesIO(body)
                environ["CONTENT_LENGTH"] = str(len(body))
            else:
                environ[CHUNKED_BODY_UNREADABLE] = True
        return self.application(environ, start_response)


class RequestBodyLimitMiddleware:
    """Answers 413 from the declared Content-Length alone, so an oversized body is never buffered.

    A chunked body was bounded by ChunkedBodyLimit; its verdict is answered here, so that every
    413 carries the correlation id and the same problem body.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.DPM_MAX_REQUEST_BYTES
        if request.META.get(CHUNKED_BODY_TOO_LARGE):
            return problem_response(
                413,
                REQUEST_TOO_LARGE,
                f"The request body exceeds the limit of {limit} bytes.",
                headers={"Connection": "close"},
            )
        if request.META.get(CHUNKED_BODY_UNREADABLE):
            return problem_response(411, LENGTH_REQUIRED, "Send the body with a Content-Length.")
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                length = int(declared)
                if length < 0:
                    raise ValueError
            except ValueError:
                return problem_response(400, INVALID_CONTENT_LENGTH, "Content-Length is not a number.")
            if length > limit:
                return problem_response(
                    413,
                    REQUEST_TOO_LARGE,
                    f"The request body is {length} bytes; the limit is {limit} bytes.",
                    headers={"Connection": "close"},
                )
        return self.get_response(request)
