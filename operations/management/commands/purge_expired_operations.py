"""`manage.py purge_expired_operations`: for cron (docs/operations.md has the line)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations.maintenance import operations_maintain
from operations.services import PURGE_BATCH_SIZE


class Command(BaseCommand):
    help = (
        "Deletes expired operations in bounded batches (never a RUNNING one), after settling RUNNING "
        "operations whose runner died (lease expired). Safe to run while the service runs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count, change nothing.")
        parser.add_argument(
            "--batch-size", type=int, default=PURGE_BATCH_SIZE,
            help=f"Rows deleted per statement (default {PURGE_BATCH_SIZE}).",
        )

    def handle(self, *args: Any, dry_run: bool, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        done = operations_maintain(batch_size=batch_size, dry_run=dry_run)
        if dry_run:
            self.stdout.write(f"dry run: would purge {done.purged} expired operation(s); "
                              f"{done.recovered} RUNNING operation(s) have an expired lease")
        else:
            self.stdout.write(f"purged {done.purged} expired operation(s); "
                              f"settled {done.recovered} RUNNING operation(s) with an expired lease")
