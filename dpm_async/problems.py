"""The one place where errors become HTTP problems (RFC 9457, `application/problem+json`).

Domain and request errors are `Problem` subclasses (DRF `APIException`s with a stable `code`);
`problem_exception_handler` is DRF's exception handler and turns them, DRF's own exceptions and
anything unexpected into one body shape:
`{"type", "title", "status", "detail", "code", "correlation_id"}` (+ `"errors"` for a bad body).
"""

from __future__ import annotations

import logging
import math
import sys
from http import HTTPStatus
from typing import Any, TypedDict

import orjson
from django.core.exceptions import DisallowedHost, RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from rest_framework import exceptions as drf_exceptions

from dpm_async.correlation import correlation_id_current

logger = logging.getLogger("dpm_async.problems")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://dpm-async.dev/problems/"

# Stable codes of request-level problems. Domain codes live with their domain (operations.errors).
VALIDATION_ERROR = "VALIDATION_ERROR"
MALFORMED_JSON = "MALFORMED_JSON"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
INVALID_CORRELATION_ID = "INVALID_CORRELATION_ID"
NOT_FOUND = "NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
NOT_AUTHENTICATED = "NOT_AUTHENTICATED"
PERMISSION_DENIED = "PERMISSION_DENIED"
THROTTLED = "THROTTLED"
TOO_MANY_AUTH_FAILURES = "TOO_MANY_AUTH_FAILURES"
BATCH_TOO_LARGE = "BATCH_TOO_LARGE"
INTERNAL_ERROR = "INTERNAL_ERROR"
DISALLOWED_HOST = "DISALLOWED_HOST"
TOO_MANY_FIELDS = "TOO_MANY_FIELDS"
REQUEST_REFUSED = "REQUEST_REFUSED"
SERVICE_NOT_READY = "SERVICE_NOT_READY"
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
# When a client should try again after a database outage (a restart or failover takes seconds).
DATABASE_RETRY_AFTER_SECONDS = 5


class FieldError(TypedDict):
    """One fault of a request: where (`portfolio_snapshot.positions[3].quantity`) and what."""

    field: str
    message: str


class ProblemExtra(TypedDict, total=False):
    """What some problems add: `errors` (a 400 about the body or the query), or the operation concerned."""

    errors: list[FieldError]
    # A 503 of /health/ready: the state of each readiness check ("ok", or what is wrong).
    checks: dict[str, str]
    operation_id: str
    operation_status: str
    status_url: str
    scenario_name: str
    # A 413 BATCH_TOO_LARGE: what the batch costs (instruments x scenarios) and what is allowed.
    batch_cells: int
    max_batch_cells: int


class ProblemBody(ProblemExtra):
    """An RFC 9457 problem; `code` is stable and documented (docs/api.md), `detail` is for people."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    correlation_id: str | None


class Problem(drf_exceptions.APIException):
    """A request or domain error with a stable code. Subclasses set status_code and default_code."""

    status_code = 400
    default_code = VALIDATION_ERROR
    default_detail = "The request is invalid."

    def __init__(self, detail: str | None = None, *, code: str | None = None, extra: ProblemExtra | None = None,
                 retry_after: int | None = None):
        super().__init__(detail=detail or self.default_detail, code=code or self.default_code)
        self.extra: ProblemExtra = extra or {}
        # Seconds, sent as `Retry-After` (a 429, a 503).
        self.retry_after = retry_after


class RequestInvalid(Problem):
    """The body failed validation; `errors` lists `{"field", "message"}` with a path per error."""

    status_code = 400
    default_code = VALIDATION_ERROR
    default_detail = "The request body is invalid."

    def __init__(self, errors: list[FieldError], detail: str | None = None):
        super().__init__(detail or self.default_detail, extra={"errors": errors})
        self.errors = errors


class MalformedJson(Problem):
    status_code = 400
    default_code = MALFORMED_JSON
    default_detail = "The request body is not valid JSON."

    def __init__(self, message: str):
        super().__init__(self.default_detail, extra={"errors": [{"field": "", "message": message}]})


class RequestTooLarge(Problem):
    status_code = 413
    default_code = REQUEST_TOO_LARGE
    default_detail = "The request body is larger than the configured limit."


class TooManyAuthFailures(Problem):
    """429: this address sent too many wrong credentials; refused before they are even looked up."""

    status_code = 429
    default_code = TOO_MANY_AUTH_FAILURES
    default_detail = "Too many failed authentication attempts from this address; try again later."


class UnsupportedMediaType(Problem):
    status_code = 415
    default_code = UNSUPPORTED_MEDIA_TYPE
    default_detail = "Send the body as application/json."


_DRF_CODES: dict[type[drf_exceptions.APIException], str] = {
    drf_exceptions.NotAuthenticated: NOT_AUTHENTICATED,
    drf_exceptions.AuthenticationFailed: NOT_AUTHENTICATED,
    drf_exceptions.PermissionDenied: PERMISSION_DENIED,
    drf_exceptions.NotFound: NOT_FOUND,
    drf_exceptions.MethodNotAllowed: METHOD_NOT_ALLOWED,
    drf_exceptions.NotAcceptable: NOT_ACCEPTABLE,
    drf_exceptions.UnsupportedMediaType: UNSUPPORTED_MEDIA_TYPE,
    drf_exceptions.Throttled: THROTTLED,
    drf_exceptions.ParseError: MALFORMED_JSON,
    drf_exceptions.ValidationError: VALIDATION_ERROR,
}


def problem_body(status: int, code: str, detail: str, extra: ProblemExtra | None = None) -> ProblemBody:
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: ProblemBody = {
        "type": PROBLEM_TYPE_BASE + code.lower().replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "correlation_id": correlation_id_current(),
    }
    return {**extra, **body} if extra else body


def problem_response(status: int, code: str, detail: str, extra: ProblemExtra | None = None,
                     headers: dict[str, str] | None = None) -> HttpResponse:
    """A plain Django problem response, for code that runs outside DRF (middleware, handler500)."""
    response = HttpResponse(
        orjson.dumps(problem_body(status, code, detail, extra)),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    # Answered before CommonMiddleware (which would add it): a client refused mid-upload (413)
    # knows where the answer ends without waiting for the connection to close.
    response["Content-Length"] = str(len(response.content))
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _validation_errors(detail: Any, prefix: str = "") -> list[FieldError]:
    """Flattens DRF's nested ValidationError detail into field-path errors."""
    if isinstance(detail, dict):
        errors: list[FieldError] = []
        for key, value in detail.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                path = prefix
            errors.extend(_validation_errors(value, path))
        return errors
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [{"field": prefix, "message": str(item)} for item in detail]
        errors = []
        for index, item in enumerate(detail):
            errors.extend(_validation_errors(item, f"{prefix}[{index}]"))
        return errors
    return [{"field": prefix, "message": str(detail)}]


# Requests Django's own settings refuse (SuspiciousOperation): a 4xx problem each, never a 500.
_REFUSED: tuple[tuple[type[SuspiciousOperation], int, str, str], ...] = (
    (DisallowedHost, 400, DISALLOWED_HOST, "The Host header names no host this service answers for."),
    (TooManyFieldsSent, 400, TOO_MANY_FIELDS, "The query string (or form) has more fields than this service reads."),
    (RequestDataTooBig, 413, REQUEST_TOO_LARGE, "The request body is larger than the configured limit."),
    (SuspiciousOperation, 400, REQUEST_REFUSED, "The request was refused."),
)


def refused(exc: SuspiciousOperation) -> tuple[int, str, str]:
    """The status, code and detail of a request Django refused as suspicious."""
    return next((status, code, detail) for klass, status, code, detail in _REFUSED if isinstance(exc, klass))


class RefusedRequestLogFilter(logging.Filter):
    """On the `django.security` loggers: a refused request is one WARNING line, not an ERROR with a
    traceback (a hostile client must not fill the log with stack traces, nor page anyone)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    """DRF's EXCEPTION_HANDLER: every error leaves as a problem with a stable code."""
    headers: dict[str, str] = {}
    extra: ProblemExtra = {}
    if isinstance(exc, Problem):
        status, code, detail, extra = exc.status_code, str(exc.get_codes()), str(exc.detail), exc.extra
        if exc.retry_after is not None:
            headers["Retry-After"] = str(max(1, exc.retry_after))
    elif isinstance(exc, drf_exceptions.ValidationError):
        status, code, detail = 400, VALIDATION_ERROR, "The request is invalid."
        extra = {"errors": _validation_errors(exc.detail)}
    elif isinstance(exc, drf_exceptions.APIException):
        status = exc.status_code
        code = next((c for klass, c in _DRF_CODES.items() if isinstance(exc, klass)), str(exc.default_code).upper())
        detail = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else str(exc.default_detail)
        wait = getattr(exc, "wait", None)  # Throttled's, set by its __init__ (absent from the stubs)
        if isinstance(exc, drf_exceptions.Throttled) and wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(wait)))
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
    elif isinstance(exc, SuspiciousOperation):
        status, code, detail = refused(exc)
        logger.warning("refused a request: %s (%s)", code, type(exc).__name__)
    elif isinstance(exc, (OperationalError, InterfaceError)):
        status, code, detail, headers = _database_unavailable(exc)
    elif isinstance(exc, Http404):
        status, code, detail = 404, NOT_FOUND, "Not found."
    elif isinstance(exc, DjangoPermissionDenied):
        status, code, detail = 403, PERMISSION_DENIED, "Permission denied."
    else:
        # An unexpected fault: log it with its traceback (the log line carries the correlation id),
        # and answer without internals.
        logger.error("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
        status, code, detail = 500, INTERNAL_ERROR, "An internal error occurred."
    # A plain response, not DRF's Response: a problem is JSON whatever renderer the view would have
    # negotiated (the schema view's YAML, Swagger UI's HTML).
    return problem_response(status, code, detail, extra, headers)


def _database_unavailable(exc: Exception) -> tuple[int, str, str, dict[str, str]]:
    """A database that cannot be reached or does not answer in time: 503, try again shortly.

    Logged as one WARNING line (no traceback: an outage is not a bug, and it would repeat for every
    request while it lasts)."""
    logger.warning("the database is unavailable: %s", type(exc).__name__)
    return (503, DATABASE_UNAVAILABLE, "The database is unavailable; try again shortly.",
            {"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def server_error(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Django's handler500: faults outside DRF views still answer as a problem (a database outage
    as the 503 it is; Django calls this while the exception is being handled)."""
    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        status, code, detail, headers = _database_unavailable(exc)
        return problem_response(status, code, detail, headers=headers)
    return problem_response(500, INTERNAL_ERROR, "An internal error occurred.")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's handler404 for paths that match no route."""
    return problem_response(404, NOT_FOUND, "No such resource.")


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """Django's handler400: a request refused outside DRF (Django has logged it, see the filter above)."""
    if isinstance(exception, SuspiciousOperation):
        status, code, detail = refused(exception)
        return problem_response(status, code, detail)
    return problem_response(400, VALIDATION_ERROR, "Bad request.")


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return problem_response(403, PERMISSION_DENIED, "Permission denied.")
