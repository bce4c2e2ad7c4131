"""Tax-aware selling: HIFO lots, the realized-gains budget and tax impact (spec 3.11)."""

from __future__ import annotations

from tests.factories.engine import build, lot, position, run, trades

LOTS = [
    lot("L1", "20", "30", date="2023-01-01"),
    lot("L2", "20", "60", date="2023-06-01"),  # a loss lot at a price of 50
    lot("L3", "20", "45", date="2023-03-01"),
]


def _holding(lots: list, quantity: str = "60", **kwargs: object) -> dict:
    return build(
        cash={"USD": "0"}, positions=[position("X", quantity, lots=lots, **kwargs)], prices={"X": "50"}, model={"X": "0.5"}
    )


def test_hifo_sells_the_most_expensive_lots_first_and_reports_gains_and_losses() -> None:
    result, wire = run(_holding(LOTS), enable_tax_awareness=True)
    assert trades(wire) == [("X", "SELL", "30")]
    # 20 from L2 at a loss of 10.0 each, then 10 from L3 at a gain of 5.0 each.
    assert wire["tax_impact"] == {
        "total_realized_gain": {"amount": "50.0", "currency": "USD"},
        "total_realized_loss": {"amount": "200.0", "currency": "USD"},
        "budget_limit": None,
        "budget_used": None,
    }
    assert result.status == "READY"


def test_gains_budget_limits_the_sell_and_snaps_the_used_budget() -> None:
    result, wire = run(_holding(LOTS), enable_tax_awareness=True, max_realized_capital_gains="25")
    assert trades(wire) == [("X", "SELL", "25")]
    intent = wire["intents"][0]
    assert intent["constraints_applied"] == ["TAX_BUDGET"]
    assert wire["diagnostics"]["warnings"] == ["TAX_BUDGET_LIMIT_REACHED"]
    assert wire["diagnostics"]["tax_budget_constraint_events"] == [
        {"instrument_id": "X", "requested_quantity": "30", "allowed_quantity": "25", "reason_code": "TAX_BUDGET_LIMIT_REACHED"}
    ]
    assert wire["tax_impact"]["total_realized_gain"]["amount"] == "25.0"
    assert wire["tax_impact"]["budget_limit"] == {"amount": "25", "currency": "USD"}
    assert wire["tax_impact"]["budget_used"] == {"amount": "25", "currency": "USD"}
    assert result.status == "READY"


def test_budget_limited_quantity_can_be_fractional() -> None:
    _, wire = run(_holding([lot("L4", "60", "47")]), enable_tax_awareness=True, max_realized_capital_gains="10")
    assert trades(wire) == [("X", "SELL", "3.333333333333333333333333333")]
    assert wire["intents"][0]["notional"]["amount"] == "166.6666666666666666666666666"
    assert wire["tax_impact"]["total_realized_gain"]["amount"] == "9.999999999999999999999999999"
    assert wire["tax_impact"]["budget_used"]["amount"] == "10"


def test_exhausted_budget_stops_before_the_next_gain_lot() -> None:
    lots = [lot("Z", "0", "90"), lot("A", "5", "40"), lot("B", "50", "30")]
    _, wire = run(_holding(lots, quantity="55"), enable_tax_awareness=True, max_realized_capital_gains="50")
    # Lot Z is empty and skipped; A realizes exactly 5 x 10 = 50, then B cannot be touched.
    assert trades(wire) == [("X", "SELL", "5")]


def test_tax_awareness_off_ignores_lots_and_budget() -> None:
    result, wire = run(_holding(LOTS), max_realized_capital_gains="0")
    assert trades(wire) == [("X", "SELL", "30")]
    assert wire["tax_impact"] is None
    assert wire["diagnostics"]["warnings"] == []


def test_loss_lots_never_consume_the_budget() -> None:
    _, wire = run(_holding([lot("LOSS", "60", "70")]), enable_tax_awareness=True, max_realized_capital_gains="0")
    assert trades(wire) == [("X", "SELL", "30")]
    assert wire["tax_impact"]["total_realized_loss"]["amount"] == "600.0"
    assert wire["tax_impact"]["budget_used"]["amount"] == "0"


def test_position_without_lots_sells_in_full_with_no_gain() -> None:
    _, wire = run(_holding([]), enable_tax_awareness=True, max_realized_capital_gains="1")
    assert trades(wire) == [("X", "SELL", "30")]
    assert wire["tax_impact"]["total_realized_gain"]["amount"] == "0"


def test_lot_cost_is_converted_to_the_price_currency() -> None:
    inputs = build(
        cash={"USD": "0"},
        positions=[position("X", "40", lots=[lot("E", "40", "80", currency="EUR")])],
        prices={"X": "100"},
        fx={"EUR/USD": "1.1"},
        model={"X": "0.5"},
    )
    _, wire = run(inputs, enable_tax_awareness=True)
    # (100 - 80 x 1.1) x 1.0 per unit x 20 units.
    assert wire["tax_impact"]["total_realized_gain"]["amount"] == "240.00"


def test_lot_cost_without_fx_rate_sells_in_full_and_flags_the_missing_rate() -> None:
    inputs = build(
        cash={"USD": "0"},
        positions=[position("X", "40", lots=[lot("E", "40", "80", currency="EUR")])],
        prices={"X": "100"},
        model={"X": "0.5"},
    )
    blocked, wire = run(inputs, enable_tax_awareness=True, max_realized_capital_gains="1")
    assert blocked.status == "BLOCKED"
    assert wire["diagnostics"]["data_quality"]["fx_missing"] == ["EUR/USD"]

    ready, wire = run(inputs, enable_tax_awareness=True, max_realized_capital_gains="1", block_on_missing_fx=False)
    assert ready.status == "READY"
    assert trades(wire) == [("X", "SELL", "20")]
    assert wire["tax_impact"]["total_realized_gain"]["amount"] == "0"


def test_lots_covering_less_than_the_requested_sell_are_a_limitation() -> None:
    # A trusted market value far above quantity x price asks to sell more than is held.
    inputs = _holding([lot("L", "60", "50")], market_value=("9000", "USD"))
    _, wire = run(inputs, valuation_mode="TRUST_SNAPSHOT", enable_tax_awareness=True)
    assert trades(wire) == [("X", "SELL", "60")]
    assert wire["diagnostics"]["tax_budget_constraint_events"][0]["requested_quantity"] == "90"
