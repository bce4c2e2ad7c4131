"""Batch what-if analysis (spec/engine.md section 5): the one function that runs a batch.

The synchronous view, INLINE execution, `…/execute` and the worker task all call
`rebalance_analyze_batch`, so a finished operation's result is byte-for-byte the shape the
synchronous endpoint returns.

The result is produced as encoded JSON bytes, scenario by scenario: each scenario's result is
converted and encoded as soon as it is computed and its Python objects are freed, so a 20-scenario
batch of 2000-line portfolios (~70 MB of JSON) never holds more than one scenario in object form.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from dpm_async.renderers import json_dumps
from rebalance.batch import BatchRebalanceRequest
from rebalance.engine import prepare_inputs, result_to_wire, run_rebalance, scenario_comparison_metric
from rebalance.metrics import SCENARIOS_RUN
from rebalance.options import OptionsInvalid, engine_options_parse

logger = logging.getLogger(__name__)

PARTIAL_BATCH_FAILURE = "PARTIAL_BATCH_FAILURE"
INVALID_OPTIONS = "INVALID_OPTIONS"
SCENARIO_EXECUTION_ERROR = "SCENARIO_EXECUTION_ERROR"


def batch_run_id_generate() -> str:
    return f"batch_{secrets.token_hex(4)}"


def rebalance_analyze_batch(
    batch: BatchRebalanceRequest,
    *,
    correlation_id: str | None,
    before_scenario: Callable[[str], None] | None = None,
) -> bytes:
    """Runs every scenario of `batch` and returns the encoded `BatchRebalanceResult`.

    `correlation_id` is the caller's id (None when the request carried none): scenario correlation
    ids are `<correlation_id>:<name>`, else `<batch_run_id>:<name>`. `before_scenario(name)` is
    called before each scenario; it may raise to stop the batch (cancellation of a running
    operation), and that exception propagates.

    A scenario never fails the batch: invalid options become `INVALID_OPTIONS: <message>`, any
    exception while running it `SCENARIO_EXECUTION_ERROR: <exception class>`.
    """
    batch_run_id = batch_run_id_generate()
    prepared = prepare_inputs(batch.inputs)
    base_currency = batch.portfolio_snapshot.base_currency
    prefix = correlation_id or batch_run_id

    result_fragments: list[bytes] = []
    metrics: dict[str, Any] = {}
    failed: dict[str, str] = {}
    # Code-point order of names (`-` < digits < `_` < letters), as the reference processes them.
    for name in sorted(batch.scenarios):
        if before_scenario is not None:
            before_scenario(name)
        SCENARIOS_RUN.inc()
        try:
            options = engine_options_parse(batch.scenarios[name].options)
        except OptionsInvalid as invalid:
            failed[name] = f"{INVALID_OPTIONS}: {invalid.message}"
            continue
        try:
            result = run_rebalance(
                prepared,
                options,
                request_hash=f"{batch_run_id}:{name}",
                correlation_id=f"{prefix}:{name}",
            )
            wire = result_to_wire(result)
            metric = scenario_comparison_metric(result, base_currency)
            fragment = orjson.dumps(wire)
        except Exception as error:  # scenario isolation: one scenario's fault never fails the batch
            logger.exception("scenario %s of %s failed", name, batch_run_id)
            failed[name] = f"{SCENARIO_EXECUTION_ERROR}: {type(error).__name__}"
            continue
        result_fragments.append(orjson.dumps(name) + b":" + fragment)
        metrics[name] = metric
        del result, wire

    envelope_head = {
        "batch_run_id": batch_run_id,
        "run_at_utc": datetime.now(UTC).isoformat(),
        "base_snapshot_ids": batch.base_snapshot_ids(),
    }
    head = orjson.dumps(envelope_head)[:-1]  # keep the object open: results follow
    tail = json_dumps(
        {
            "comparison_metrics": metrics,
            "failed_scenarios": failed,
            "warnings": [PARTIAL_BATCH_FAILURE] if failed else [],
        }
    )[1:]
    return b"".join((head, b',"results":{', b",".join(result_fragments), b"},", tail))
