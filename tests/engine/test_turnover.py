"""Turnover budget: whole intents, ranked, skip-and-continue (spec 3.12)."""

from __future__ import annotations

from tests.factories.engine import build, run, trades

INPUTS = build(
    cash={"USD": "50000"},
    prices={"A": "100", "B": "100", "C": "100", "D": "100"},
    model={"A": "0.3", "B": "0.2", "D": "0.04", "C": "0.04"},
)


def test_turnover_keeps_the_best_ranked_intents_and_skips_those_that_do_not_fit() -> None:
    result, wire = run(INPUTS, max_turnover_pct="0.4")
    # Budget 20000: A (15000) fits, B (10000) does not, C and D (2000 each, tie broken by id) still fit.
    assert [(i["intent_id"], i["instrument_id"]) for i in wire["intents"]] == [("oi_1", "A"), ("oi_4", "C"), ("oi_3", "D")]
    assert wire["diagnostics"]["dropped_intents"] == [
        {
            "instrument_id": "B",
            "reason": "TURNOVER_LIMIT",
            "potential_notional": {"amount": "10000.0", "currency": "USD"},
            "score": "0.2",
        }
    ]
    assert wire["diagnostics"]["warnings"] == ["PARTIAL_REBALANCE_TURNOVER_LIMIT"]
    assert result.status == "READY"


def test_kept_intents_come_back_in_ranking_order() -> None:
    inputs = build(cash={"USD": "1000"}, prices={"A": "10", "B": "10", "C": "10"}, model={"A": "0.04", "B": "0.3", "C": "0.2"})
    _, wire = run(inputs, max_turnover_pct="0.36")
    assert trades(wire) == [("B", "BUY", "30"), ("A", "BUY", "4")]
    assert [d["instrument_id"] for d in wire["diagnostics"]["dropped_intents"]] == ["C"]


def test_zero_budget_drops_every_intent() -> None:
    result, wire = run(INPUTS, max_turnover_pct="0")
    assert wire["intents"] == []
    assert [d["instrument_id"] for d in wire["diagnostics"]["dropped_intents"]] == ["A", "B", "C", "D"]
    assert result.status == "READY"


def test_budget_that_covers_everything_keeps_the_original_order() -> None:
    _, wire = run(INPUTS, max_turnover_pct="1")
    assert [i["instrument_id"] for i in wire["intents"]] == ["A", "B", "D", "C"]
    assert wire["diagnostics"]["dropped_intents"] == []
    _, unset = run(INPUTS)
    assert [i["instrument_id"] for i in unset["intents"]] == ["A", "B", "D", "C"]
