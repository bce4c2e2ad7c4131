"""`manage.py issue_token <username>`: prints a user's API token (docs/security.md).

The key alone goes to stdout, so `TOKEN=$(python manage.py issue_token ci --create-user)` works;
the one-line summary goes to stderr.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dpm_async.authentication import UserNotFound, api_token_issue, api_token_revoke


class Command(BaseCommand):
    help = (
        "Prints the API token of a user (creating the token if the user has none), for "
        "`Authorization: Token <key>`. --revoke deletes it instead; --rotate replaces it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--create-user", action="store_true",
                            help="Create the user if missing (no password: it logs in by token only).")
        parser.add_argument("--staff", action="store_true",
                            help="Make the user staff with the operations view permission "
                                 "(reads every owner's operations; the admin).")
        parser.add_argument("--rotate", action="store_true",
                            help="Replace an existing token with a new key; the old key stops working.")
        parser.add_argument("--revoke", action="store_true",
                            help="Delete the user's token; its key stops working at once.")

    def handle(self, *args: Any, username: str, create_user: bool, staff: bool, rotate: bool, revoke: bool,
               **options: Any) -> None:
        if revoke:
            if create_user or staff or rotate:
                raise CommandError("--revoke cannot be combined with --create-user, --staff or --rotate")
            revoked = api_token_revoke(username)
            self.stderr.write(f"revoked the token of {username}" if revoked else f"{username} has no token")
            return
        try:
            issued = api_token_issue(username, create_user=create_user, staff=staff, rotate=rotate)
        except UserNotFound:
            raise CommandError(f"no user {username!r}; pass --create-user to create it") from None
        what = "existing token" if issued.existing else "new token"
        self.stderr.write(f"{what} for {username}" + (" (user created)" if issued.user_created else ""))
        self.stdout.write(issued.key)
