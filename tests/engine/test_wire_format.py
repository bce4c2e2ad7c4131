"""Wire form of results: key order, number text, quantized weights, shared before state (spec 2, 4.3)."""

from __future__ import annotations

import json
from decimal import Decimal

from rebalance.engine import prepare_inputs, result_to_wire, run_rebalance, scenario_comparison_metric
from tests.factories.engine import build, options, run, shelf_entry, trades


def _full_featured_run() -> dict:
    inputs = build(
        base="SGD",
        cash={"SGD": "20000.00"},
        positions={"OLD": "10"},
        prices={"US": ("50.0", "USD"), "OLD": "100.0"},
        fx={"USD/SGD": "1.30"},
        model={"US": "0.4"},
        shelf={"US": shelf_entry("US", attributes={"region": "US"}), "OLD": "APPROVED"},
    )
    _, wire = run(inputs, enable_settlement_awareness=True, enable_tax_awareness=True, compare_target_methods=True)
    return wire


def test_top_level_and_nested_key_order() -> None:
    wire = _full_featured_run()
    assert list(wire) == [
        "rebalance_run_id", "correlation_id", "status", "before", "universe", "target", "intents", "after_simulated",
        "reconciliation", "tax_impact", "rule_results", "explanation", "diagnostics", "gate_decision", "lineage",
    ]
    assert list(wire["before"]) == [
        "total_value", "cash_balances", "positions", "allocation_by_asset_class", "allocation_by_instrument",
        "allocation", "allocation_by_attribute",
    ]
    assert list(wire["before"]["positions"][0]) == [
        "instrument_id", "quantity", "instrument_currency", "asset_class", "price", "value_in_instrument_ccy",
        "value_in_base_ccy", "weight",
    ]
    assert list(wire["universe"]) == ["universe_id", "eligible_for_buy", "eligible_for_sell", "excluded", "coverage"]
    assert list(wire["target"]) == ["target_id", "strategy", "targets"]
    assert list(wire["target"]["targets"][0]) == ["instrument_id", "model_weight", "final_weight", "final_value", "tags"]
    assert list(wire["intents"][0]) == [
        "intent_type", "intent_id", "instrument_id", "side", "quantity", "notional", "notional_base", "dependencies",
        "rationale", "constraints_applied",
    ]
    fx = next(i for i in wire["intents"] if i["intent_type"] == "FX_SPOT")
    assert list(fx) == [
        "intent_type", "intent_id", "pair", "buy_currency", "buy_amount", "sell_currency", "sell_amount_estimated",
        "dependencies", "rationale",
    ]
    assert list(wire["reconciliation"]) == ["before_total_value", "after_total_value", "delta", "tolerance", "status"]
    assert list(wire["tax_impact"]) == ["total_realized_gain", "total_realized_loss", "budget_limit", "budget_used"]
    assert list(wire["rule_results"][0]) == [
        "rule_id", "severity", "status", "measured", "threshold", "reason_code", "remediation_hint",
    ]
    assert list(wire["diagnostics"]) == [
        "warnings", "suppressed_intents", "dropped_intents", "group_constraint_events", "tax_budget_constraint_events",
        "cash_ladder", "cash_ladder_breaches", "missing_fx_pairs", "funding_plan", "insufficient_cash", "data_quality",
    ]
    assert list(wire["diagnostics"]["data_quality"]) == ["price_missing", "fx_missing", "shelf_missing"]
    assert list(wire["gate_decision"]) == ["gate", "recommended_next_step", "reasons", "summary"]
    assert list(wire["explanation"]) == ["summary", "target_method_comparison"]
    assert list(wire["lineage"]) == [
        "portfolio_snapshot_id", "market_data_snapshot_id", "request_hash", "idempotency_key", "engine_version",
    ]


def test_numbers_are_decimal_strings_and_counters_are_ints() -> None:
    wire = _full_featured_run()
    text = json.dumps(wire)  # JSON-ready as it is
    assert json.loads(text) == wire
    assert isinstance(wire["diagnostics"]["cash_ladder"][0]["date_offset"], int)
    assert isinstance(wire["gate_decision"]["summary"]["hard_fail_count"], int)
    assert wire["universe"]["coverage"] == {"price_coverage_pct": "1", "fx_coverage_pct": "1"}
    assert wire["diagnostics"]["missing_fx_pairs"] == [] and wire["diagnostics"]["funding_plan"] == []


def test_exact_text_of_amounts_follows_decimal_scale_propagation() -> None:
    wire = _full_featured_run()
    buy = next(i for i in wire["intents"] if i.get("side") == "BUY")
    fx = next(i for i in wire["intents"] if i["intent_type"] == "FX_SPOT")
    # TV 21000.00; 0.4 x TV / 1.30 -> 129 shares of 50.0 USD.
    assert (buy["quantity"], buy["notional"]["amount"], buy["notional_base"]["amount"]) == ("129", "6450.0", "8385.000")
    assert (fx["buy_amount"], fx["sell_amount_estimated"]) == ("6514.500", "8468.85000")
    assert wire["after_simulated"]["total_value"]["amount"] == "21000.00000"
    assert wire["target"]["targets"][0]["final_value"]["amount"] == "8400.000"


def test_zero_target_weights_are_one_place_zeros_as_the_reference_writes_them() -> None:
    inputs = build(
        cash={"USD": "1000.00"},
        positions={"OLD": "10"},
        prices={"A": "10", "X": "10", "SO": "10", "OLD": ("12.34", "EUR")},
        fx={"EUR/USD": "1.085000"},
        model={"A": "0.5", "X": "0.1", "SO": "0.1"},
        shelf={"A": "APPROVED", "X": "BANNED", "SO": "SELL_ONLY", "OLD": "APPROVED"},
    )
    _, wire = run(inputs)
    # 10 x 12.34 x 1.085000 has 8 places, so TV x 0.0 has 9: "0E-9" (TV x 0 would be "0E-8").
    assert wire["before"]["total_value"]["amount"] == "1133.88900000"
    trace = {
        t["instrument_id"]: (t["model_weight"], t["final_weight"], t["final_value"]["amount"])
        for t in wire["target"]["targets"]
    }
    assert trace["X"] == ("0.1", "0.0", "0E-9")  # excluded model target: absent from E
    assert trace["SO"] == ("0.1", "0.0", "0E-9")  # SELL_ONLY model target: zero in E
    assert trace["OLD"] == ("0.0", "0.0", "0E-9")  # held instrument outside the model: implicit sell
    assert ("OLD", "SELL", "10") in trades(wire)


def test_only_position_and_allocation_weights_are_quantized_half_even() -> None:
    inputs = build(
        cash={"USD": "99960"}, positions={"A": "15", "B": "25"}, prices={"A": "1", "B": "1"}, model={"A": "0", "B": "0"}
    )
    result, wire = run(inputs, block_on_missing_prices=False)
    assert [p["weight"] for p in wire["before"]["positions"]] == ["0.0002", "0.0002"]  # 0.00015 and 0.00025
    assert [str(p.weight) for p in result.before.positions] == ["0.00015", "0.00025"]
    assert wire["target"]["targets"][0]["final_weight"] == "0"


def test_before_state_wire_form_is_built_once_per_batch() -> None:
    prepared = prepare_inputs(build(prices={"A": "10"}, model={"A": "0.5"}))
    first = result_to_wire(run_rebalance(prepared, options()))
    second = result_to_wire(run_rebalance(prepared, options(min_trade_notional=("1", "USD"))))
    assert first["before"] is second["before"]
    assert first["after_simulated"] is not second["after_simulated"]


def test_scenario_comparison_metric() -> None:
    inputs = build(cash={"USD": "0"}, positions={"OLD": "10"}, prices={"OLD": "100.0", "NEW": "50.0"}, model={"NEW": "1"})
    result, _ = run(inputs)
    assert scenario_comparison_metric(result, "USD") == {
        "status": "READY",
        "security_intent_count": 2,
        "gross_turnover_notional_base": {"amount": "2000.00", "currency": "USD"},
    }
    blocked, _ = run(build(prices={}, model={"NEW": "1"}))
    assert scenario_comparison_metric(blocked) == {
        "status": "BLOCKED",
        "security_intent_count": 0,
        "gross_turnover_notional_base": {"amount": "0", "currency": "USD"},
    }
    assert Decimal(scenario_comparison_metric(result)["gross_turnover_notional_base"]["amount"]) == 2000
