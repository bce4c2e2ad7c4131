"""Response headers for confidential data (docs/security.md).

Django's SecurityMiddleware adds nosniff, the referrer and opener policies, HSTS and the HTTPS
redirect; XFrameOptionsMiddleware denies framing. What they leave out: API answers carry portfolios
and results, so no shared cache (a proxy, a CDN, a browser's disk cache) may keep them.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

CACHE_CONTROL_HEADER = "Cache-Control"
NO_STORE = "no-store"


class NoStoreMiddleware:
    """`Cache-Control: no-store` on every answer that did not choose its own caching.

    Static files (whitenoise) and the admin (never_cache) set the header themselves and keep it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if CACHE_CONTROL_HEADER not in response:
            response[CACHE_CONTROL_HEADER] = NO_STORE
        return response
