"""Keys of DRF's authtoken (clear text, one per user) become ApiTokens (hashed), then are deleted.

So an upgrade cuts no client off: every existing key keeps working, now stored as its SHA-256
digest, named "legacy (authtoken)" and without expiry, for operators to rotate at their pace
(docs/security.md, "Upgrading from DRF's tokens"). The clear-text rows are deleted in the same
migration; the table itself (`rest_framework.authtoken` is no longer installed) is left empty.

Reversing it does not bring the clear-text keys back (they are not stored anywhere): a rollback to
a release on DRF's tokens needs new keys issued with that release's `issue_token`.
"""

import hashlib
from datetime import UTC, datetime
from typing import Any

from django.db import migrations
from django.utils import timezone
from django.utils.dateparse import parse_datetime

LEGACY_TABLE = "authtoken_token"
LEGACY_NAME = "legacy (authtoken)"


def _instant(value: Any) -> datetime:
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is None:
        return timezone.now()
    instant: datetime = value
    if timezone.is_naive(instant):
        instant = timezone.make_aware(instant, UTC)
    return instant


def carry_over(apps: Any, schema_editor: Any) -> None:
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return
    api_token = apps.get_model("dpm_async", "ApiToken")
    quoted = connection.ops.quote_name(LEGACY_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {connection.ops.quote_name('key')}, user_id, created FROM {quoted}")  # noqa: S608
        rows = cursor.fetchall()
    api_token.objects.bulk_create([
        api_token(user_id=user_id, name=LEGACY_NAME, prefix="",
                  digest=hashlib.sha256(key.encode("utf-8")).hexdigest(), created_at=_instant(created))
        for key, user_id, created in rows
    ])
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {quoted}")  # noqa: S608


class Migration(migrations.Migration):

    dependencies = [
        ("dpm_async", "0001_api_tokens"),
    ]

    operations = [
        migrations.RunPython(carry_over, migrations.RunPython.noop, elidable=False),
    ]
