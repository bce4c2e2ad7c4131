"""The deliberate differences from the reference engine (docs/engine.md, spec section 7 items)."""

from __future__ import annotations

import pytest

import rebalance.engine.pipeline as pipeline
from tests.factories.engine import build, lot, position, rule, run, shelf_entry, targets, trades

# ---------------------------------------------------------------- item 1: locked holdings stay frozen


def test_locked_holding_above_the_cap_is_neither_capped_nor_sold_but_needs_review() -> None:
    inputs = build(
        cash={"USD": "400"},
        positions={"FROZEN": "60"},
        prices={"FROZEN": "10", "A": "10", "B": "10"},
        model={"A": "0.2", "B": "0.2"},
        shelf={"FROZEN": "SUSPENDED", "A": "APPROVED", "B": "APPROVED"},
    )
    result, wire = run(inputs, single_position_max_weight="0.3")
    assert targets(wire)["FROZEN"]["final_weight"] == "0.6"
    assert ("FROZEN", "SELL", "30") not in trades(wire)  # the reference sells 30 of a frozen asset
    assert trades(wire) == [("A", "BUY", "20"), ("B", "BUY", "20")]
    # The post-trade rule does not fail for the frozen holding; a human reviews it instead.
    assert [r["status"] for r in wire["rule_results"] if r["rule_id"] == "SINGLE_POSITION_MAX"] == ["PASS"]
    assert rule(wire, "SINGLE_POSITION_MAX")["measured"] == "0.2"
    assert result.status == "PENDING_REVIEW"


def test_locked_group_member_keeps_its_weight_and_only_tradeable_members_shrink() -> None:
    inputs = build(
        cash={"USD": "750"},
        positions={"LOCK": "25"},
        prices={"LOCK": "10", "TECH": "10", "FIN": "10"},
        model={"TECH": "0.3", "FIN": "0.3"},
        shelf={
            "LOCK": shelf_entry("LOCK", "BANNED", attributes={"sector": "TECH"}),
            "TECH": shelf_entry("TECH", attributes={"sector": "TECH"}),
            "FIN": shelf_entry("FIN", attributes={"sector": "FIN"}),
        },
    )
    result, wire = run(inputs, group_constraints={"sector:TECH": "0.4"})
    weights = {iid: t["final_weight"] for iid, t in targets(wire).items()}
    assert weights == {"TECH": "0.15", "FIN": "0.45", "LOCK": "0.25"}
    (event,) = wire["diagnostics"]["group_constraint_events"]
    assert (event["group_weight_before"], event["released_weight"], event["recipients"]) == ("0.55", "0.15", {"FIN": "0.15"})
    assert result.status == "READY"
    assert ("LOCK", "SELL") not in [(t[0], t[1]) for t in trades(wire)]


def test_locked_weight_alone_above_a_group_limit_zeroes_tradeable_members_and_needs_review() -> None:
    inputs = build(
        cash={"USD": "500"},
        positions={"LOCK": "50"},
        prices={"LOCK": "10", "TECH": "10", "FIN": "10"},
        model={"TECH": "0.2", "FIN": "0.2"},
        shelf={
            "LOCK": shelf_entry("LOCK", "SUSPENDED", attributes={"sector": "TECH"}),
            "TECH": shelf_entry("TECH", attributes={"sector": "TECH"}),
            "FIN": shelf_entry("FIN", attributes={"sector": "FIN"}),
        },
    )
    result, wire = run(inputs, group_constraints={"sector:TECH": "0.3"})
    weights = {iid: t["final_weight"] for iid, t in targets(wire).items()}
    assert weights == {"TECH": "0.0", "FIN": "0.4", "LOCK": "0.5"}
    assert trades(wire) == [("FIN", "BUY", "40")]
    assert result.status == "PENDING_REVIEW"


# ------------------------------------------------------------ item 2: sizing uses the same valuation


def test_calculated_mode_sizes_from_quantity_times_price_even_with_a_market_value() -> None:
    inputs = build(
        base="SGD", cash={"SGD": "0"}, positions=[position("A", "10", market_value=("10000", "SGD"))],
        prices={"A": "10"}, model={"A": "0"},
    )
    result, wire = run(inputs)
    assert trades(wire) == [("A", "SELL", "10")]  # the reference sells 1000 and fails NO_SHORTING
    assert result.status == "READY"


def test_trust_snapshot_sizes_from_the_market_value_converted_to_the_price_currency() -> None:
    inputs = build(
        cash={"USD": "20"},
        positions=[position("A", "30", market_value=("150", "EUR"))],
        prices={"A": "10"},
        fx={"EUR/USD": "1.2"},
        model={"A": "0.5"},
    )
    _, wire = run(inputs, valuation_mode="TRUST_SNAPSHOT")
    # TV = 150 x 1.2 + 20 = 200; target 100 USD; current 180 USD -> sell 8 (not 150 - 100 = 50 -> 5).
    assert trades(wire) == [("A", "SELL", "8")]


def test_trust_snapshot_without_the_market_value_rate_falls_back_to_quantity_times_price() -> None:
    inputs = build(
        cash={"USD": "0"},
        positions=[position("A", "30", market_value=("150", "EUR"))],
        prices={"A": ("10", "GBP")},
        fx={"EUR/USD": "1.2", "GBP/USD": "1.5"},
        model={"A": "0.5"},
    )
    _, wire = run(inputs, valuation_mode="TRUST_SNAPSHOT", block_on_missing_fx=False)
    assert wire["diagnostics"]["data_quality"]["fx_missing"] == ["EUR/GBP"]
    # TV = 180 USD -> target 90 USD = 60 GBP; current falls back to 30 x 10 = 300 GBP -> sell 24.
    assert trades(wire) == [("A", "SELL", "24")]


# ------------------------------------------------------- item 7: tax impact from the final intent set


def _two_gain_sells(**extra: object) -> dict:
    return build(
        cash={"USD": "0"},
        positions=[position("X", "10", lots=[lot("x", "10", "50")]), position("Y", "10", lots=[lot("y", "10", "50")])],
        prices={"X": "100", "Y": "100"},
        model={"X": "0.45", "Y": "0.3"},
        shelf={"X": shelf_entry("X", min_notional=("500", "USD")), "Y": "APPROVED"},
    )


def test_dust_suppressed_sell_gives_its_gains_budget_back() -> None:
    result, wire = run(_two_gain_sells(), enable_tax_awareness=True, max_realized_capital_gains="200")
    # X (sell 1, gain 50) is dust; the reference would still charge its 50 and cut Y to 3.
    assert [s["instrument_id"] for s in wire["diagnostics"]["suppressed_intents"]] == ["X"]
    assert trades(wire) == [("Y", "SELL", "4")]
    assert wire["diagnostics"]["warnings"] == []
    assert wire["tax_impact"] == {
        "total_realized_gain": {"amount": "200.0", "currency": "USD"},
        "total_realized_loss": {"amount": "0", "currency": "USD"},
        "budget_limit": {"amount": "200", "currency": "USD"},
        "budget_used": {"amount": "200", "currency": "USD"},
    }
    assert result.status == "READY"


def test_sell_dropped_by_turnover_counts_nothing_in_tax_impact() -> None:
    inputs = build(
        cash={"USD": "1000"},
        positions=[position("X", "10", lots=[lot("x", "10", "50")])],
        prices={"X": "100", "B": "100"},
        model={"X": "0.4", "B": "0.5"},
    )
    _, wire = run(inputs, enable_tax_awareness=True, max_turnover_pct="0.5")
    assert trades(wire) == [("B", "BUY", "10")]
    assert [d["instrument_id"] for d in wire["diagnostics"]["dropped_intents"]] == ["X"]
    assert wire["tax_impact"]["total_realized_gain"]["amount"] == "0"


# --------------------------------------------------------------------- item 13: lineage snapshot ids


def test_lineage_uses_snapshot_ids_when_given() -> None:
    inputs = build(prices={"A": "10"}, model={"A": "0.5"}, snapshot_id="ps_42", market_snapshot_id="md_7")
    _, wire = run(inputs)
    assert (wire["lineage"]["portfolio_snapshot_id"], wire["lineage"]["market_data_snapshot_id"]) == ("ps_42", "md_7")


# --------------------------------------------------------------------- item 18: FX-stage block path C


def test_fx_stage_block_returns_a_blocked_result_like_the_data_quality_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "generate_fx_intents", lambda *args: None)
    result, wire = run(build(prices={"A": "10"}, model={"A": "0.5"}), enable_tax_awareness=True)
    assert result.status == "BLOCKED"
    assert wire["intents"] == []
    assert wire["after_simulated"] == wire["before"]
    assert wire["explanation"] == {"summary": "Blocked"}
    assert wire["universe"]["coverage"] == {"price_coverage_pct": "0", "fx_coverage_pct": "0"}
    assert wire["tax_impact"] is None
    assert len(wire["rule_results"]) == 6
