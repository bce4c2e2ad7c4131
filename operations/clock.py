"""Leases and expiry run on the database's clock (docs/operations.md, "Leases").

Every process that writes a lease or an expiry, and every query that compares one with "now",
uses the database server's clock (`statement_timestamp()`) instead of its own clock: workers and web processes on hosts
whose clocks disagree (a worker 20 s fast would take healthy runs for dead) then all measure
against one clock. A test passes a fixed instant instead, to move time without sleeping.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, Expression, ExpressionWrapper, Value
from django.db.models.functions import Now
from django.utils import timezone

type Instant = datetime | Expression


def now_or_database(now: Instant | None = None) -> Instant:
    """`now` when a test fixed it, else the database's clock (evaluated by the statement itself)."""
    return Now() if now is None else now


def database_now() -> datetime:
    """The database's clock as a value, for the few places that report an age (one query)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # now() would be the transaction's start; Now() compiles to this too.
            cursor.execute("SELECT statement_timestamp()")
        else:
            cursor.execute("SELECT STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')")
        value = cursor.fetchone()[0]
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def later(instant: Instant, delta: timedelta) -> Instant:
    """`instant + delta`, on the database when `instant` is its now()."""
    if isinstance(instant, datetime):
        return instant + delta
    return ExpressionWrapper(instant + Value(delta), output_field=DateTimeField())


def earlier(instant: Instant, delta: timedelta) -> Instant:
    return later(instant, -delta)
