"""`manage.py revoke_token <id>… | --user <username> [--name <name>]`: ends API tokens; their keys
stop working with the next request (docs/security.md, "Rotating a key")."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dpm_async.models import ApiToken
from dpm_async.tokens import api_tokens_of, api_tokens_revoke


class Command(BaseCommand):
    help = (
        "Revokes API tokens by id (as list_tokens shows), or every token of --user (of one --name). "
        "A revoked key is refused from the next request on."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, metavar="id")
        parser.add_argument("--user", help="Revoke the tokens of this user (all of them, or --name's).")
        parser.add_argument("--name", help="With --user: only the tokens of this name.")
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")

    def handle(self, *args: Any, ids: list[int], user: str | None, name: str | None, dry_run: bool,
               **options: Any) -> None:
        if bool(ids) == bool(user):
            raise CommandError("name the token ids, or --user (not both)")
        if name is not None and user is None:
            raise CommandError("--name needs --user")
        if ids:
            tokens = ApiToken.objects.filter(pk__in=ids)
            missing = set(ids) - set(tokens.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"no token with id {', '.join(map(str, sorted(missing)))}; nothing revoked")
        else:
            tokens = api_tokens_of(user)
            if name is not None:
                tokens = tokens.filter(name=name)
        if dry_run:
            self.stdout.write(f"dry run: would revoke {tokens.count()} token(s)")
            return
        self.stdout.write(f"revoked {api_tokens_revoke(tokens)} token(s)")
