"""Typed results -> JSON-ready dicts (spec 2 key order, spec 4.3 number format).

Every Decimal becomes `str(Decimal)` (canonical text: scale kept, exponent form allowed), ints stay
ints, and only PositionSummary.weight and AllocationMetric.weight are quantized (4 dp, HALF_EVEN),
here and nowhere else. This code runs for every scenario of a batch (tens of MB of JSON), so it is
written straight-line with local bindings rather than through a generic walker.

The returned dicts are read-only by contract: the wire form of the before state is cached on the
shared before-state object and reused by every scenario of the batch, and `allocation` is the very
list of `allocation_by_instrument`.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

from . import wire_types as wt
from .gc_pause import collector_paused
from .models import Money
from .results import (
    AllocationMetric,
    DiagnosticsData,
    Explanation,
    GateDecision,
    RebalanceResult,
    RuleResult,
    SecurityTradeIntent,
    SimulatedState,
)

WEIGHT_QUANTUM = Decimal("0.0001")
ZERO = Decimal(0)
# A private context equal to the default one (28 digits, HALF_EVEN, default traps): its positional
# quantize is ~3x faster than Decimal.quantize(..., rounding=...) with a keyword, and this runs for
# every weight of every state. The thread's own context is never touched.
_WEIGHT_CONTEXT = Context(prec=28, rounding=ROUND_HALF_EVEN)
_quantize = _WEIGHT_CONTEXT.quantize


def _money(money: Money) -> wt.MoneyResult:
    return {"amount": str(money.amount), "currency": money.currency}


def _optional_money(money: Money | None) -> wt.MoneyResult | None:
    return None if money is None else _money(money)


def state_to_wire(state: SimulatedState) -> wt.SimulatedState:
    """One SimulatedState as a JSON-ready dict (weights quantized to 4 dp)."""
    quantum = WEIGHT_QUANTUM
    quantize = _quantize
    base = state.total_value.currency
    positions: list[wt.PositionSummary] = []
    by_instrument: list[wt.AllocationMetric] = []
    add_position = positions.append
    add_metric = by_instrument.append
    for p in state.positions:
        weight = str(quantize(p.weight, quantum))
        currency = p.instrument_currency
        price = p.price
        base_amount = str(p.value_in_base_ccy)
        add_position(
            {
                "instrument_id": p.instrument_id,
                "quantity": str(p.quantity),
                "instrument_currency": currency,
                "asset_class": p.asset_class,
                "price": None if price is None else {"amount": str(price), "currency": currency},
                "value_in_instrument_ccy": {"amount": str(p.value_in_instrument_ccy), "currency": currency},
                "value_in_base_ccy": {"amount": base_amount, "currency": base},
                "weight": weight,
            }
        )
        # allocation_by_instrument is one metric per position with the same weight and base value,
        # so its wire form reuses the strings computed above.
        add_metric({"key": p.instrument_id, "weight": weight, "value": {"amount": base_amount, "currency": base}})
    total = state.total_value
    return {
        "total_value": {"amount": str(total.amount), "currency": total.currency},
        "cash_balances": [
            {
                "currency": balance.currency,
                "amount": str(balance.amount),
                "settled": None if balance.settled is None else str(balance.settled),
                "pending": None if balance.pending is None else str(balance.pending),
            }
            for balance in state.cash_balances
        ],
        "positions": positions,
        "allocation_by_asset_class": _metrics(state.allocation_by_asset_class),
        "allocation_by_instrument": by_instrument,
        "allocation": by_instrument,
        "allocation_by_attribute": {key: _metrics(metrics) for key, metrics in state.allocation_by_attribute.items()},
    }


def _metrics(metrics: list[AllocationMetric]) -> list[wt.AllocationMetric]:
    quantum = WEIGHT_QUANTUM
    quantize = _quantize
    return [
        {
            "key": m.key,
            "weight": str(quantize(m.weight, quantum)),
            "value": {"amount": str(m.value.amount), "currency": m.value.currency},
        }
        for m in metrics
    ]


def _cached_state(state: SimulatedState) -> wt.SimulatedState:
    # Only the before state goes through here: it is the object PreparedInputs shares between all
    # scenarios of a batch, so its wire form is built once and memoised on it.
    cached = state.wire_cache
    if cached is None:
        cached = state_to_wire(state)
        state.wire_cache = cached
    return cached


def _intents(result: RebalanceResult) -> list[wt.Intent]:
    base = result.base_currency
    out: list[wt.Intent] = []
    add = out.append
    for intent in result.intents:
        if isinstance(intent, SecurityTradeIntent):
            add(
                {
                    "intent_type": "SECURITY_TRADE",
                    "intent_id": intent.intent_id,
                    "instrument_id": intent.instrument_id,
                    "side": intent.side,
                    "quantity": str(intent.quantity),
                    "notional": {"amount": str(intent.notional), "currency": intent.currency},
                    "notional_base": {"amount": str(intent.notional_base), "currency": base},
                    "dependencies": list(intent.dependencies),
                    "rationale": {"code": intent.rationale.code, "message": intent.rationale.message},
                    "constraints_applied": list(intent.constraints_applied),
                }
            )
        else:
            add(
                {
                    "intent_type": "FX_SPOT",
                    "intent_id": intent.intent_id,
                    "pair": intent.pair,
                    "buy_currency": intent.buy_currency,
                    "buy_amount": str(intent.buy_amount),
                    "sell_currency": intent.sell_currency,
                    "sell_amount_estimated": str(intent.sell_amount_estimated),
                    "dependencies": list(intent.dependencies),
                    "rationale": {"code": intent.rationale.code, "message": intent.rationale.message},
                }
            )
    return out


def _rules(rules: list[RuleResult]) -> list[wt.RuleResult]:
    return [
        {
            "rule_id": rule.rule_id,
            "severity": rule.severity,
            "status": rule.status,
            "measured": str(rule.measured),
            "threshold": {key: str(value) for key, value in rule.threshold.items()},
            "reason_code": rule.reason_code,
            "remediation_hint": rule.remediation_hint,
        }
        for rule in rules
    ]


def _diagnostics(d: DiagnosticsData) -> wt.DiagnosticsData:
    dq = d.data_quality
    return {
        "warnings": list(d.warnings),
        "suppressed_intents": [
            {
                "instrument_id": s.instrument_id,
                "reason": s.reason,
                "intended_notional": {"amount": str(s.intended_notional.amount), "currency": s.intended_notional.currency},
                "threshold": {"amount": str(s.threshold.amount), "currency": s.threshold.currency},
            }
            for s in d.suppressed_intents
        ],
        "dropped_intents": [
            {
                "instrument_id": x.instrument_id,
                "reason": x.reason,
                "potential_notional": {"amount": str(x.potential_notional.amount), "currency": x.potential_notional.currency},
                "score": str(x.score),
            }
            for x in d.dropped_intents
        ],
        "group_constraint_events": [
            {
                "constraint_key": e.constraint_key,
                "group_weight_before": str(e.group_weight_before),
                "max_weight": str(e.max_weight),
                "released_weight": str(e.released_weight),
                "recipients": {key: str(value) for key, value in e.recipients.items()},
                "status": e.status,
            }
            for e in d.group_constraint_events
        ],
        "tax_budget_constraint_events": [
            {
                "instrument_id": t.instrument_id,
                "requested_quantity": str(t.requested_quantity),
                "allowed_quantity": str(t.allowed_quantity),
                "reason_code": t.reason_code,
            }
            for t in d.tax_budget_constraint_events
        ],
        "cash_ladder": [
            {"date_offset": p.date_offset, "currency": p.currency, "projected_balance": str(p.projected_balance)}
            for p in d.cash_ladder
        ],
        "cash_ladder_breaches": [
            {
                "date_offset": b.date_offset,
                "currency": b.currency,
                "projected_balance": str(b.projected_balance),
                "allowed_floor": str(b.allowed_floor),
                "reason_code": b.reason_code,
            }
            for b in d.cash_ladder_breaches
        ],
        "missing_fx_pairs": [],
        "funding_plan": [],
        "insufficient_cash": [],
        "data_quality": {
            "price_missing": list(dq.price_missing),
            "fx_missing": list(dq.fx_missing),
            "shelf_missing": list(dq.shelf_missing),
        },
    }


def _explanation(explanation: Explanation) -> wt.Explanation:
    if not explanation.has_comparison_key:
        return {"summary": explanation.summary}
    c = explanation.target_method_comparison
    return {
        "summary": explanation.summary,
        "target_method_comparison": None
        if c is None
        else {
            "primary_method": c.primary_method,
            "primary_status": c.primary_status,
            "alternate_method": c.alternate_method,
            "alternate_status": c.alternate_status,
            "tolerance": c.tolerance,
            "differing_instruments": list(c.differing_instruments),
            "alternate_warnings": list(c.alternate_warnings),
        },
    }


def _gate(gate: GateDecision | None) -> wt.GateDecision | None:
    if gate is None:
        return None
    summary = gate.summary
    return {
        "gate": gate.gate,
        "recommended_next_step": gate.recommended_next_step,
        "reasons": [
            {"reason_code": r.reason_code, "severity": r.severity, "source": r.source, "details": dict(r.details)}
            for r in gate.reasons
        ],
        "summary": {
            "hard_fail_count": summary.hard_fail_count,
            "soft_fail_count": summary.soft_fail_count,
            "new_high_suitability_count": summary.new_high_suitability_count,
            "new_medium_suitability_count": summary.new_medium_suitability_count,
        },
    }


def result_to_wire(result: RebalanceResult) -> wt.RebalanceResult:
    """A RebalanceResult as a JSON-ready dict, keys in spec section 2 order.

    The before state's dict is memoised on the (shared) before-state object; treat the returned
    structure as read-only. The cyclic GC is paused meanwhile (see gc_pause.py).
    """
    with collector_paused():
        return _result_to_wire(result)


def _result_to_wire(result: RebalanceResult) -> wt.RebalanceResult:
    before = _cached_state(result.before)
    after = before if result.after_simulated is result.before else state_to_wire(result.after_simulated)
    base = result.base_currency
    universe = result.universe
    coverage = universe.coverage
    target = result.target
    reconciliation = result.reconciliation
    tax = result.tax_impact
    lineage = result.lineage
    return {
        "rebalance_run_id": result.rebalance_run_id,
        "correlation_id": result.correlation_id,
        "status": result.status,
        "before": before,
        "universe": {
            "universe_id": universe.universe_id,
            "eligible_for_buy": list(universe.eligible_for_buy),
            "eligible_for_sell": list(universe.eligible_for_sell),
            "excluded": [
                {"instrument_id": x.instrument_id, "reason_code": x.reason_code, "details": x.details}
                for x in universe.excluded
            ],
            "coverage": {
                "price_coverage_pct": str(coverage.price_coverage_pct),
                "fx_coverage_pct": str(coverage.fx_coverage_pct),
            },
        },
        "target": {
            "target_id": target.target_id,
            "strategy": {},
            "targets": [
                {
                    "instrument_id": t.instrument_id,
                    "model_weight": str(t.model_weight),
                    "final_weight": str(t.final_weight),
                    "final_value": {"amount": str(t.final_value), "currency": base},
                    "tags": list(t.tags),
                }
                for t in target.targets
            ],
        },
        "intents": _intents(result),
        "after_simulated": after,
        "reconciliation": None
        if reconciliation is None
        else {
            "before_total_value": _money(reconciliation.before_total_value),
            "after_total_value": _money(reconciliation.after_total_value),
            "delta": _money(reconciliation.delta),
            "tolerance": _money(reconciliation.tolerance),
            "status": reconciliation.status,
        },
        "tax_impact": None
        if tax is None
        else {
            "total_realized_gain": _money(tax.total_realized_gain),
            "total_realized_loss": _money(tax.total_realized_loss),
            "budget_limit": _optional_money(tax.budget_limit),
            "budget_used": _optional_money(tax.budget_used),
        },
        "rule_results": _rules(result.rule_results),
        "explanation": _explanation(result.explanation),
        "diagnostics": _diagnostics(result.diagnostics),
        "gate_decision": _gate(result.gate_decision),
        "lineage": {
            "portfolio_snapshot_id": lineage.portfolio_snapshot_id,
            "market_data_snapshot_id": lineage.market_data_snapshot_id,
            "request_hash": lineage.request_hash,
            "idempotency_key": lineage.idempotency_key,
            "engine_version": lineage.engine_version,
        },
    }


def scenario_comparison_metric(result: RebalanceResult, base_currency: str | None = None) -> wt.ComparisonMetric:
    """The batch comparison metric of one scenario result (spec 5.2), JSON-ready.

    `{status, security_intent_count, gross_turnover_notional_base: {amount, currency}}`: the count
    and the sum of base notionals (from 0) of the SECURITY_TRADE intents. The currency is the
    request's base currency (`base_currency`, defaulting to the result's own).
    """
    count = 0
    turnover = ZERO
    for intent in result.intents:
        if isinstance(intent, SecurityTradeIntent):
            count += 1
            turnover += intent.notional_base
    return {
        "status": result.status,
        "security_intent_count": count,
        "gross_turnover_notional_base": {
            "amount": str(turnover),
            "currency": base_currency if base_currency is not None else result.base_currency,
        },
    }
