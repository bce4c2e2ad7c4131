"""Short builders for engine inputs, so each test states only what matters to it.

    inputs = build(cash={"USD": "10000"}, prices={"AAA": "100"}, model={"AAA": "0.5"})
    result, wire = run(inputs, min_trade_notional=("500", "USD"))

Numbers are written as strings and become Decimals with the written scale, as on the wire.
Shelf entries default to APPROVED for every model target and holding (pass `shelf=` to control
them; a status string or a ShelfEntry per instrument, or omit an id to leave it off the shelf).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from decimal import Decimal
from typing import Any

from rebalance.engine import (
    CashBalance,
    EngineOptions,
    FxRate,
    MarketDataSnapshot,
    ModelPortfolio,
    ModelTarget,
    Money,
    PortfolioSnapshot,
    Position,
    Price,
    RebalanceInputs,
    RebalanceResult,
    ShelfEntry,
    TaxLot,
    prepare_inputs,
    result_to_wire,
    run_rebalance,
)

D = Decimal

_DECIMAL_OPTIONS = {
    f.name
    for f in fields(EngineOptions)
    if f.name
    in {
        "compare_target_methods_tolerance",
        "cash_band_min_weight",
        "cash_band_max_weight",
        "single_position_max_weight",
        "fx_buffer_pct",
        "min_cash_buffer_pct",
        "max_turnover_pct",
        "max_realized_capital_gains",
    }
}


def lot(lot_id: str, quantity: str, cost: str, currency: str = "USD", date: str = "2024-01-01") -> TaxLot:
    return TaxLot(lot_id, D(quantity), Money(D(cost), currency), date)


def position(
    instrument_id: str,
    quantity: str,
    *,
    market_value: tuple[str, str] | None = None,
    lots: Sequence[TaxLot] = (),
) -> Position:
    mv = None if market_value is None else Money(D(market_value[0]), market_value[1])
    return Position(instrument_id, D(quantity), mv, list(lots))


def shelf_entry(instrument_id: str, status: str = "APPROVED", **kwargs: Any) -> ShelfEntry:
    if "min_notional" in kwargs and isinstance(kwargs["min_notional"], tuple):
        amount, currency = kwargs["min_notional"]
        kwargs["min_notional"] = Money(D(amount), currency)
    return ShelfEntry(instrument_id, status, **kwargs)


def build(
    *,
    base: str = "USD",
    cash: Mapping[str, str] | Sequence[CashBalance] | None = None,
    positions: Mapping[str, str] | Sequence[Position] = (),
    prices: Mapping[str, str | tuple[str, str]] | None = None,
    fx: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    model: Mapping[str, str] | Sequence[tuple[str, str]] = (),
    shelf: Mapping[str, str | ShelfEntry] | None = None,
    portfolio_id: str = "pf_test",
    snapshot_id: str | None = None,
    market_snapshot_id: str | None = None,
) -> RebalanceInputs:
    """Build RebalanceInputs from compact literals (see the module docstring)."""
    if cash is None:
        cash = {base: "10000"}
    if isinstance(cash, Mapping):
        cash_rows = [CashBalance(ccy, D(amount)) for ccy, amount in cash.items()]
    else:
        cash_rows = list(cash)
    if isinstance(positions, Mapping):
        position_rows = [Position(iid, D(qty)) for iid, qty in positions.items()]
    else:
        position_rows = list(positions)
    price_rows = []
    for iid, value in (prices or {}).items():
        amount, currency = (value, base) if isinstance(value, str) else value
        price_rows.append(Price(iid, D(amount), currency))
    fx_items = fx.items() if isinstance(fx, Mapping) else fx
    fx_rows = [FxRate(pair, D(rate)) for pair, rate in fx_items]
    model_items = model.items() if isinstance(model, Mapping) else model
    targets = [ModelTarget(iid, D(weight)) for iid, weight in model_items]
    if shelf is None:
        ids = [t.instrument_id for t in targets] + [p.instrument_id for p in position_rows]
        shelf = dict.fromkeys(ids, "APPROVED")
    shelf_rows = [
        value if isinstance(value, ShelfEntry) else ShelfEntry(iid, value) for iid, value in shelf.items()
    ]
    return RebalanceInputs(
        PortfolioSnapshot(portfolio_id, base, position_rows, cash_rows, snapshot_id),
        MarketDataSnapshot(price_rows, fx_rows, market_snapshot_id),
        ModelPortfolio(targets),
        shelf_rows,
    )


def options(**overrides: Any) -> EngineOptions:
    """EngineOptions with string decimals, ("amount", "ccy") money and {key: "w"} groups converted."""
    converted: dict[str, Any] = {}
    for name, value in overrides.items():
        if name in _DECIMAL_OPTIONS and value is not None:
            value = D(value)
        elif name == "min_trade_notional" and isinstance(value, tuple):
            value = Money(D(value[0]), value[1])
        elif name in ("group_constraints", "max_overdraft_by_ccy"):
            value = {key: D(v) for key, v in value.items()}
        converted[name] = value
    return EngineOptions(**converted)


def run(inputs: RebalanceInputs, **overrides: Any) -> tuple[RebalanceResult, dict[str, Any]]:
    """Run one scenario; returns the typed result and its wire dict."""
    result = run_rebalance(prepare_inputs(inputs), options(**overrides))
    return result, result_to_wire(result)


def trades(wire: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(instrument, side, quantity) of the SECURITY_TRADE intents, in execution order."""
    return [
        (i["instrument_id"], i["side"], i["quantity"]) for i in wire["intents"] if i["intent_type"] == "SECURITY_TRADE"
    ]


def fx_intents(wire: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for i in wire["intents"] if i["intent_type"] == "FX_SPOT"]


def targets(wire: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["instrument_id"]: t for t in wire["target"]["targets"]}


def rule(wire: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """The first rule result with that id."""
    return next(r for r in wire["rule_results"] if r["rule_id"] == rule_id)
