"""Typed results of the rebalance engine (spec/engine.md section 2).

Plain slotted dataclasses, one per wire object, with fields declared in wire key order so that a
reader can compare them with the spec at a glance (the wire form itself is written out in
`wire.py`). Results are built once by the pipeline and then only read: several results of one batch
share some sub-objects (the cached before state, universe lists), so nothing may mutate them.

Money and cash-balance values reuse the input types of `models.py`, which have the same shape,
except in the high-volume objects (positions, trace entries, security intents): those store their
amounts flat, with the currency known from context, to keep a 2000-line scenario's object count
down (see PositionSummary).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import ClassVar, Final

from .models import CashBalance, Money
from .wire_types import (
    Gate,
    GateNextStep,
    GateReasonSeverity,
    GateReasonSource,
    GroupConstraintStatus,
    ReconciliationStatus,
    RuleSeverity,
    RuleStatus,
    RunStatus,
    TargetMethod,
    TradeSide,
)
from .wire_types import SimulatedState as SimulatedStateWire

# Result statuses (spec 2.1).
READY: Final = "READY"
PENDING_REVIEW: Final = "PENDING_REVIEW"
BLOCKED: Final = "BLOCKED"


@dataclass(slots=True)
class PositionSummary:
    """One valued position.

    Amounts are stored flat rather than as Money objects: a 2000-line batch builds tens of
    thousands of these, and on Python 3.13 every object (Decimals included) is GC-tracked, so each
    avoided object counts. Currencies: `price` and `value_in_instrument_ccy` are in
    `instrument_currency` (the valuation currency); `value_in_base_ccy` is in the state's base
    currency (`SimulatedState.total_value.currency`). The wire form rebuilds the Money objects.
    """

    instrument_id: str
    quantity: Decimal
    instrument_currency: str
    asset_class: str
    price: Decimal | None  # None when the instrument has no price row
    value_in_instrument_ccy: Decimal
    value_in_base_ccy: Decimal
    weight: Decimal  # raw; quantized to 4 dp only on the wire


@dataclass(slots=True)
class AllocationMetric:
    key: str
    weight: Decimal  # raw; quantized to 4 dp only on the wire
    value: Money


@dataclass(slots=True)
class SimulatedState:
    total_value: Money
    cash_balances: list[CashBalance]
    positions: list[PositionSummary]
    allocation_by_asset_class: list[AllocationMetric]
    allocation_by_attribute: dict[str, list[AllocationMetric]]
    # Wire form memo, filled by wire.result_to_wire for the before state that PreparedInputs shares
    # between all scenarios of a batch (so twenty scenarios convert it once).
    wire_cache: SimulatedStateWire | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def allocation_by_instrument(self) -> list[AllocationMetric]:
        """One metric per position, same order, weight and base value (spec 2.2); derived on access."""
        base = self.total_value.currency
        return [AllocationMetric(p.instrument_id, p.weight, Money(p.value_in_base_ccy, base)) for p in self.positions]

    @property
    def allocation(self) -> list[AllocationMetric]:
        """Legacy alias of allocation_by_instrument."""
        return self.allocation_by_instrument


@dataclass(slots=True)
class ExcludedInstrument:
    instrument_id: str
    reason_code: str
    details: None = None


@dataclass(slots=True)
class Coverage:
    price_coverage_pct: Decimal
    fx_coverage_pct: Decimal


@dataclass(slots=True)
class UniverseData:
    universe_id: str
    eligible_for_buy: list[str]
    eligible_for_sell: list[str]
    excluded: list[ExcludedInstrument]
    coverage: Coverage


@dataclass(slots=True)
class TargetInstrument:
    instrument_id: str
    model_weight: Decimal
    final_weight: Decimal
    final_value: Decimal  # TV x final_weight, in the base currency
    tags: tuple[str, ...]


@dataclass(slots=True)
class TargetData:
    target_id: str
    targets: list[TargetInstrument]
    # `strategy` is always `{}` on the wire; it carries no data.


@dataclass(frozen=True, slots=True)
class Rationale:
    code: str
    message: str


DRIFT_REBALANCE = Rationale("DRIFT_REBALANCE", "Align")
FUNDING = Rationale("FUNDING", "Fund")
SWEEP = Rationale("SWEEP", "Sweep")


@dataclass(slots=True)
class SecurityTradeIntent:
    """A security order. Amounts are flat (see PositionSummary for why): `notional` is in
    `currency` (the instrument's price currency), `notional_base` in the run's base currency."""

    intent_type: ClassVar[str] = "SECURITY_TRADE"
    intent_id: str
    instrument_id: str
    side: TradeSide
    quantity: Decimal
    notional: Decimal
    currency: str
    notional_base: Decimal
    dependencies: tuple[str, ...]
    rationale: Rationale
    constraints_applied: tuple[str, ...]


@dataclass(slots=True)
class FxSpotIntent:
    intent_type: ClassVar[str] = "FX_SPOT"
    intent_id: str
    pair: str
    buy_currency: str
    buy_amount: Decimal
    sell_currency: str
    sell_amount_estimated: Decimal
    dependencies: tuple[str, ...]  # always empty in DPM
    rationale: Rationale


Intent = SecurityTradeIntent | FxSpotIntent


@dataclass(slots=True)
class RuleResult:
    rule_id: str
    severity: RuleSeverity
    status: RuleStatus
    measured: Decimal
    threshold: dict[str, Decimal]
    reason_code: str
    remediation_hint: str | None


@dataclass(slots=True)
class Reconciliation:
    before_total_value: Money
    after_total_value: Money
    delta: Money
    tolerance: Money
    status: ReconciliationStatus


@dataclass(slots=True)
class TaxImpact:
    total_realized_gain: Money
    total_realized_loss: Money
    budget_limit: Money | None
    budget_used: Money | None


@dataclass(slots=True)
class SuppressedIntent:
    instrument_id: str
    reason: str
    intended_notional: Money
    threshold: Money


@dataclass(slots=True)
class DroppedIntent:
    instrument_id: str
    reason: str
    potential_notional: Money
    score: Decimal


@dataclass(slots=True)
class GroupConstraintEvent:
    constraint_key: str
    group_weight_before: Decimal
    max_weight: Decimal
    released_weight: Decimal
    recipients: dict[str, Decimal]
    status: GroupConstraintStatus


@dataclass(slots=True)
class TaxBudgetConstraintEvent:
    instrument_id: str
    requested_quantity: Decimal
    allowed_quantity: Decimal
    reason_code: str


@dataclass(slots=True)
class CashLadderPoint:
    date_offset: int
    currency: str
    projected_balance: Decimal


@dataclass(slots=True)
class CashLadderBreach:
    date_offset: int
    currency: str
    projected_balance: Decimal
    allowed_floor: Decimal
    reason_code: str


@dataclass(slots=True)
class DataQuality:
    price_missing: list[str] = field(default_factory=list)
    fx_missing: list[str] = field(default_factory=list)
    shelf_missing: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DiagnosticsData:
    warnings: list[str] = field(default_factory=list)
    suppressed_intents: list[SuppressedIntent] = field(default_factory=list)
    dropped_intents: list[DroppedIntent] = field(default_factory=list)
    group_constraint_events: list[GroupConstraintEvent] = field(default_factory=list)
    tax_budget_constraint_events: list[TaxBudgetConstraintEvent] = field(default_factory=list)
    cash_ladder: list[CashLadderPoint] = field(default_factory=list)
    cash_ladder_breaches: list[CashLadderBreach] = field(default_factory=list)
    # missing_fx_pairs, funding_plan and insufficient_cash are advisory-engine fields: always [] here.
    data_quality: DataQuality = field(default_factory=DataQuality)


@dataclass(slots=True)
class GateReason:
    reason_code: str
    severity: GateReasonSeverity
    source: GateReasonSource
    details: dict[str, str]


@dataclass(slots=True)
class GateSummary:
    hard_fail_count: int
    soft_fail_count: int
    new_high_suitability_count: int = 0
    new_medium_suitability_count: int = 0


@dataclass(slots=True)
class GateDecision:
    gate: Gate
    recommended_next_step: GateNextStep
    reasons: list[GateReason]
    summary: GateSummary


@dataclass(slots=True)
class TargetMethodComparison:
    primary_method: TargetMethod
    primary_status: RunStatus
    alternate_method: TargetMethod
    alternate_status: RunStatus
    tolerance: str
    differing_instruments: list[str]
    alternate_warnings: list[str]


@dataclass(slots=True)
class Explanation:
    summary: str
    target_method_comparison: TargetMethodComparison | None = None
    # Early-blocked results (paths A/B) carry only {"summary": "Blocked"}: no comparison key at all.
    has_comparison_key: bool = True


@dataclass(slots=True)
class LineageData:
    portfolio_snapshot_id: str
    market_data_snapshot_id: str
    request_hash: str
    idempotency_key: str | None = None
    engine_version: str | None = None


@dataclass(slots=True)
class RebalanceResult:
    rebalance_run_id: str
    correlation_id: str
    status: RunStatus
    before: SimulatedState
    universe: UniverseData
    target: TargetData
    intents: list[Intent]
    after_simulated: SimulatedState
    reconciliation: Reconciliation | None
    tax_impact: TaxImpact | None
    rule_results: list[RuleResult]
    explanation: Explanation
    diagnostics: DiagnosticsData
    gate_decision: GateDecision | None
    lineage: LineageData
    base_currency: str  # not on the wire: the currency of every base-currency amount above
