"""`manage.py list_tokens [username]`: every API token (of a user), never a key (none is stored)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from dpm_async.tokens import api_tokens_of


def _instant(value: datetime | None) -> str:
    return f"{value:%Y-%m-%dT%H:%MZ}" if value is not None else "-"


class Command(BaseCommand):
    help = "Lists API tokens: id, user, name, key prefix, created, expires, last used (to within 5 minutes)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", default=None)

    def handle(self, *args: Any, username: str | None, **options: Any) -> None:
        now = timezone.now()
        rows = [("id", "user", "name", "prefix", "created", "expires", "last used")]
        tokens = list(api_tokens_of(username))
        for token in tokens:
            expires = _instant(token.expires_at)
            if token.expires_at is not None and token.expires_at <= now:
                expires += " (expired)"
            rows.append((str(token.pk), token.user.get_username(), token.name, token.prefix or "(legacy)",
                         _instant(token.created_at), expires, _instant(token.last_used_at)))
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        self.stderr.write(f"{len(tokens)} token(s)")
