"""Valuation of the before state and FX lookup (spec 3.1, 3.2)."""

from __future__ import annotations

from rebalance.engine import (
    FxRate,
    MarketDataSnapshot,
    Price,
    RebalanceInputs,
    prepare_inputs,
)
from rebalance.engine.fx import FxTable
from tests.factories.engine import D, build, position, run, shelf_entry


def test_same_currency_position_is_multiplied_by_one_point_zero_but_base_cash_is_not() -> None:
    inputs = build(cash={"USD": "1000.00"}, positions={"AAA": "10"}, prices={"AAA": "25.0"}, model={"AAA": "0.2"})
    _, wire = run(inputs)
    before = wire["before"]
    pos = before["positions"][0]
    assert pos["value_in_instrument_ccy"] == {"amount": "250.0", "currency": "USD"}
    assert pos["value_in_base_ccy"] == {"amount": "250.00", "currency": "USD"}
    assert before["total_value"] == {"amount": "1250.00", "currency": "USD"}
    assert pos["weight"] == "0.2000"
    assert before["allocation_by_asset_class"][-1] == {
        "key": "CASH",
        "weight": "0.8000",
        "value": {"amount": "1000.00", "currency": "USD"},
    }


def test_inverse_pair_is_used_as_one_over_rate() -> None:
    inputs = build(
        cash={"USD": "0"},
        positions={"BBB": "100"},
        prices={"BBB": ("8.00", "SGD")},
        fx={"USD/SGD": "1.25"},
        model={"BBB": "1"},
    )
    _, wire = run(inputs)
    assert wire["before"]["positions"][0]["value_in_base_ccy"] == {"amount": "640.000", "currency": "USD"}


def test_fx_table_first_row_wins_and_zero_rate_counts_as_absent() -> None:
    table = FxTable([FxRate("EUR/USD", D("0")), FxRate("EUR/USD", D("1.1")), FxRate("GBP/USD", D("1.3"))])
    assert table.rate("EUR", "USD") is None  # the zero first row hides the later one
    assert table.rate("USD", "USD") == D("1.0") and str(table.rate("USD", "USD")) == "1.0"
    assert table.rate("GBP", "USD") == D("1.3")
    assert str(table.rate("USD", "GBP")) == "0.7692307692307692307692307692"  # 28 significant digits
    assert table.rate("GBP", "EUR") is None  # no triangulation

    fallback = FxTable([FxRate("EUR/USD", D("0")), FxRate("USD/EUR", D("0.5"))])
    assert fallback.rate("EUR", "USD") == D(2)


def test_missing_cash_rate_contributes_zero_and_blocks_early() -> None:
    inputs = build(cash={"USD": "500", "CHF": "100"}, prices={"AAA": "10"}, model={"AAA": "0.5"})
    result, wire = run(inputs)
    assert wire["diagnostics"]["data_quality"]["fx_missing"] == ["CHF/USD"]
    assert wire["before"]["total_value"]["amount"] == "500"
    assert result.status == "BLOCKED"
    assert wire["intents"] == []


def test_first_price_row_wins() -> None:
    base = build(cash={"USD": "1000"}, positions={"AAA": "2"}, model={"AAA": "0"})
    inputs = RebalanceInputs(
        base.portfolio,
        MarketDataSnapshot([Price("AAA", D("10"), "USD"), Price("AAA", D("99"), "USD")]),
        base.model,
        base.shelf,
    )
    _, wire = run(inputs)
    assert wire["before"]["positions"][0]["price"] == {"amount": "10", "currency": "USD"}


def test_trust_snapshot_values_from_market_value_in_its_currency() -> None:
    inputs = build(
        cash={"USD": "40"},
        positions=[position("AAA", "10", market_value=("300", "EUR"))],
        prices={"AAA": ("25.0", "USD")},
        fx={"EUR/USD": "1.2"},
        model={"AAA": "0.9"},
    )
    _, trusted = run(inputs, valuation_mode="TRUST_SNAPSHOT")
    pos = trusted["before"]["positions"][0]
    assert pos["instrument_currency"] == "EUR"
    assert pos["price"] == {"amount": "25.0", "currency": "EUR"}  # shown with the valuation currency
    assert pos["value_in_instrument_ccy"] == {"amount": "300", "currency": "EUR"}
    assert pos["value_in_base_ccy"] == {"amount": "360.0", "currency": "USD"}

    _, calculated = run(inputs)
    pos = calculated["before"]["positions"][0]
    assert pos["instrument_currency"] == "USD"
    assert pos["value_in_base_ccy"] == {"amount": "250.00", "currency": "USD"}


def test_position_without_price_is_valued_at_zero_in_base_currency() -> None:
    inputs = build(cash={"SGD": "100"}, base="SGD", positions={"NOPX": "5"}, prices={}, model={})
    result, wire = run(inputs)
    pos = wire["before"]["positions"][0]
    assert pos["price"] is None
    assert pos["instrument_currency"] == "SGD"
    assert pos["value_in_instrument_ccy"] == {"amount": "0", "currency": "SGD"}
    assert wire["diagnostics"]["data_quality"]["price_missing"] == ["NOPX"]
    assert result.status == "BLOCKED"


def test_asset_class_buckets_in_first_appearance_order_with_cash_merged_into_a_cash_class() -> None:
    inputs = build(
        cash={"USD": "100"},
        positions={"BBB": "1", "AAA": "1", "CCC": "1"},
        prices={"AAA": "100", "BBB": "200", "CCC": "300"},
        model={},
        shelf={
            "AAA": shelf_entry("AAA", asset_class="EQUITY", attributes={"sector": "TECH", "region": "US"}),
            "BBB": shelf_entry("BBB", asset_class="CASH", attributes={"sector": "FIN"}),
            "CCC": shelf_entry("CCC", asset_class="EQUITY"),
        },
    )
    _, wire = run(inputs)
    before = wire["before"]
    assert [(m["key"], m["value"]["amount"]) for m in before["allocation_by_asset_class"]] == [
        ("CASH", "300.0"),
        ("EQUITY", "400.0"),
    ]
    assert {key: [(m["key"], m["weight"]) for m in metrics] for key, metrics in before["allocation_by_attribute"].items()} == {
        "sector": [("FIN", "0.2857"), ("TECH", "0.1429")],
        "region": [("US", "0.1429")],
    }
    assert before["allocation"] == before["allocation_by_instrument"]
    assert [m["key"] for m in before["allocation_by_instrument"]] == ["BBB", "AAA", "CCC"]


def test_zero_total_divides_weights_by_one() -> None:
    _, wire = run(build(cash={"USD": "0"}, model={}))
    assert wire["before"]["total_value"]["amount"] == "0"
    assert wire["before"]["allocation_by_asset_class"] == [
        {"key": "CASH", "weight": "0.0000", "value": {"amount": "0", "currency": "USD"}}
    ]


def test_before_state_is_valued_once_per_mode_and_shared_by_scenarios() -> None:
    prepared = prepare_inputs(build(positions={"AAA": "3"}, prices={"AAA": "10"}, model={"AAA": "0.5"}))
    assert prepared.before("CALCULATED") is prepared.before("CALCULATED")
    assert prepared.before("CALCULATED") is not prepared.before("TRUST_SNAPSHOT")
