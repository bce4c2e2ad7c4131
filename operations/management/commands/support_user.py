"""`manage.py support_user <name>`: a support engineer's admin login (docs/operations.md)."""

from __future__ import annotations

import getpass
import os
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations.support import SUPPORT_GROUP, support_user_save

PASSWORD_VARIABLE = "DPM_SUPPORT_PASSWORD"


class Command(BaseCommand):
    help = (
        f"Creates (or updates) a staff user of the {SUPPORT_GROUP} group who logs in at /admin/: views "
        f"every operation and cancels. The password is ${PASSWORD_VARIABLE} when set, else prompted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        password = os.environ.get(PASSWORD_VARIABLE) or self._prompted()
        try:
            saved = support_user_save(username, password)
        except ValueError as error:
            raise CommandError(str(error)) from None
        verb = "created" if saved.created else "updated"
        self.stdout.write(f"{verb} support user {username} ({SUPPORT_GROUP} group); log in at /admin/")

    def _prompted(self) -> str:
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("the passwords differ")
        if not password:
            raise CommandError("a password is required")
        return password
