"""Who may call the API (spec/api.md section 9; docs/security.md).

Programs authenticate with an API token (`Authorization: Token <key>`, dpm_async/tokens.py),
people with the admin's session. `ApiAuthRequired` is the default permission of every API view;
the health probes opt out, and /metrics asks for a staff user's token (`StaffTokenRequired`).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from dpm_async.models import ApiToken
from dpm_async.problems import TooManyAuthFailures
from dpm_async.throttles import auth_failure_record, auth_failures_wait
from dpm_async.tokens import api_token_digest, api_token_mark_used


class ApiTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>` against the stored digests: one SHA-256 and one indexed query
    (the token with its user) per request, and an UPDATE at most every few minutes per key.

    DRF's header parsing and messages are kept ("Invalid token.", "User inactive or deleted."); an
    expired key is "Token expired.". A 401 names the `Token` challenge.
    """

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[Any, ApiToken] | None:
        """An address past DPM_AUTH_FAILURE_RATE failed tokens is answered 429 before its token is
        hashed or looked up (a guesser gets no answer and costs no query); only failures count."""
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != self.keyword.lower().encode():
            return None  # no token: the session class (or the permission's 401) decides
        wait = auth_failures_wait(request)
        if wait is not None:
            raise TooManyAuthFailures(retry_after=wait)
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            auth_failure_record(request)
            raise

    def authenticate_credentials(self, key: str) -> tuple[Any, ApiToken]:
        try:
            # get(), not first(): the lookup is by a unique column, and first() would add the
            # model's ORDER BY to the hottest query of the service.
            token = ApiToken.objects.select_related("user").get(digest=api_token_digest(key))
        except ApiToken.DoesNotExist:
            raise AuthenticationFailed("Invalid token.") from None
        now = timezone.now()
        if token.expires_at is not None and token.expires_at <= now:
            raise AuthenticationFailed("Token expired.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        api_token_mark_used(token, now)
        return token.user, token


class ApiAuthRequired(BasePermission):
    """An authenticated caller, unless DPM_API_AUTH_REQUIRED=false (read at call time).

    When it refuses, DRF raises NotAuthenticated, and since ApiTokenAuthentication is the first
    authentication class that becomes a 401 with `WWW-Authenticate: Token`.
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        if not settings.DPM_API_AUTH_REQUIRED:
            return True
        user = request.user
        return bool(user is not None and user.is_authenticated)


class StaffTokenRequired(BasePermission):
    """A staff user calling with a token; DPM_API_AUTH_REQUIRED=false does not open it."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user is not None and user.is_authenticated and user.is_staff
                    and isinstance(request.auth, ApiToken))
