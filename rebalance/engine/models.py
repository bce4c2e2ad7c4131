"""Typed inputs of the rebalance engine (spec/engine.md sections 1.1 to 1.3).

These are plain slotted dataclasses: the HTTP layer validates the wire format and builds them, the
engine only reads them (it never mutates its inputs, so one set of inputs is shared by every
scenario of a batch). All numbers are `Decimal`; nothing here is ever a float.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

# Shelf statuses (spec 1.2).
APPROVED = "APPROVED"
RESTRICTED = "RESTRICTED"
BANNED = "BANNED"
SUSPENDED = "SUSPENDED"
SELL_ONLY = "SELL_ONLY"
SHELF_STATUSES = (APPROVED, RESTRICTED, BANNED, SUSPENDED, SELL_ONLY)


@dataclass(slots=True)
class Money:
    amount: Decimal
    currency: str


@dataclass(slots=True)
class TaxLot:
    lot_id: str
    quantity: Decimal
    unit_cost: Money
    purchase_date: str


@dataclass(slots=True)
class Position:
    instrument_id: str
    quantity: Decimal
    market_value: Money | None = None
    lots: list[TaxLot] = field(default_factory=list)


@dataclass(slots=True)
class CashBalance:
    currency: str
    amount: Decimal
    settled: Decimal | None = None
    pending: Decimal | None = None


@dataclass(slots=True)
class PortfolioSnapshot:
    portfolio_id: str
    base_currency: str
    positions: list[Position] = field(default_factory=list)
    cash_balances: list[CashBalance] = field(default_factory=list)
    snapshot_id: str | None = None


@dataclass(slots=True)
class Price:
    instrument_id: str
    price: Decimal
    currency: str


@dataclass(slots=True)
class FxRate:
    pair: str
    rate: Decimal


@dataclass(slots=True)
class MarketDataSnapshot:
    prices: list[Price] = field(default_factory=list)
    fx_rates: list[FxRate] = field(default_factory=list)
    snapshot_id: str | None = None


@dataclass(slots=True)
class ModelTarget:
    instrument_id: str
    weight: Decimal


@dataclass(slots=True)
class ModelPortfolio:
    targets: list[ModelTarget] = field(default_factory=list)


@dataclass(slots=True)
class ShelfEntry:
    instrument_id: str
    status: str
    asset_class: str = "UNKNOWN"
    issuer_id: str | None = None
    liquidity_tier: str | None = None
    settlement_days: int = 2
    min_notional: Money | None = None
    attributes: dict[str, str] = field(default_factory=dict)


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

    valuation_mode: str = "CALCULATED"  # or "TRUST_SNAPSHOT"
    target_method: str = "HEURISTIC"  # or "SOLVER"
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
