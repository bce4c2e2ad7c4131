"""Workflow gate decision (spec 3.21)."""

from __future__ import annotations

from tests.factories.engine import build, position, run

CLEAN = build(prices={"A": "10"}, model={"A": "0.5"})


def test_clean_run_is_execution_ready() -> None:
    _, wire = run(CLEAN)
    assert wire["gate_decision"] == {
        "gate": "EXECUTION_READY",
        "recommended_next_step": "EXECUTE",
        "reasons": [],
        "summary": {
            "hard_fail_count": 0,
            "soft_fail_count": 0,
            "new_high_suitability_count": 0,
            "new_medium_suitability_count": 0,
        },
    }


def test_client_consent_policy() -> None:
    _, required = run(CLEAN, workflow_requires_client_consent=True)
    assert (required["gate_decision"]["gate"], required["gate_decision"]["recommended_next_step"]) == (
        "CLIENT_CONSENT_REQUIRED",
        "REQUEST_CLIENT_CONSENT",
    )
    _, obtained = run(CLEAN, workflow_requires_client_consent=True, client_consent_already_obtained=True)
    assert obtained["gate_decision"]["gate"] == "EXECUTION_READY"


def test_gates_can_be_switched_off() -> None:
    _, wire = run(CLEAN, enable_workflow_gates=False)
    assert wire["gate_decision"] is None


def test_reasons_are_sorted_high_first_then_by_source() -> None:
    inputs = build(
        cash={"USD": "0"},
        positions=[position("A", "10", market_value=("1000", "USD")), position("NOPX", "1")],
        prices={"A": "10"},
        model={"A": "0"},
    )
    result, wire = run(
        inputs, valuation_mode="TRUST_SNAPSHOT", block_on_missing_prices=False, cash_band_max_weight="0.5"
    )
    gate = wire["gate_decision"]
    assert result.status == "BLOCKED"
    assert (gate["gate"], gate["recommended_next_step"]) == ("BLOCKED", "FIX_INPUT")
    assert [(r["reason_code"], r["severity"], r["source"], r["details"]) for r in gate["reasons"]] == [
        ("DATA_QUALITY_MISSING_PRICE", "HIGH", "DATA_QUALITY", {"count": "3"}),
        ("HARD_RULE_FAIL:NO_SHORTING", "HIGH", "RULE_ENGINE", {"reason_code": "SELL_EXCEEDS_HOLDINGS"}),
        ("SOFT_RULE_FAIL:CASH_BAND", "MEDIUM", "RULE_ENGINE", {"reason_code": "THRESHOLD_BREACH"}),
    ]
    assert gate["summary"]["hard_fail_count"] == 1
    assert gate["summary"]["soft_fail_count"] == 1
