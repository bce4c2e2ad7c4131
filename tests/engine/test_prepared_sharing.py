"""One PreparedInputs serves every scenario of a batch: inputs are never mutated, results are isolated."""

from __future__ import annotations

import copy
import gc
from concurrent.futures import ThreadPoolExecutor

from rebalance.engine import prepare_inputs, result_to_wire, run_rebalance
from tests.factories.engine import build, lot, options, position, shelf_entry

SCENARIOS = {
    "baseline": {},
    "cap": {"single_position_max_weight": "0.3"},
    "tax": {"enable_tax_awareness": True, "max_realized_capital_gains": "50"},
    "turnover": {"max_turnover_pct": "0.2"},
    "settlement": {"enable_settlement_awareness": True, "settlement_horizon_days": 1},
    "groups": {"group_constraints": {"sector:TECH": "0.2"}},
    "trust": {"valuation_mode": "TRUST_SNAPSHOT"},
    "dust": {"min_trade_notional": ("400", "USD")},
}


def _inputs() -> dict:
    return build(
        cash={"USD": "2000", "EUR": "300"},
        positions=[
            position("A", "40", lots=[lot("a1", "20", "20"), lot("a2", "20", "25")], market_value=("1300", "USD")),
            position("OLD", "15"),
            position("FROZEN", "5"),
        ],
        prices={"A": "30", "B": ("12", "EUR"), "C": "8", "OLD": "20", "FROZEN": "40"},
        fx={"EUR/USD": "1.1"},
        model={"A": "0.2", "B": "0.3", "C": "0.2"},
        shelf={
            "A": shelf_entry("A", attributes={"sector": "TECH"}),
            "B": shelf_entry("B", attributes={"sector": "TECH"}),
            "C": shelf_entry("C", attributes={"sector": "FIN"}),
            "OLD": "APPROVED",
            "FROZEN": "SUSPENDED",
        },
    )


def _comparable(wire: dict) -> dict:
    """The wire dict without the random run id (and the ids derived from it)."""
    clean = dict(wire)
    for key in ("rebalance_run_id",):
        clean.pop(key)
    clean["universe"] = {k: v for k, v in wire["universe"].items() if k != "universe_id"}
    clean["target"] = {k: v for k, v in wire["target"].items() if k != "target_id"}
    return clean


def test_running_scenarios_never_mutates_the_inputs() -> None:
    inputs = _inputs()
    pristine = copy.deepcopy(inputs)
    prepared = prepare_inputs(inputs)
    for overrides in SCENARIOS.values():
        result_to_wire(run_rebalance(prepared, options(**overrides)))
    assert inputs == pristine


def test_a_shared_prepared_input_gives_the_same_results_as_a_fresh_one() -> None:
    shared = prepare_inputs(_inputs())
    for name, overrides in SCENARIOS.items():
        from_shared = _comparable(result_to_wire(run_rebalance(shared, options(**overrides), request_hash=name)))
        from_fresh = _comparable(
            result_to_wire(run_rebalance(prepare_inputs(_inputs()), options(**overrides), request_hash=name))
        )
        assert from_shared == from_fresh, name


def test_scenarios_can_run_concurrently_on_one_prepared_input() -> None:
    prepared = prepare_inputs(_inputs())
    expected = {
        name: _comparable(result_to_wire(run_rebalance(prepare_inputs(_inputs()), options(**o), request_hash=name)))
        for name, o in SCENARIOS.items()
    }

    def one(name: str) -> tuple[str, dict]:
        return name, _comparable(result_to_wire(run_rebalance(prepared, options(**SCENARIOS[name]), request_hash=name)))

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = dict(pool.map(one, list(SCENARIOS) * 3))
    assert got == expected


def test_the_garbage_collector_is_restored_after_a_run() -> None:
    prepared = prepare_inputs(_inputs())
    assert gc.isenabled()
    run_rebalance(prepared, options())
    assert gc.isenabled()
    gc.disable()
    try:
        run_rebalance(prepared, options())
        assert not gc.isenabled()  # a caller's own choice is left alone
    finally:
        gc.enable()
