"""After-state simulation, post-trade rules, reconciliation, final status and workflow gate
(spec 3.17 to 3.21).

Deliberate difference (docs/engine.md, item 1): SINGLE_POSITION_MAX does not FAIL for a locked
holding (it cannot be traded; target generation already sent the run to PENDING_REVIEW).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from .models import CashBalance, EngineOptions, Money
from .prepared import PreparedInputs
from .results import (
    BLOCKED,
    PENDING_REVIEW,
    READY,
    DiagnosticsData,
    FxSpotIntent,
    GateDecision,
    GateReason,
    GateSummary,
    Intent,
    Reconciliation,
    RuleResult,
    SimulatedState,
)
from .valuation import CASH_BUCKET, PositionRow, value_portfolio
from .wire_types import Gate, GateNextStep, RunStatus

ZERO = Decimal(0)
MINUS_ONE = Decimal(-1)
SINGLE_POSITION_TOLERANCE = Decimal("0.001")
RECONCILIATION_BASE = Decimal("0.5")
RECONCILIATION_RATE = Decimal("0.0005")

HARD: Final = "HARD"
SOFT: Final = "SOFT"
PASS: Final = "PASS"
FAIL: Final = "FAIL"


# ------------------------------------------------------------------------------------- after state


def simulate_after_state(
    prepared: PreparedInputs, ordered: list[Intent], diagnostics: DiagnosticsData
) -> SimulatedState:
    """Apply the ordered intents to the portfolio and value it in CALCULATED mode (spec 3.17).

    Instead of deep-copying the portfolio, only the changed quantities and balances are tracked;
    the first position of an instrument and the first balance of a currency receive the changes
    (as "find" does in the reference), new ones are appended in execution order.
    """
    portfolio = prepared.inputs.portfolio
    first_positions = prepared.positions
    quantities: dict[str, Decimal] = {}
    new_instruments: list[str] = []
    cash_balances = portfolio.cash_balances
    first_cash: dict[str, CashBalance] = {}
    for balance in cash_balances:
        first_cash.setdefault(balance.currency, balance)
    amounts: dict[str, Decimal] = {}
    new_currencies: list[str] = []

    def cash_amount(currency: str) -> Decimal:
        amount = amounts.get(currency)
        if amount is None:
            existing = first_cash.get(currency)
            if existing is None:
                new_currencies.append(currency)
                amount = ZERO
            else:
                amount = existing.amount
        return amount

    for intent in ordered:
        if isinstance(intent, FxSpotIntent):
            sell_ccy = intent.sell_currency
            amounts[sell_ccy] = cash_amount(sell_ccy) - intent.sell_amount_estimated
            buy_ccy = intent.buy_currency
            amounts[buy_ccy] = cash_amount(buy_ccy) + intent.buy_amount
            continue
        instrument_id = intent.instrument_id
        quantity = quantities.get(instrument_id)
        if quantity is None:
            position = first_positions.get(instrument_id)
            if position is None:
                new_instruments.append(instrument_id)
                quantity = ZERO
            else:
                quantity = position.quantity
        currency = intent.currency
        if intent.side == "BUY":
            quantities[instrument_id] = quantity + intent.quantity
            amounts[currency] = cash_amount(currency) - intent.notional
        else:
            quantities[instrument_id] = quantity - intent.quantity
            amounts[currency] = cash_amount(currency) + intent.notional

    rows: list[PositionRow] = []
    add = rows.append
    for position in portfolio.positions:
        instrument_id = position.instrument_id
        changed = quantities.get(instrument_id)
        if changed is not None and first_positions[instrument_id] is position:
            add((instrument_id, changed, None))
        else:
            add((instrument_id, position.quantity, None))
    for instrument_id in new_instruments:
        add((instrument_id, quantities[instrument_id], None))

    after_cash: list[CashBalance] = []
    for balance in cash_balances:
        changed = amounts.get(balance.currency)
        if changed is not None and first_cash[balance.currency] is balance:
            after_cash.append(CashBalance(balance.currency, changed, balance.settled, balance.pending))
        else:
            after_cash.append(balance)  # unchanged input object, shared read-only
    for currency in new_currencies:
        after_cash.append(CashBalance(currency, amounts[currency]))

    dq = diagnostics.data_quality
    # Forced CALCULATED valuation after trading (reference behaviour, kept).
    return value_portfolio(
        prepared, rows, after_cash, trust_snapshot=False, price_missing=dq.price_missing, fx_missing=dq.fx_missing
    )


# ------------------------------------------------------------------------------------------- rules


def evaluate_rules(
    state: SimulatedState,
    options: EngineOptions,
    diagnostics: DiagnosticsData,
    locked: frozenset[str],
) -> list[RuleResult]:
    """The core rule set, in fixed order (spec 3.18)."""
    rules: list[RuleResult] = []

    # 1. CASH_BAND (SOFT)
    cash_weight = ZERO
    for metric in state.allocation_by_asset_class:
        if metric.key == CASH_BUCKET:
            cash_weight = metric.weight
    band_min = options.cash_band_min_weight
    band_max = options.cash_band_max_weight
    if cash_weight < band_min or cash_weight > band_max:
        rules.append(
            RuleResult(
                "CASH_BAND", SOFT, FAIL, cash_weight, {"min": band_min, "max": band_max},
                "THRESHOLD_BREACH", "Portfolio cash is outside policy bands.",
            )
        )
    else:
        rules.append(RuleResult("CASH_BAND", SOFT, PASS, cash_weight, {"min": band_min, "max": band_max}, "OK", None))

    # 2. SINGLE_POSITION_MAX (HARD): one FAIL per breaching tradeable instrument.
    limit = options.single_position_max_weight
    if limit is None:
        rules.append(RuleResult("SINGLE_POSITION_MAX", HARD, PASS, ZERO, {"max": MINUS_ONE}, "NO_LIMIT_SET", None))
    else:
        bound = limit + SINGLE_POSITION_TOLERANCE
        largest = ZERO
        failures: list[RuleResult] = []
        for position in state.positions:  # = allocation_by_instrument, one metric per position
            weight = position.weight
            if weight > bound:
                if position.instrument_id in locked:
                    continue  # item 1: frozen holding, reviewed by a human instead
                failures.append(
                    RuleResult(
                        "SINGLE_POSITION_MAX", HARD, FAIL, weight, {"max": limit},
                        "LIMIT_BREACH", f"Instrument {position.instrument_id} exceeds max weight.",
                    )
                )
            elif weight > largest:
                largest = weight
        if failures:
            rules.extend(failures)
        else:
            rules.append(RuleResult("SINGLE_POSITION_MAX", HARD, PASS, largest, {"max": limit}, "OK", None))

    # 3. DATA_QUALITY (HARD)
    dq = diagnostics.data_quality
    count = len(dq.shelf_missing)
    if options.block_on_missing_prices:
        count += len(dq.price_missing)
    if options.block_on_missing_fx:
        count += len(dq.fx_missing)
    if count > 0:
        rules.append(
            RuleResult(
                "DATA_QUALITY", HARD, FAIL, Decimal(count), {"max": ZERO},
                "MISSING_DATA", "Check diagnostics for missing prices/FX.",
            )
        )
    else:
        rules.append(RuleResult("DATA_QUALITY", HARD, PASS, Decimal(count), {"max": ZERO}, "OK", None))

    # 4. MIN_TRADE_SIZE (SOFT, informational: never fails)
    suppressed = len(diagnostics.suppressed_intents)
    rules.append(
        RuleResult(
            "MIN_TRADE_SIZE", SOFT, PASS, Decimal(suppressed), {"min": ZERO},
            "INTENTS_SUPPRESSED" if suppressed > 0 else "OK", None,
        )
    )

    # 5. NO_SHORTING (HARD)
    lowest_quantity = None
    for position in state.positions:
        if position.quantity < 0 and (lowest_quantity is None or position.quantity < lowest_quantity):
            lowest_quantity = position.quantity
    if lowest_quantity is not None:
        rules.append(
            RuleResult(
                "NO_SHORTING", HARD, FAIL, lowest_quantity, {"min": ZERO},
                "SELL_EXCEEDS_HOLDINGS", "Reduce sell quantity.",
            )
        )
    else:
        rules.append(RuleResult("NO_SHORTING", HARD, PASS, ZERO, {"min": ZERO}, "OK", None))

    # 6. INSUFFICIENT_CASH (HARD)
    lowest_cash = None
    for balance in state.cash_balances:
        if balance.amount < 0 and (lowest_cash is None or balance.amount < lowest_cash):
            lowest_cash = balance.amount
    if lowest_cash is not None:
        rules.append(
            RuleResult(
                "INSUFFICIENT_CASH", HARD, FAIL, lowest_cash, {"min": ZERO},
                "CASH_BALANCE_NEGATIVE", "Ensure sufficient funding.",
            )
        )
    else:
        rules.append(RuleResult("INSUFFICIENT_CASH", HARD, PASS, ZERO, {"min": ZERO}, "OK", None))
    return rules


def has_hard_failure(rules: list[RuleResult]) -> bool:
    """True when any HARD rule failed."""
    return any(rule.status == FAIL and rule.severity == HARD for rule in rules)


def safety_warnings(rules: list[RuleResult], warnings: list[str]) -> None:
    """SIMULATION_SAFETY_CHECK_FAILED once per failing NO_SHORTING / INSUFFICIENT_CASH (path E)."""
    for rule in rules:
        if rule.status == FAIL and rule.rule_id in ("NO_SHORTING", "INSUFFICIENT_CASH"):
            warnings.append("SIMULATION_SAFETY_CHECK_FAILED")


def reconcile(before_total: Money, after_total: Money) -> tuple[Reconciliation, RuleResult | None]:
    """Value conservation check (spec 3.19); the rule is returned only on MISMATCH."""
    expected = before_total.amount
    actual = after_total.amount
    base = before_total.currency
    tolerance = RECONCILIATION_BASE + expected * RECONCILIATION_RATE
    difference = abs(actual - expected)
    ok = difference <= tolerance
    reconciliation = Reconciliation(
        Money(expected, base),
        Money(actual, base),
        Money(actual - expected, base),
        Money(tolerance, base),
        "OK" if ok else "MISMATCH",
    )
    if ok:
        return reconciliation, None
    rule = RuleResult(
        "RECONCILIATION", HARD, FAIL, difference, {"max": tolerance},
        "VALUE_MISMATCH", "Check pricing/FX or engine logic.",
    )
    return reconciliation, rule


def status_from_rules(rules: list[RuleResult], target_status: RunStatus) -> RunStatus:
    """Path G status: SOFT failures review, then target-stage PENDING_REVIEW promotes READY."""
    status: RunStatus = READY
    for rule in rules:
        if rule.status == FAIL:
            if rule.severity == HARD:
                status = BLOCKED
                break
            if rule.severity == SOFT:
                status = PENDING_REVIEW
    if status == READY and target_status == PENDING_REVIEW:
        status = PENDING_REVIEW
    return status


# ------------------------------------------------------------------------------------ workflow gate

_SEVERITY_RANK = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}


def workflow_gate(
    status: RunStatus, rules: list[RuleResult], diagnostics: DiagnosticsData, options: EngineOptions
) -> GateDecision:
    """The workflow gate decision (spec 3.21)."""
    reasons: list[GateReason] = []
    hard = 0
    soft = 0
    for rule in rules:
        if rule.status != FAIL:
            continue
        if rule.severity == HARD:
            hard += 1
            reasons.append(GateReason(f"HARD_RULE_FAIL:{rule.rule_id}", "HIGH", "RULE_ENGINE", {"reason_code": rule.reason_code}))
        elif rule.severity == SOFT:
            soft += 1
            reasons.append(GateReason(f"SOFT_RULE_FAIL:{rule.rule_id}", "MEDIUM", "RULE_ENGINE", {"reason_code": rule.reason_code}))
    dq = diagnostics.data_quality
    # Reported whatever the blocking flags say; shelf_missing has no reason of its own.
    if dq.price_missing:
        reasons.append(GateReason("DATA_QUALITY_MISSING_PRICE", "HIGH", "DATA_QUALITY", {"count": str(len(dq.price_missing))}))
    if dq.fx_missing:
        reasons.append(GateReason("DATA_QUALITY_MISSING_FX", "HIGH", "DATA_QUALITY", {"count": str(len(dq.fx_missing))}))
    reasons.sort(
        key=lambda reason: (
            _SEVERITY_RANK.get(reason.severity, 3),
            reason.source,
            reason.reason_code,
            reason.details.get("issue_key") or reason.details.get("reason_code") or "",
        )
    )
    gate: Gate
    step: GateNextStep
    if status == BLOCKED or hard > 0:
        gate, step = "BLOCKED", "FIX_INPUT"
    elif soft > 0:
        gate, step = "RISK_REVIEW_REQUIRED", "RISK_REVIEW"
    elif options.client_consent_already_obtained:
        gate, step = "EXECUTION_READY", "EXECUTE"
    elif options.workflow_requires_client_consent:
        gate, step = "CLIENT_CONSENT_REQUIRED", "REQUEST_CLIENT_CONSENT"
    else:
        gate, step = "EXECUTION_READY", "EXECUTE"
    return GateDecision(gate, step, reasons, GateSummary(hard, soft))
