"""The admin site: Django's, with a login that stops password guessing (docs/security.md,
"Guessing credentials").

An address that has failed DPM_AUTH_FAILURE_RATE logins is answered 429 before the password is
hashed: a guesser cannot keep the web workers busy hashing (each PBKDF2 check takes tens of
milliseconds of CPU) and slow the API down for everyone. A successful login costs no budget.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from dpm_async.throttles import auth_failure_record, auth_failures_wait

_REFUSED_PAGE = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many attempts</title></head>"
    "<body><h1>Too many failed logins</h1><p>Too many failed logins from this address. "
    "Try again in {wait} seconds.</p></body></html>"
)


class DpmAdminSite(admin.AdminSite):
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
