"""`manage.py issue_token <username>`: a new API key for a user (docs/security.md, "Tokens").

The key is the last line of stdout, so `TOKEN=$(python manage.py issue_token ci --create-user)`
works; the one-line summary goes to stderr. Every call makes a new key: a user may hold several
(one per client program, or an old and a new one during a rotation); `list_tokens` shows them and
`revoke_token` ends one.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from dpm_async.tokens import UserNotFound, api_token_issue


class Command(BaseCommand):
    help = (
        "Prints a new API key of a user for `Authorization: Token <key>` (the user's other keys stay "
        "valid). Only a digest of the key is stored: this is the one time it is shown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="default",
                            help="Which client program holds the key (shown by list_tokens; default 'default').")
        parser.add_argument("--expires-in-days", type=int, default=None, metavar="DAYS",
                            help="The key stops working after this many days (default: never).")
        parser.add_argument("--create-user", action="store_true",
                            help="Create the user if missing (no password: it calls by token only).")
        parser.add_argument("--staff", action="store_true",
                            help="Make the user staff with the operations view permission "
                                 "(reads every owner's operations; the admin; /metrics).")

    def handle(self, *args: Any, username: str, name: str, expires_in_days: int | None, create_user: bool,
               staff: bool, **options: Any) -> None:
        name = name.strip()
        if not name or len(name) > 64:
            raise CommandError("--name must be 1 to 64 characters")
        expires_at = None
        if expires_in_days is not None:
            if expires_in_days < 1:
                raise CommandError("--expires-in-days must be at least 1")
            expires_at = timezone.now() + timedelta(days=expires_in_days)
        try:
            issued = api_token_issue(username, name=name, expires_at=expires_at, create_user=create_user,
                                     staff=staff)
        except UserNotFound:
            raise CommandError(f"no user {username!r}; pass --create-user to create it") from None
        token = issued.token
        expiry = f"expires {token.expires_at:%Y-%m-%d %H:%M}Z" if token.expires_at else "no expiry"
        self.stderr.write(f"new token {token.prefix} {name!r} for {username} ({expiry})"
                          + (" (user created)" if issued.user_created else ""))
        self.stdout.write(issued.key)
