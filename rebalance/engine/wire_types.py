"""The wire form of a scenario's result (spec/engine.md section 2): the one declaration of its shape.

`wire.py` builds exactly these dicts (mypy holds every key and value of it to them), and the
OpenAPI document is derived from them (`rebalance/openapi.py`); tests validate real answers
against that document. Keys are declared in wire order. Descriptions and examples are `Meta`s
(shapes.py); a class docstring describes the object.
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired, TypedDict

from dpm_async.shapes import Meta

from .shapes import DecimalText, Weight4Text

type RunStatus = Literal["READY", "PENDING_REVIEW", "BLOCKED"]
type TargetMethod = Literal["HEURISTIC", "SOLVER"]
type TradeSide = Literal["BUY", "SELL"]
type RuleSeverity = Literal["HARD", "SOFT", "INFO"]
type RuleStatus = Literal["PASS", "FAIL"]
type ReconciliationStatus = Literal["OK", "MISMATCH"]
type GroupConstraintStatus = Literal["CAPPED", "BLOCKED"]
type GateReasonSeverity = Literal["HIGH", "MEDIUM", "LOW"]
type GateReasonSource = Literal["RULE_ENGINE", "SUITABILITY", "DATA_QUALITY"]
type Gate = Literal[
    "BLOCKED", "RISK_REVIEW_REQUIRED", "COMPLIANCE_REVIEW_REQUIRED", "CLIENT_CONSENT_REQUIRED", "EXECUTION_READY", "NONE"
]
type GateNextStep = Literal["FIX_INPUT", "RISK_REVIEW", "COMPLIANCE_REVIEW", "REQUEST_CLIENT_CONSENT", "EXECUTE", "NONE"]


class MoneyResult(TypedDict):
    """An amount (decimal string) in a currency."""

    amount: DecimalText
    currency: str


class CashBalanceResult(TypedDict):
    """A cash balance as echoed in a simulated state."""

    currency: str
    amount: DecimalText
    settled: DecimalText | None
    pending: DecimalText | None


class PositionSummary(TypedDict):
    """A position valued in its instrument currency and the base currency (spec 2.2)."""

    instrument_id: str
    quantity: DecimalText
    instrument_currency: str
    asset_class: str
    price: Annotated[MoneyResult | None, Meta(description="Price in the valuation currency; null when no price row.")]
    value_in_instrument_ccy: MoneyResult
    value_in_base_ccy: MoneyResult
    weight: Weight4Text


class AllocationMetric(TypedDict):
    """A bucket's weight and base-currency value."""

    key: str
    weight: Weight4Text
    value: MoneyResult


class SimulatedState(TypedDict):
    """A portfolio state: before the trades or simulated after them (spec 2.2)."""

    total_value: MoneyResult
    cash_balances: list[CashBalanceResult]
    positions: list[PositionSummary]
    allocation_by_asset_class: Annotated[
        list[AllocationMetric], Meta(description="Asset classes, then a final `CASH` bucket.")
    ]
    allocation_by_instrument: list[AllocationMetric]
    allocation: Annotated[list[AllocationMetric], Meta(description="Legacy alias of allocation_by_instrument.")]
    allocation_by_attribute: dict[str, list[AllocationMetric]]


class ExcludedInstrument(TypedDict):
    instrument_id: str
    reason_code: Annotated[str, Meta(example="SHELF_STATUS_BANNED")]
    details: Annotated[str | None, Meta(description="Always null.")]


class UniverseCoverage(TypedDict):
    price_coverage_pct: Annotated[DecimalText, Meta(description="`1` on the main path, `0` on early-block paths.")]
    fx_coverage_pct: DecimalText


class UniverseData(TypedDict):
    """The tradeable universe (spec 2.3)."""

    universe_id: str
    eligible_for_buy: list[str]
    eligible_for_sell: list[str]
    excluded: list[ExcludedInstrument]
    coverage: UniverseCoverage


class TargetTraceEntry(TypedDict):
    instrument_id: str
    model_weight: DecimalText
    final_weight: DecimalText
    final_value: MoneyResult
    tags: Annotated[
        list[str],
        Meta(description="`CAPPED_BY_MAX_WEIGHT`, `REDISTRIBUTED_RECIPIENT`, `IMPLICIT_SELL_TO_ZERO`, "
             "`LOCKED_POSITION`."),
    ]


class TargetData(TypedDict):
    """Target weights per instrument (spec 2.3, 3.7)."""

    target_id: str
    strategy: Annotated[dict[str, str], Meta(description="Always `{}`.", max_length=0)]
    targets: list[TargetTraceEntry]


class Rationale(TypedDict):
    code: Annotated[str, Meta(example="DRIFT_REBALANCE")]
    message: Annotated[str, Meta(example="Align")]


class SecurityTradeIntent(TypedDict):
    """A buy or sell of a security."""

    intent_type: Literal["SECURITY_TRADE"]
    intent_id: Annotated[str, Meta(example="oi_1")]
    instrument_id: str
    side: TradeSide
    quantity: DecimalText
    notional: Annotated[MoneyResult, Meta(description="In the instrument currency.")]
    notional_base: Annotated[MoneyResult, Meta(description="In the base currency.")]
    dependencies: list[str]
    rationale: Rationale
    constraints_applied: Annotated[list[str], Meta(description="Drawn from `MIN_NOTIONAL`, `TAX_BUDGET`.")]


class FxSpotIntent(TypedDict):
    """An FX spot trade funding buys (`FUNDING`) or sweeping foreign cash to base (`SWEEP`)."""

    intent_type: Literal["FX_SPOT"]
    intent_id: Annotated[str, Meta(example="oi_fx_3")]
    pair: Annotated[str, Meta(example="USD/CHF")]
    buy_currency: str
    buy_amount: DecimalText
    sell_currency: str
    sell_amount_estimated: DecimalText
    dependencies: list[str]
    rationale: Rationale


# The OpenAPI document tells the two apart by `intent_type` (a discriminator).
Intent = SecurityTradeIntent | FxSpotIntent


class RuleResult(TypedDict):
    """One post-trade rule outcome (spec 2.5, 3.18)."""

    rule_id: Annotated[str, Meta(example="CASH_BAND")]
    severity: RuleSeverity
    status: RuleStatus
    measured: DecimalText
    threshold: dict[str, DecimalText]
    reason_code: str
    remediation_hint: str | None


class Reconciliation(TypedDict):
    """Value conservation between the before and after states (spec 3.19)."""

    before_total_value: MoneyResult
    after_total_value: MoneyResult
    delta: MoneyResult
    tolerance: MoneyResult
    status: ReconciliationStatus


class TaxImpact(TypedDict):
    """Realised gains and losses of the sells, in the base currency."""

    total_realized_gain: MoneyResult
    total_realized_loss: MoneyResult
    budget_limit: MoneyResult | None
    budget_used: MoneyResult | None


class TargetMethodComparison(TypedDict):
    """Result of running the other target method too (`compare_target_methods`)."""

    primary_method: TargetMethod
    primary_status: RunStatus
    alternate_method: TargetMethod
    alternate_status: RunStatus
    tolerance: DecimalText
    differing_instruments: list[str]
    alternate_warnings: list[str]


class Explanation(TypedDict):
    """`summary` is the status (or `Blocked` on early-block paths, where the comparison key is absent)."""

    summary: str
    target_method_comparison: NotRequired[TargetMethodComparison | None]


class SuppressedIntent(TypedDict):
    instrument_id: str
    reason: Annotated[str, Meta(example="BELOW_MIN_NOTIONAL")]
    intended_notional: MoneyResult
    threshold: MoneyResult


class DroppedIntent(TypedDict):
    instrument_id: str
    reason: Annotated[str, Meta(example="TURNOVER_LIMIT")]
    potential_notional: MoneyResult
    score: DecimalText


class GroupConstraintEvent(TypedDict):
    constraint_key: Annotated[str, Meta(example="sector:TECH")]
    group_weight_before: DecimalText
    max_weight: DecimalText
    released_weight: DecimalText
    recipients: dict[str, DecimalText]
    status: GroupConstraintStatus


class TaxBudgetConstraintEvent(TypedDict):
    instrument_id: str
    requested_quantity: DecimalText
    allowed_quantity: DecimalText
    reason_code: Annotated[str, Meta(example="TAX_BUDGET_LIMIT_REACHED")]


class CashLadderPoint(TypedDict):
    date_offset: int
    currency: str
    projected_balance: DecimalText


class CashLadderBreach(TypedDict):
    date_offset: int
    currency: str
    projected_balance: DecimalText
    allowed_floor: DecimalText
    reason_code: Annotated[str, Meta(example="OVERDRAFT_ON_T_PLUS_1")]


class DataQuality(TypedDict):
    price_missing: list[str]
    fx_missing: list[str]
    shelf_missing: list[str]


class DiagnosticsData(TypedDict):
    """Warnings and per-stage events (spec 2.6); always complete."""

    warnings: list[str]
    suppressed_intents: list[SuppressedIntent]
    dropped_intents: list[DroppedIntent]
    group_constraint_events: list[GroupConstraintEvent]
    tax_budget_constraint_events: list[TaxBudgetConstraintEvent]
    cash_ladder: list[CashLadderPoint]
    cash_ladder_breaches: list[CashLadderBreach]
    missing_fx_pairs: Annotated[list[str], Meta(description="Advisory only; always empty.")]
    funding_plan: Annotated[list[dict[str, str]], Meta(description="Advisory only; always empty.")]
    insufficient_cash: Annotated[list[dict[str, str]], Meta(description="Advisory only; always empty.")]
    data_quality: DataQuality


class GateReason(TypedDict):
    reason_code: Annotated[str, Meta(example="SOFT_RULE_FAIL:CASH_BAND")]
    severity: GateReasonSeverity
    source: GateReasonSource
    details: dict[str, str]


class GateSummary(TypedDict):
    hard_fail_count: int
    soft_fail_count: int
    new_high_suitability_count: int
    new_medium_suitability_count: int


class GateDecision(TypedDict):
    """The workflow gate (spec 2.7, 3.21)."""

    gate: Gate
    recommended_next_step: GateNextStep
    reasons: list[GateReason]
    summary: GateSummary


class LineageData(TypedDict):
    portfolio_snapshot_id: str
    market_data_snapshot_id: str
    request_hash: Annotated[str, Meta(description="`<batch_run_id>:<scenario>` in a batch.")]
    idempotency_key: str | None
    engine_version: str | None


class RebalanceResult(TypedDict):
    """One scenario's complete rebalance result (spec 2.1), keys in this order."""

    rebalance_run_id: Annotated[str, Meta(example="rr_1f0c9a7e")]
    correlation_id: str
    status: RunStatus
    before: SimulatedState
    universe: UniverseData
    target: TargetData
    intents: Annotated[list[Intent], Meta(description="In execution order.")]
    after_simulated: SimulatedState
    reconciliation: Reconciliation | None
    tax_impact: TaxImpact | None
    rule_results: list[RuleResult]
    explanation: Explanation
    diagnostics: DiagnosticsData
    gate_decision: Annotated[GateDecision | None, Meta(description="Null when `enable_workflow_gates` is false.")]
    lineage: LineageData


class ComparisonMetric(TypedDict):
    """A scenario's entry in the batch's `comparison_metrics` (spec 5.2)."""

    status: RunStatus
    security_intent_count: int
    gross_turnover_notional_base: MoneyResult
