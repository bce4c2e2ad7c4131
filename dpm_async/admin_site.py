"""The admin site: Django's, with a login that stops password guessing (docs/security.md,
"Guessing credentials").

An address that has failed DPM_AUTH_FAILURE_RATE logins is answered 429 before the password is
hashed: a guesser cannot keep the web workers busy hashing (each PBKDF2 check takes tens of
milliseconds of CPU) and slow the API down for everyone. A successful login costs no budget.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase

from dpm_async.throttles import auth_failure_record, auth_failures_wait

_REFUSED_PAGE = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many attempts</title></head>"
    "<body><h1>Too many failed logins</h1><p>Too many failed logins from this address. "
    "Try again in {wait} seconds.</p></body></html>"
)


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path:
        return True
    forms = [request.GET, request.POST] if request.method == "POST" else [request.GET]
    return any("\x00" in key or "\x00" in value for form in forms for key, values in form.lists() for value in values)


_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


class DpmAdminSite(admin.AdminSite):
    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        inner = super().admin_view(view, cacheable)

        # A NUL byte in an id, a filter or a search term reaches PostgreSQL, which refuses any
        # text holding one (a DataError, so a 500 with a traceback): it is a bad request.
        @functools.wraps(inner)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if _has_nul(request):
                return HttpResponseBadRequest("A NUL byte in the address or the form.", content_type="text/plain")
            return inner(request, *args, **kwargs)

        return cast(_View, guarded)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method != "POST":
            return super().login(request, extra_context)
        wait = auth_failures_wait(request)
        if wait is not None:
            response = HttpResponse(_REFUSED_PAGE.format(wait=wait), status=429, content_type="text/html; charset=utf-8")
            response["Retry-After"] = str(wait)
            return response
        response = super().login(request, extra_context)
        # A good login redirects; the form shown again (200) is a failed one.
        if response.status_code == 200 and not request.user.is_authenticated:
            auth_failure_record(request)
        return response
