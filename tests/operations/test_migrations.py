"""Migration 0003 moves every stored result into its new parts: nothing is lost on the way."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from dpm_async.encoding import frame_text
from operations.models import Operation
from rebalance.canonical import request_canonical
from rebalance.parsing import batch_request_parse
from rebalance.services import rebalance_analyze_batch
from tests.factories.bodies import batch_body
from tests.factories.operations import stored_full_result

BEFORE = [("operations", "0002_operation_owner")]
AFTER = [("operations", "0003_scenario_results")]


@pytest.mark.django_db(transaction=True)
def test_stored_results_are_split_into_envelope_and_scenario_rows():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old_apps = executor.loader.project_state(BEFORE).apps
    operation_model = old_apps.get_model("operations", "Operation")
    body = batch_body(a={"options": {}}, b={"options": {"max_turnover_pct": "1.5"}}, c={"options": {}})
    batch = batch_request_parse(body)
    result = rebalance_analyze_batch(batch, correlation_id="old").json()
    canonical = request_canonical(batch)
    now = timezone.now()
    common = {"operation_type": "ANALYZE_SCENARIOS", "request": canonical.json,
              "request_fingerprint": canonical.fingerprint, "created_at": now, "expires_at": now + timezone.timedelta(days=1)}
    operation_model.objects.create(id="dop_" + "1" * 32, status="SUCCEEDED", correlation_id="done", result=result,
                                   started_at=now, finished_at=now, attempt=1, **common)
    operation_model.objects.create(id="dop_" + "2" * 32, status="PENDING", correlation_id="waiting", **common)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(AFTER)
    # On to the latest migrations before reading through today's model (it has later columns).
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    done = Operation.objects.get(pk="dop_" + "1" * 32)
    assert stored_full_result(done.id) == result  # byte for byte what was stored before
    assert (done.scenarios_total, done.scenarios_done, done.scenarios_failed) == (3, 3, 1)
    assert list(done.scenario_statuses) == ["a", "b", "c"] and done.scenario_statuses["b"] == "FAILED"
    rows = list(done.scenario_results.order_by("position"))
    assert [(r.position, r.name) for r in rows] == [(0, "a"), (1, "c")]
    assert all(len(frame_text(bytes(r.body))) == r.size for r in rows)
    waiting = Operation.objects.get(pk="dop_" + "2" * 32)
    assert (waiting.scenarios_total, waiting.scenarios_done, waiting.result_envelope) == (3, 0, None)
    # Leave the database at the latest migrations for the tests that follow.
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
