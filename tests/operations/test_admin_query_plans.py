"""Every search and filter of the support console uses an index on PostgreSQL, with 100,000 rows.

Each page of the console is requested; every query it sends to the operations table is EXPLAINed
(the plans PostgreSQL would run, on statistics of the 100,000 rows) and none may read the table
sequentially.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from operations.support import support_user_save

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

CHANGELIST = "/admin/operations/operation/"
ROWS = 100_000

# FAILED (with one of three error codes, and RESULT_NOT_STORED for one row in a thousand) or
# PENDING; one minute apart; 50 owners; every mode. Each row satisfies the table's constraints.
INSERT = """
INSERT INTO operations_operation (
    id, operation_type, status, owner_id, correlation_id, request_fingerprint, execution_mode,
    created_at, started_at, finished_at, expires_at, attempt, lease_expires_at, cancel_requested,
    scenarios_total, scenarios_done, scenarios_failed, current_scenario, scenario_statuses, error,
    result_envelope, request)
SELECT 'dop_' || lpad(to_hex(i), 32, '0'), 'ANALYZE_SCENARIOS',
       CASE WHEN i %% 4 = 0 THEN 'PENDING' ELSE 'FAILED' END,
       (%(owners)s::int[])[1 + i %% 50], 'corr-' || lpad(i::text, 6, '0'), 'sha256:' || repeat('0', 64),
       (ARRAY['INLINE', 'ACCEPT_ONLY', 'WORKER'])[1 + i %% 3],
       now() - i * interval '1 minute', NULL,
       CASE WHEN i %% 4 = 0 THEN NULL ELSE now() - i * interval '1 minute' + interval '5 seconds' END,
       now() + interval '1 day', 0, NULL, false, 1, 0, 0, NULL, '{}'::jsonb,
       CASE WHEN i %% 4 = 0 THEN NULL
            ELSE jsonb_build_object(
                'code', CASE WHEN i %% 1000 = 1 THEN 'RESULT_NOT_STORED'
                             ELSE (ARRAY['ENGINE_ERROR', 'OPERATION_CANCELLED', 'EXECUTION_LEASE_EXPIRED'])[1 + i %% 3]
                        END,
                'message', 'stored failure', 'details', '{}'::jsonb) END,
       NULL, '{}'::json
FROM generate_series(1, %(rows)s) AS i
"""


@pytest.fixture
def support_on_100k_rows() -> tuple[Client, list[int]]:
    owners = [User.objects.create_user(f"owner-{n:02d}").pk for n in range(50)]
    with connection.cursor() as cursor:
        cursor.execute(INSERT, {"owners": owners, "rows": ROWS})
        cursor.execute("ANALYZE operations_operation")
        cursor.execute("ANALYZE auth_user")
    client = Client()
    client.force_login(support_user_save("alice", "pw-alice-1").user)
    return client, owners


def _operation_plans(client: Client, query: str) -> list[tuple[str, str]]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CHANGELIST + query)
    assert response.status_code == 200, query
    plans = []
    with connection.cursor() as cursor:
        for sql in (q["sql"] for q in captured.captured_queries):
            if sql.startswith("SELECT") and "operations_operation" in sql:
                cursor.execute("EXPLAIN " + sql)
                plans.append((sql, "\n".join(row[0] for row in cursor.fetchall())))
    return plans


def test_every_search_and_filter_of_the_console_uses_an_index(support_on_100k_rows):
    client, owners = support_on_100k_rows
    # A day of rows, ten days back (the rows are one minute apart, going back 69 days).
    day = (timezone.now() - timedelta(days=10)).date().isoformat()
    pages = [
        "",
        "?o=1", "?o=-7",  # sorted by id, by created
        "?q=corr-04211",  # correlation id prefix
        "?q=dop_00000000000000000000000000001",  # operation id prefix
        # Owner user name prefix: one owner of the fifty. A prefix that matches a fifth of the
        # table ("owner-1": owner-10 to owner-19) is rightly read sequentially by PostgreSQL when
        # its statistics say so (its choice varied between runs): a seq scan is then the faster plan.
        "?q=owner-07",
        "?status__exact=PENDING",
        f"?owner={owners[7]}",
        "?execution_mode__exact=WORKER",
        "?error_code=RESULT_NOT_STORED",
        "?error_code=ENGINE_ERROR",
        f"?created_at__from={day}&created_at__to={day}",
        f"?finished_at__from={day}&finished_at__to={day}",
        f"?created_at__from={day}",
        f"?status__exact=FAILED&owner={owners[3]}&q=corr-0",
        "?correlation_id=corr-000042",  # the detail page's link
    ]
    for page in pages:
        plans = _operation_plans(client, page)
        assert plans, page
        for sql, plan in plans:
            assert "Seq Scan on operations_operation" not in plan, (page, sql, plan)
            assert "Index" in plan, (page, sql, plan)


def test_the_detail_page_reads_by_index(support_on_100k_rows):
    client, _ = support_on_100k_rows
    operation_id = "dop_" + "0" * 28 + "0042"
    with CaptureQueriesContext(connection) as captured:
        assert client.get(f"{CHANGELIST}{operation_id}/change/").status_code == 200
    with connection.cursor() as cursor:
        for sql in (q["sql"] for q in captured.captured_queries):
            if sql.startswith("SELECT") and "operations_operation" in sql:
                cursor.execute("EXPLAIN " + sql)
                plan = "\n".join(row[0] for row in cursor.fetchall())
                assert "Seq Scan on operations_operation" not in plan, (sql, plan)
