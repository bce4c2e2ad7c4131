"""After state, post-trade rules, reconciliation and final status (spec 3.17-3.20)."""

from __future__ import annotations

from tests.factories.engine import build, lot, position, rule, run, trades


def test_cash_outside_the_band_is_a_soft_failure_that_needs_review() -> None:
    result, wire = run(build(prices={"A": "10"}, model={"A": "0.5"}), cash_band_min_weight="0.01", cash_band_max_weight="0.3")
    assert rule(wire, "CASH_BAND") == {
        "rule_id": "CASH_BAND",
        "severity": "SOFT",
        "status": "FAIL",
        "measured": "0.5",
        "threshold": {"min": "0.01", "max": "0.3"},
        "reason_code": "THRESHOLD_BREACH",
        "remediation_hint": "Portfolio cash is outside policy bands.",
    }
    assert result.status == "PENDING_REVIEW"
    assert wire["gate_decision"]["gate"] == "RISK_REVIEW_REQUIRED"
    assert wire["reconciliation"]["status"] == "OK"


def test_every_tradeable_instrument_above_the_limit_fails_the_single_position_rule() -> None:
    # A gains budget of 0 freezes the sells, so A and B stay at 45% each.
    inputs = build(
        cash={"USD": "100"},
        positions=[position("A", "45", lots=[lot("a", "45", "1")]), position("B", "45", lots=[lot("b", "45", "1")])],
        prices={"A": "10", "B": "10", "C": "10"},
        model={"A": "0.3", "B": "0.3", "C": "0.1"},
    )
    result, wire = run(inputs, single_position_max_weight="0.4", enable_tax_awareness=True, max_realized_capital_gains="0")
    assert trades(wire) == [("C", "BUY", "10")]
    failures = [r for r in wire["rule_results"] if r["rule_id"] == "SINGLE_POSITION_MAX"]
    assert [(r["status"], r["measured"], r["remediation_hint"]) for r in failures] == [
        ("FAIL", "0.45", "Instrument A exceeds max weight."),
        ("FAIL", "0.45", "Instrument B exceeds max weight."),
    ]
    assert result.status == "BLOCKED"
    assert wire["reconciliation"] is None
    assert wire["diagnostics"]["warnings"] == ["TAX_BUDGET_LIMIT_REACHED"]
    assert wire["gate_decision"]["summary"]["hard_fail_count"] == 2


def test_single_position_rule_reports_the_largest_weight_or_no_limit() -> None:
    _, wire = run(build(prices={"A": "10", "B": "10"}, model={"A": "0.3", "B": "0.2"}), single_position_max_weight="0.5")
    assert (rule(wire, "SINGLE_POSITION_MAX")["status"], rule(wire, "SINGLE_POSITION_MAX")["measured"]) == ("PASS", "0.3")
    _, wire = run(build(prices={"A": "10"}, model={"A": "0.3"}))
    assert rule(wire, "SINGLE_POSITION_MAX") == {
        "rule_id": "SINGLE_POSITION_MAX",
        "severity": "HARD",
        "status": "PASS",
        "measured": "0",
        "threshold": {"max": "-1"},
        "reason_code": "NO_LIMIT_SET",
        "remediation_hint": None,
    }


def test_selling_more_than_held_fails_no_shorting() -> None:
    # A trusted market value ten times quantity x price sizes a sell far beyond the holding.
    inputs = build(cash={"USD": "0"}, positions=[position("A", "10", market_value=("1000", "USD"))], prices={"A": "10"},
                   model={"A": "0"})
    result, wire = run(inputs, valuation_mode="TRUST_SNAPSHOT")
    assert trades(wire) == [("A", "SELL", "100")]
    assert rule(wire, "NO_SHORTING")["status"] == "FAIL"
    assert rule(wire, "NO_SHORTING")["measured"] == "-90"
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["warnings"] == ["SIMULATION_SAFETY_CHECK_FAILED"]
    assert wire["explanation"] == {"summary": "BLOCKED", "target_method_comparison": None}


def test_fx_buffer_overdrawing_base_cash_fails_insufficient_cash() -> None:
    inputs = build(cash={"USD": "1000"}, prices={"EU": ("10", "EUR")}, fx={"EUR/USD": "1.0"}, model={"EU": "1.0"})
    result, wire = run(inputs, fx_buffer_pct="0.05")
    assert rule(wire, "INSUFFICIENT_CASH")["measured"] == "-50.000"
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["warnings"] == ["SIMULATION_SAFETY_CHECK_FAILED"]


def test_short_and_overdrawn_together_warn_twice() -> None:
    inputs = build(
        cash={"USD": "0"},
        positions=[position("A", "10", market_value=("1000", "USD"))],
        prices={"A": "10", "EU": ("10", "EUR")},
        fx={"EUR/USD": "1.0"},
        model={"A": "0", "EU": "1.0"},
    )
    result, wire = run(inputs, valuation_mode="TRUST_SNAPSHOT", fx_buffer_pct="0.5")
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["warnings"] == ["SIMULATION_SAFETY_CHECK_FAILED", "SIMULATION_SAFETY_CHECK_FAILED"]


def test_trusted_values_that_differ_from_prices_fail_reconciliation() -> None:
    inputs = build(cash={"USD": "0"}, positions=[position("A", "10", market_value=("5000", "USD"))], prices={"A": "10"},
                   model={"A": "1"})
    result, wire = run(inputs, valuation_mode="TRUST_SNAPSHOT")
    assert trades(wire) == []
    assert wire["reconciliation"] == {
        "before_total_value": {"amount": "5000.0", "currency": "USD"},
        "after_total_value": {"amount": "100.0", "currency": "USD"},
        "delta": {"amount": "-4900.0", "currency": "USD"},
        "tolerance": {"amount": "3.00000", "currency": "USD"},
        "status": "MISMATCH",
    }
    assert wire["rule_results"][-1] == {
        "rule_id": "RECONCILIATION",
        "severity": "HARD",
        "status": "FAIL",
        "measured": "4900.0",
        "threshold": {"max": "3.00000"},
        "reason_code": "VALUE_MISMATCH",
        "remediation_hint": "Check pricing/FX or engine logic.",
    }
    assert len(wire["rule_results"]) == 7
    assert result.status == "BLOCKED"


def test_after_state_applies_trades_to_positions_and_cash() -> None:
    inputs = build(cash={"USD": "500.0"}, positions={"OLD": "10"}, prices={"OLD": "50.0", "NEW": "20.0"}, model={"NEW": "0.5"})
    result, wire = run(inputs)
    after = wire["after_simulated"]
    assert [(p["instrument_id"], p["quantity"], p["value_in_base_ccy"]["amount"], p["weight"]) for p in after["positions"]] == [
        ("OLD", "0", "0.00", "0.0000"),  # zero-quantity positions are kept
        ("NEW", "25", "500.00", "0.5000"),  # new positions are appended
    ]
    assert after["cash_balances"] == [{"currency": "USD", "amount": "500.0", "settled": None, "pending": None}]
    assert wire["reconciliation"] == {
        "before_total_value": {"amount": "1000.00", "currency": "USD"},
        "after_total_value": {"amount": "1000.00", "currency": "USD"},
        "delta": {"amount": "0.00", "currency": "USD"},
        "tolerance": {"amount": "1.000000", "currency": "USD"},
        "status": "OK",
    }
    assert result.status == "READY"


def test_target_stage_review_promotes_a_clean_run_to_pending_review() -> None:
    result, wire = run(build(prices={"A": "10", "B": "10"}, model={"A": "0.8", "B": "0.8"}))
    assert all(r["status"] == "PASS" for r in wire["rule_results"])
    assert result.status == "PENDING_REVIEW"
    assert wire["explanation"]["summary"] == "PENDING_REVIEW"
    assert wire["gate_decision"]["gate"] == "EXECUTION_READY"  # reference behaviour, kept
