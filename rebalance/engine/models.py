"""Typed inputs of the rebalance engine (spec/engine.md sections 1.1 to 1.3), and the request's shape.

These slotted dataclasses are the one declaration of the request's portfolio, market data, model
and shelf: the HTTP layer validates the wire format straight into them, writes the canonical
request from them and documents them in OpenAPI, all derived from the fields below, their
defaults and their `Meta` (shapes.py). Adding a field here is the whole change on the wire side.

The engine only reads them (it never mutates its inputs, so one set of inputs is shared by every
scenario of a batch). All numbers are `Decimal`; nothing here is ever a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Literal, get_args

from dpm_async.shapes import Meta

from .shapes import (
    AttributeKeyStr,
    AttributeValueStr,
    CurrencyStr,
    IdStr,
    NonNegativeDecimal,
    PairStr,
    PositiveDecimal,
)

# Shelf statuses (spec 1.2).
APPROVED = "APPROVED"
RESTRICTED = "RESTRICTED"
BANNED = "BANNED"
SUSPENDED = "SUSPENDED"
SELL_ONLY = "SELL_ONLY"
type ShelfStatus = Literal["APPROVED", "RESTRICTED", "BANNED", "SUSPENDED", "SELL_ONLY"]
type LiquidityTier = Literal["L1", "L2", "L3", "L4", "L5"]
SHELF_STATUSES: tuple[str, ...] = get_args(ShelfStatus)
LIQUIDITY_TIERS: tuple[str, ...] = get_args(LiquidityTier)

# How many rows a request may carry, per list (docs/api.md, "Limits").
MAX_POSITIONS = 10_000
MAX_CASH_BALANCES = 100
MAX_LOTS = 1_000
MAX_PRICES = 20_000
MAX_FX_RATES = 1_000
MAX_TARGETS = 10_000
MAX_SHELF_ENTRIES = 20_000
MAX_ATTRIBUTES = 64


@dataclass(slots=True)
class Money:
    """An amount in a currency."""

    amount: Decimal
    currency: CurrencyStr


@dataclass(slots=True)
class TaxLot:
    """One tax lot of a position (used by tax-aware HIFO selling)."""

    lot_id: IdStr
    quantity: NonNegativeDecimal
    unit_cost: Money
    purchase_date: Annotated[IdStr, Meta(description="ISO date; compared as a plain string.", example="2021-03-15")]


@dataclass(slots=True)
class Position:
    """A holding. When lots are given, their quantities must add up to `quantity` (within 0.0001)."""

    instrument_id: IdStr
    quantity: Decimal
    market_value: Money | None = None
    lots: Annotated[list[TaxLot], Meta(max_length=MAX_LOTS, unique="lot_id")] = field(default_factory=list)


@dataclass(slots=True)
class CashBalance:
    """Cash in one currency; at most one balance per currency."""

    currency: CurrencyStr
    amount: Decimal
    settled: Decimal | None = None
    pending: Decimal | None = None


@dataclass(slots=True)
class PortfolioSnapshot:
    """The portfolio to rebalance. Instrument ids are unique within `positions`."""

    portfolio_id: IdStr
    base_currency: CurrencyStr
    positions: Annotated[list[Position], Meta(max_length=MAX_POSITIONS, unique="instrument_id")] = field(default_factory=list)
    cash_balances: Annotated[list[CashBalance], Meta(max_length=MAX_CASH_BALANCES, unique="currency")] = field(default_factory=list)
    snapshot_id: IdStr | None = None


@dataclass(slots=True)
class Price:
    """The price of one instrument, in its trading currency."""

    instrument_id: IdStr
    price: PositiveDecimal
    currency: CurrencyStr


@dataclass(slots=True)
class FxRate:
    """An FX rate: 1 unit of the pair's left currency = `rate` units of the right one."""

    pair: PairStr
    rate: PositiveDecimal


@dataclass(slots=True)
class MarketDataSnapshot:
    """Prices and FX rates. Instrument ids and pairs are unique."""

    prices: Annotated[list[Price], Meta(max_length=MAX_PRICES, unique="instrument_id")] = field(default_factory=list)
    fx_rates: Annotated[list[FxRate], Meta(max_length=MAX_FX_RATES, unique="pair")] = field(default_factory=list)
    snapshot_id: IdStr | None = None


@dataclass(slots=True)
class ModelTarget:
    """One instrument's weight in the model portfolio."""

    instrument_id: IdStr
    weight: Decimal


@dataclass(slots=True)
class ModelPortfolio:
    """The model portfolio; instrument ids are unique. `targets` may be empty but must be present."""

    targets: Annotated[list[ModelTarget], Meta(max_length=MAX_TARGETS, unique="instrument_id")]


@dataclass(slots=True)
class ShelfEntry:
    """What may be traded: an instrument's shelf status and tags. Instrument ids are unique."""

    instrument_id: IdStr
    status: ShelfStatus
    asset_class: IdStr = "UNKNOWN"
    issuer_id: IdStr | None = None
    liquidity_tier: LiquidityTier | None = None
    settlement_days: Annotated[int, Meta(ge=0, le=10)] = 2
    min_notional: Money | None = None
    # Kept in the order given: allocation_by_attribute lists keys in first-appearance order.
    attributes: Annotated[
        dict[AttributeKeyStr, AttributeValueStr],
        Meta(description="Tags for group constraints (`<key>:<value>`) and allocation_by_attribute.",
             example={"sector": "TECH", "region": "US"}, max_length=MAX_ATTRIBUTES),
    ] = field(default_factory=dict)


@dataclass(slots=True)
class RebalanceInputs:
    """The four snapshots shared by every scenario of a batch."""

    portfolio: PortfolioSnapshot
    market_data: MarketDataSnapshot
    model: ModelPortfolio
    shelf: list[ShelfEntry]


@dataclass(slots=True)
class EngineOptions:
    """The options the DPM engine reads (spec 1.3, column "DPM" = yes), already validated.

    Advisory-only options of the reference are validated by the HTTP layer and not carried here.
    `group_constraints` maps `"<attribute_key>:<attribute_value>"` to its max weight.
    """

    valuation_mode: Literal["CALCULATED", "TRUST_SNAPSHOT"] = "CALCULATED"
    target_method: Literal["HEURISTIC", "SOLVER"] = "HEURISTIC"
    compare_target_methods: bool = False
    compare_target_methods_tolerance: Decimal = Decimal("0.0001")
    cash_band_min_weight: Decimal = Decimal("0.00")
    cash_band_max_weight: Decimal = Decimal("1.00")
    single_position_max_weight: Decimal | None = None
    min_trade_notional: Money | None = None
    allow_restricted: bool = False
    suppress_dust_trades: bool = True
    fx_buffer_pct: Decimal = Decimal("0.01")
    block_on_missing_prices: bool = True
    block_on_missing_fx: bool = True
    min_cash_buffer_pct: Decimal = Decimal("0.0")
    max_turnover_pct: Decimal | None = None
    enable_tax_awareness: bool = False
    max_realized_capital_gains: Decimal | None = None
    enable_settlement_awareness: bool = False
    enable_workflow_gates: bool = True
    workflow_requires_client_consent: bool = False
    client_consent_already_obtained: bool = False
    link_buy_to_same_currency_sell_dependency: bool | None = None
    settlement_horizon_days: int = 5
    fx_settlement_days: int = 2
    max_overdraft_by_ccy: dict[str, Decimal] = field(default_factory=dict)
    group_constraints: dict[str, Decimal] = field(default_factory=dict)
