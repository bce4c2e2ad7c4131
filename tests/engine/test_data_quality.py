"""Data-quality gates and the shape of early-blocked results (spec 3.9, 2.11 paths A/B)."""

from __future__ import annotations

from tests.factories.engine import build, rule, run


def test_unheld_target_without_price_blocks_on_the_late_gate() -> None:
    inputs = build(prices={"B": "10"}, model={"A": "0.3", "B": "0.3"})
    result, wire = run(inputs, min_trade_notional=("5000", "USD"), enable_tax_awareness=True)
    assert result.status == "BLOCKED"
    assert wire["intents"] == []
    assert wire["diagnostics"]["data_quality"] == {"price_missing": ["A"], "fx_missing": [], "shelf_missing": []}
    # Intent generation ran (B was suppressed as dust) before the late gate blocked.
    assert [s["instrument_id"] for s in wire["diagnostics"]["suppressed_intents"]] == ["B"]
    assert rule(wire, "MIN_TRADE_SIZE")["reason_code"] == "INTENTS_SUPPRESSED"
    assert wire["tax_impact"] is None
    assert wire["reconciliation"] is None
    assert wire["universe"]["coverage"] == {"price_coverage_pct": "0", "fx_coverage_pct": "0"}
    assert wire["explanation"] == {"summary": "Blocked"}
    assert wire["after_simulated"] == wire["before"]
    assert [t["instrument_id"] for t in wire["target"]["targets"]] == ["A", "B"]  # trace kept


def test_blocked_result_evaluates_the_core_rules_on_the_before_state() -> None:
    inputs = build(cash={"USD": "100"}, positions={"A": "1", "NOPX": "2"}, prices={"A": "900"}, model={"A": "1"})
    result, wire = run(inputs, single_position_max_weight="0.5")
    assert result.status == "BLOCKED"
    assert [(r["rule_id"], r["status"]) for r in wire["rule_results"]] == [
        ("CASH_BAND", "PASS"),
        ("SINGLE_POSITION_MAX", "FAIL"),
        ("DATA_QUALITY", "FAIL"),
        ("MIN_TRADE_SIZE", "PASS"),
        ("NO_SHORTING", "PASS"),
        ("INSUFFICIENT_CASH", "PASS"),
    ]
    assert rule(wire, "SINGLE_POSITION_MAX")["measured"] == "0.9"
    assert rule(wire, "DATA_QUALITY")["measured"] == "1"
    assert wire["gate_decision"]["gate"] == "BLOCKED"


def test_missing_data_does_not_block_when_its_flag_is_off_but_is_still_reported() -> None:
    inputs = build(
        cash={"USD": "1000"},
        positions={"NOPX": "3"},
        prices={"A": "10"},
        model={"A": "0.5", "M": "0.1"},
        shelf={"A": "APPROVED", "M": "APPROVED", "NOPX": "APPROVED"},
    )
    result, wire = run(inputs, block_on_missing_prices=False)
    assert result.status == "READY"
    # Duplicates accumulate across stages (before valuation, sizing, after valuation) - parity.
    assert wire["diagnostics"]["data_quality"]["price_missing"] == ["NOPX", "M", "NOPX", "NOPX"]
    assert rule(wire, "DATA_QUALITY") == {
        "rule_id": "DATA_QUALITY",
        "severity": "HARD",
        "status": "PASS",
        "measured": "0",
        "threshold": {"max": "0"},
        "reason_code": "OK",
        "remediation_hint": None,
    }
    assert wire["gate_decision"]["reasons"] == [
        {"reason_code": "DATA_QUALITY_MISSING_PRICE", "severity": "HIGH", "source": "DATA_QUALITY", "details": {"count": "4"}}
    ]
    assert wire["gate_decision"]["gate"] == "EXECUTION_READY"


def test_missing_fx_of_a_target_currency_blocks_late() -> None:
    inputs = build(cash={"SGD": "1000"}, base="SGD", prices={"US": ("10", "USD")}, model={"US": "0.4"})
    result, wire = run(inputs)
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["data_quality"]["fx_missing"] == ["USD/SGD"]
    assert wire["gate_decision"]["reasons"][0]["reason_code"] == "DATA_QUALITY_MISSING_FX"
