"""Security intent sizing and dust suppression (spec 3.10)."""

from __future__ import annotations

from tests.factories.engine import build, run, shelf_entry, trades


def _security(wire: dict) -> list[dict]:
    return [i for i in wire["intents"] if i["intent_type"] == "SECURITY_TRADE"]


def test_quantity_is_floored_and_notionals_keep_their_scale() -> None:
    _, wire = run(build(cash={"USD": "10000.00"}, prices={"A": "33.0"}, model={"A": "0.5"}))
    (intent,) = _security(wire)
    assert intent == {
        "intent_type": "SECURITY_TRADE",
        "intent_id": "oi_1",
        "instrument_id": "A",
        "side": "BUY",
        "quantity": "151",
        "notional": {"amount": "4983.0", "currency": "USD"},
        "notional_base": {"amount": "4983.00", "currency": "USD"},
        "dependencies": [],
        "rationale": {"code": "DRIFT_REBALANCE", "message": "Align"},
        "constraints_applied": [],
    }


def test_sell_sizing_uses_the_held_quantity_times_price() -> None:
    inputs = build(cash={"USD": "0"}, positions={"A": "100"}, prices={"A": "10", "B": "10"}, model={"A": "0.25", "B": "0.75"})
    _, wire = run(inputs)
    assert trades(wire) == [("A", "SELL", "75"), ("B", "BUY", "75")]


def test_untraded_instruments_are_logged_as_suppressed_with_zero_notional_when_a_threshold_applies() -> None:
    inputs = build(cash={"USD": "500"}, positions={"A": "50"}, prices={"A": "10"}, model={"A": "0.5"})
    result, wire = run(inputs)
    assert trades(wire) == [] and wire["diagnostics"]["suppressed_intents"] == []

    result, wire = run(inputs, min_trade_notional=("1", "USD"))
    assert wire["diagnostics"]["suppressed_intents"] == [
        {
            "instrument_id": "A",
            "reason": "BELOW_MIN_NOTIONAL",
            "intended_notional": {"amount": "0", "currency": "USD"},
            "threshold": {"amount": "1", "currency": "USD"},
        }
    ]
    assert result.status == "READY"


def test_request_threshold_overrides_the_shelf_threshold_and_ignores_currency() -> None:
    inputs = build(
        cash={"USD": "10000"},
        prices={"A": "15", "B": "10"},
        model={"A": "0.015", "B": "0.15"},
        shelf={"A": shelf_entry("A", min_notional=("1000", "USD")), "B": shelf_entry("B", min_notional=("2000", "USD"))},
    )
    _, by_shelf = run(inputs)
    assert trades(by_shelf) == []
    assert [(s["instrument_id"], s["intended_notional"]["amount"], s["threshold"]["amount"])
            for s in by_shelf["diagnostics"]["suppressed_intents"]] == [("A", "150", "1000"), ("B", "1500", "2000")]

    _, by_request = run(inputs, min_trade_notional=("100", "EUR"))
    assert trades(by_request) == [("A", "BUY", "10"), ("B", "BUY", "150")]
    assert [i["constraints_applied"] for i in _security(by_request)] == [["MIN_NOTIONAL"], ["MIN_NOTIONAL"]]


def test_threshold_is_recorded_but_not_applied_when_dust_suppression_is_off() -> None:
    inputs = build(prices={"A": "15"}, model={"A": "0.015"}, shelf={"A": shelf_entry("A", min_notional=("1000", "USD"))})
    _, wire = run(inputs, suppress_dust_trades=False)
    assert trades(wire) == [("A", "BUY", "10")]
    assert _security(wire)[0]["constraints_applied"] == ["MIN_NOTIONAL"]
    assert wire["diagnostics"]["suppressed_intents"] == []


def test_intent_ids_count_emitted_intents_only() -> None:
    inputs = build(
        prices={"A": "10", "B": "10", "C": "10"},
        model={"A": "0.3", "B": "0.001", "C": "0.3"},
    )
    _, wire = run(inputs, min_trade_notional=("50", "USD"))
    assert [(i["intent_id"], i["instrument_id"]) for i in _security(wire)] == [("oi_1", "A"), ("oi_2", "C")]


def test_foreign_target_is_sized_in_its_own_currency() -> None:
    inputs = build(
        cash={"SGD": "20000.00"}, base="SGD", prices={"US": ("40.00", "USD")}, fx={"USD/SGD": "1.25"}, model={"US": "0.5"}
    )
    _, wire = run(inputs)
    (intent,) = _security(wire)
    # 20000.00 x 0.5 / 1.25 = 8000.0 USD -> 200 shares.
    assert (intent["quantity"], intent["notional"], intent["notional_base"]) == (
        "200",
        {"amount": "8000.00", "currency": "USD"},
        {"amount": "10000.0000", "currency": "SGD"},
    )
