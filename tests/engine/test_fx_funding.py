"""FX funding and sweep intents through the base currency (spec 3.13)."""

from __future__ import annotations

from tests.factories.engine import build, fx_intents, run


def test_foreign_buy_is_funded_with_a_buffered_fx_trade() -> None:
    inputs = build(
        base="SGD", cash={"SGD": "20000.00"}, prices={"US": ("50.0", "USD")}, fx={"USD/SGD": "1.30"}, model={"US": "0.4"}
    )
    result, wire = run(inputs, fx_buffer_pct="0.02")
    assert fx_intents(wire) == [
        {
            "intent_type": "FX_SPOT",
            "intent_id": "oi_fx_2",
            "pair": "USD/SGD",
            "buy_currency": "USD",
            "buy_amount": "6273.000",
            "sell_currency": "SGD",
            "sell_amount_estimated": "8154.90000",
            "dependencies": [],
            "rationale": {"code": "FUNDING", "message": "Fund"},
        }
    ]
    buy = wire["intents"][1]
    assert (buy["quantity"], buy["notional"]["amount"], buy["dependencies"]) == ("123", "6150.0", ["oi_fx_2"])
    assert [(c["currency"], c["amount"]) for c in wire["after_simulated"]["cash_balances"]] == [
        ("SGD", "11845.10000"),
        ("USD", "123.000"),
    ]
    assert result.status == "READY"


def test_idle_foreign_cash_is_swept_to_base_even_without_trades() -> None:
    inputs = build(cash={"USD": "100", "EUR": "50.00"}, fx={"EUR/USD": "1.1"}, model={})
    _, wire = run(inputs)
    assert fx_intents(wire) == [
        {
            "intent_type": "FX_SPOT",
            "intent_id": "oi_fx_1",
            "pair": "EUR/USD",
            "buy_currency": "USD",
            "buy_amount": "55.000",
            "sell_currency": "EUR",
            "sell_amount_estimated": "50.00",
            "dependencies": [],
            "rationale": {"code": "SWEEP", "message": "Sweep"},
        }
    ]
    assert [(c["currency"], c["amount"]) for c in wire["after_simulated"]["cash_balances"]] == [
        ("USD", "155.000"),
        ("EUR", "0.00"),
    ]


def test_fx_ids_continue_after_the_security_intents_and_use_the_inverse_rate() -> None:
    inputs = build(
        cash={"USD": "100000", "GBP": "1000"},
        prices={"AAPL": ("150", "USD"), "DBS": ("30", "SGD")},
        fx={"USD/SGD": "1.35", "GBP/USD": "1.25"},
        model={"AAPL": "0.3", "DBS": "0.3"},
    )
    _, wire = run(inputs, fx_buffer_pct="0")
    assert [(f["intent_id"], f["pair"], f["rationale"]["code"]) for f in fx_intents(wire)] == [
        ("oi_fx_3", "GBP/USD", "SWEEP"),
        ("oi_fx_4", "SGD/USD", "FUNDING"),
    ]
    funding = fx_intents(wire)[1]
    # SGD/USD is the inverse of USD/SGD: 40980 SGD x (1 / 1.35) at 28 significant digits.
    assert (funding["buy_amount"], funding["sell_amount_estimated"]) == ("40980", "30355.55555555555555555555555")
