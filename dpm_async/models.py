"""The project's own tables: API tokens (docs/security.md, "Tokens")."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """One API key of one user, for one client program; only the key's SHA-256 digest is stored.

    A user may hold several (one per client program, or an old and a new one while a program
    rotates), each named, each with an optional expiry, each revoked on its own (the row deleted).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    # Which client program holds it: the operator's label, not unique (an old and a new key of one
    # program share it while the program rotates).
    name = models.CharField(max_length=64)
    # The key's public beginning (`dpm_` and 12 hex digits, not part of the secret), shown in
    # listings so that a holder can tell which key is which; empty for keys carried over from
    # DRF's authtoken, whose every character is secret.
    prefix = models.CharField(max_length=16, blank=True, db_index=True)
    # hex SHA-256 of the whole key: what a request's key is looked up by (unique index). Keys are
    # 256 random bits, so a fast hash is enough; a password hasher's deliberate slowness would be
    # paid on every request for nothing (docs/security.md).
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    # None: never expires. An expired key is refused (401) and listed as expired until revoked.
    expires_at = models.DateTimeField(null=True, blank=True)
    # When a request last used it, to within API_TOKEN_USE_RESOLUTION (so rotation can tell when
    # the old key went quiet without a write on every request).
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("user_id", "created_at", "id")
        verbose_name = "API token"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=models.F("created_at")),
                name="api_token_expires_after_created",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix or 'legacy'})"
