"""Identifiers, lineage and explanation (spec 2.8, 2.9)."""

from __future__ import annotations

import re

from rebalance.engine import prepare_inputs, run_rebalance
from tests.factories.engine import build, options, run


def test_identifiers_and_defaults() -> None:
    result, wire = run(build(prices={"A": "10"}, model={"A": "0.5"}))
    assert re.fullmatch(r"rr_[0-9a-f]{8}", wire["rebalance_run_id"])
    assert wire["universe"]["universe_id"] == "u_" + wire["rebalance_run_id"]
    assert wire["target"]["target_id"] == "t_" + wire["rebalance_run_id"]
    assert wire["correlation_id"] == "c_none"
    assert wire["lineage"] == {
        "portfolio_snapshot_id": "pf_test",
        "market_data_snapshot_id": "md",
        "request_hash": "no_hash",
        "idempotency_key": None,
        "engine_version": None,
    }
    assert wire["explanation"] == {"summary": "READY", "target_method_comparison": None}


def test_caller_ids_are_carried_and_run_ids_are_fresh() -> None:
    prepared = prepare_inputs(build(prices={"A": "10"}, model={"A": "0.5"}))
    first = run_rebalance(prepared, options(), request_hash="batch_1:base", correlation_id="corr:base")
    second = run_rebalance(prepared, options(), request_hash="batch_1:base", correlation_id="corr:base")
    assert (first.correlation_id, first.lineage.request_hash) == ("corr:base", "batch_1:base")
    assert first.rebalance_run_id != second.rebalance_run_id
