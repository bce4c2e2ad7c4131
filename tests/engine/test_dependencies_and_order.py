"""Dependency linking and execution ordering (spec 3.14, 3.15)."""

from __future__ import annotations

from tests.factories.engine import build, run


def _rotation() -> dict:
    # Sell a GBP and a USD holding, buy GBP, EUR and USD instruments.
    return build(
        cash={"USD": "0"},
        positions={"GB_OLD": "100", "US_OLD": "100"},
        prices={
            "GB_OLD": ("10", "GBP"),
            "US_OLD": ("10", "USD"),
            "GB_NEW": ("5", "GBP"),
            "EU_NEW": ("5", "EUR"),
            "US_NEW": ("5", "USD"),
        },
        fx={"GBP/USD": "1.25", "EUR/USD": "1.10"},
        model={"GB_NEW": "0.3", "EU_NEW": "0.3", "US_NEW": "0.3"},
    )


def _summary(wire: dict) -> list[tuple]:
    out = []
    for i in wire["intents"]:
        if i["intent_type"] == "SECURITY_TRADE":
            out.append((i["intent_id"], i["instrument_id"], i["side"], i["dependencies"]))
        else:
            out.append((i["intent_id"], i["pair"], i["rationale"]["code"], i["dependencies"]))
    return out


def test_sells_then_fx_then_buys_with_funding_and_same_currency_sell_dependencies() -> None:
    _, wire = run(_rotation())
    assert _summary(wire) == [
        ("oi_4", "GB_OLD", "SELL", []),
        ("oi_5", "US_OLD", "SELL", []),
        ("oi_fx_6", "GBP/USD", "SWEEP", []),
        ("oi_fx_7", "EUR/USD", "FUNDING", []),
        ("oi_1", "GB_NEW", "BUY", ["oi_4"]),  # funded by the GBP sale; a sweep is never a dependency
        ("oi_2", "EU_NEW", "BUY", ["oi_fx_7"]),
        ("oi_3", "US_NEW", "BUY", ["oi_5"]),
    ]


def test_same_currency_sell_links_can_be_switched_off() -> None:
    _, wire = run(_rotation(), link_buy_to_same_currency_sell_dependency=False)
    deps = {i["intent_id"]: i["dependencies"] for i in wire["intents"]}
    assert deps["oi_1"] == [] and deps["oi_3"] == []
    assert deps["oi_2"] == ["oi_fx_7"]


def test_buy_depends_on_funding_fx_before_the_last_same_currency_sell() -> None:
    inputs = build(
        cash={"USD": "125"},
        positions={"G1": "10", "G2": "10"},
        prices={"G1": ("10", "GBP"), "G2": ("10", "GBP"), "G3": ("10", "GBP")},
        fx={"GBP/USD": "1.25"},
        model={"G3": "1.0"},
    )
    _, wire = run(inputs)
    buy = next(i for i in wire["intents"] if i.get("side") == "BUY")
    # The buy (300 GBP) outgrows the two sales (200 GBP): funding FX first, then the *last* GBP sell.
    assert buy["dependencies"] == ["oi_fx_4", "oi_3"]
