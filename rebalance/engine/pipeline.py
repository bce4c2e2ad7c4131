"""The rebalance pipeline (spec 3.0): one scenario, from prepared inputs to a typed result.

Termination paths, as in spec 2.11:
  A  early data-quality block or target generation BLOCKED
  B  late data-quality block (after intent sizing)
  C  FX-stage block (unreachable in practice; returned like A/B - item 18)
  D  settlement ladder breach
  E  post-trade HARD rule failure
  F  reconciliation mismatch
  G  normal (READY / PENDING_REVIEW)
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from .gc_pause import collector_paused
from .intents import (
    TaxLedger,
    apply_turnover_limit,
    execution_order,
    generate_fx_intents,
    link_dependencies,
    size_security_intents,
)
from .models import EngineOptions
from .prepared import PreparedInputs
from .results import (
    BLOCKED,
    Coverage,
    DataQuality,
    DiagnosticsData,
    Explanation,
    LineageData,
    RebalanceResult,
    Reconciliation,
    RuleResult,
    SimulatedState,
    TargetData,
    TargetInstrument,
    TargetMethodComparison,
    UniverseData,
)
from .rules import (
    evaluate_rules,
    has_hard_failure,
    reconcile,
    safety_warnings,
    simulate_after_state,
    status_from_rules,
    workflow_gate,
)
from .settlement import build_cash_ladder, settlement_rule
from .targets import compare_methods, generate_targets
from .universe import Universe
from .wire_types import RunStatus

# Coverage percentages are constants at the reference (item 14, kept): 1/1 on the main path,
# 0/0 on early-block paths.
FULL_COVERAGE = Coverage(Decimal(1), Decimal(1))
NO_COVERAGE = Coverage(Decimal(0), Decimal(0))


def _data_quality_blocks(dq: DataQuality, options: EngineOptions) -> bool:
    """Spec 3.9: shelf gaps always block; missing prices / FX block when their flag is on."""
    return bool(
        dq.shelf_missing
        or (dq.price_missing and options.block_on_missing_prices)
        or (dq.fx_missing and options.block_on_missing_fx)
    )


def _lineage(prepared: PreparedInputs, request_hash: str) -> LineageData:
    # Item 13: snapshot ids when given, with the batch envelope's fallbacks.
    portfolio = prepared.inputs.portfolio
    market_id = prepared.inputs.market_data.snapshot_id
    return LineageData(
        portfolio_snapshot_id=portfolio.snapshot_id or portfolio.portfolio_id,
        market_data_snapshot_id=market_id or "md",
        request_hash=request_hash,
    )


def run_rebalance(
    prepared: PreparedInputs,
    options: EngineOptions,
    *,
    request_hash: str = "no_hash",
    correlation_id: str = "c_none",
) -> RebalanceResult:
    """Run one DPM rebalance scenario on prepared inputs and return its typed result.

    Pure with respect to its inputs: `prepared` is only read (its memo caches aside), so every
    scenario of a batch can share it. Exceptions (e.g. a decimal error on inputs the HTTP layer
    should have rejected) propagate to the caller, which isolates them per scenario. The cyclic
    garbage collector is paused while it runs (see gc_pause.py for why that is safe).
    """
    with collector_paused():
        return _run(prepared, options, request_hash, correlation_id)


def _run(prepared: PreparedInputs, options: EngineOptions, request_hash: str, correlation_id: str) -> RebalanceResult:
    run_id = f"rr_{uuid.uuid4().hex[:8]}"
    diagnostics = DiagnosticsData()
    dq = diagnostics.data_quality
    warnings = diagnostics.warnings

    # 2. Valuation (cached per mode; its data-quality entries go into this scenario's lists).
    valuation = prepared.before(options.valuation_mode)
    before = valuation.state
    dq.price_missing.extend(valuation.price_missing)
    dq.fx_missing.extend(valuation.fx_missing)
    total_value = before.total_value.amount
    base = prepared.base_currency

    # 3. Universe (cached per mode and allow_restricted).
    universe = prepared.universe(options.valuation_mode, options.allow_restricted)
    dq.shelf_missing.extend(universe.shelf_missing)

    # 4-5. Targets and optional method comparison.
    method = options.target_method
    outcome = generate_targets(
        method, prepared, universe, options, total_value, warnings, diagnostics.group_constraint_events
    )
    comparison: TargetMethodComparison | None = None
    if options.compare_target_methods:
        comparison = compare_methods(method, outcome, prepared, universe, options, total_value, warnings)

    lineage = _lineage(prepared, request_hash)

    def blocked(trace: list[TargetInstrument]) -> RebalanceResult:
        return _blocked_result(
            run_id, correlation_id, before, universe, trace, diagnostics, options, lineage
        )

    # 6. Early gate (path A).
    if outcome.status == BLOCKED or _data_quality_blocks(dq, options):
        return blocked(outcome.trace)

    # 7-8. Intent sizing, then the late gate (path B).
    ledger = TaxLedger(options.max_realized_capital_gains) if options.enable_tax_awareness else None
    intents = size_security_intents(outcome.trace, prepared, options, total_value, diagnostics, ledger)
    if _data_quality_blocks(dq, options):
        return blocked(outcome.trace)

    # 9. Turnover budget; tax impact from the final intent set (item 7).
    intents = apply_turnover_limit(intents, options.max_turnover_pct, total_value, base, diagnostics)
    tax_impact = ledger.impact(intents, base) if ledger is not None else None

    # 10. FX, dependencies, execution order.
    fx_outcome = generate_fx_intents(intents, prepared, options, diagnostics)
    if fx_outcome is None:  # path C
        return blocked(outcome.trace)
    fx_intents, funding = fx_outcome
    link_dependencies(intents, funding, options.link_buy_to_same_currency_sell_dependency)
    ordered = execution_order(intents, fx_intents)

    universe_data = UniverseData(
        f"u_{run_id}", universe.buy_list, universe.sell_list, universe.excluded, FULL_COVERAGE
    )
    target_data = TargetData(f"t_{run_id}", outcome.trace)

    def finish(
        status: RunStatus,
        after: SimulatedState,
        rules: list[RuleResult],
        reconciliation: Reconciliation | None = None,
    ) -> RebalanceResult:
        gate = workflow_gate(status, rules, diagnostics, options) if options.enable_workflow_gates else None
        return RebalanceResult(
            rebalance_run_id=run_id,
            correlation_id=correlation_id,
            status=status,
            before=before,
            universe=universe_data,
            target=target_data,
            intents=ordered,
            after_simulated=after,
            reconciliation=reconciliation,
            tax_impact=tax_impact,
            rule_results=rules,
            explanation=Explanation(status, comparison),
            diagnostics=diagnostics,
            gate_decision=gate,
            lineage=lineage,
            base_currency=base,
        )

    # 11. Settlement ladder (path D): the unchanged portfolio is re-valued, i.e. the before state
    # again, and that valuation logs its data-quality entries once more, as at the reference.
    if options.enable_settlement_awareness:
        breach = build_cash_ladder(ordered, prepared, options, diagnostics)
        if breach is not None:
            dq.price_missing.extend(valuation.price_missing)
            dq.fx_missing.extend(valuation.fx_missing)
            return finish(BLOCKED, before, [settlement_rule(breach)])

    # 12. After state and post-trade rules (path E).
    after = simulate_after_state(prepared, ordered, diagnostics)
    rules = evaluate_rules(after, options, diagnostics, universe.locked)
    if has_hard_failure(rules):
        safety_warnings(rules, warnings)
        return finish(BLOCKED, after, rules)

    # 13. Reconciliation (path F).
    reconciliation, mismatch = reconcile(before.total_value, after.total_value)
    if mismatch is not None:
        rules.append(mismatch)
        return finish(BLOCKED, after, rules, reconciliation)

    # 14. Final status (path G).
    return finish(status_from_rules(rules, outcome.status), after, rules, reconciliation)


def _blocked_result(
    run_id: str,
    correlation_id: str,
    before: SimulatedState,
    universe: Universe,
    trace: list[TargetInstrument],
    diagnostics: DiagnosticsData,
    options: EngineOptions,
    lineage: LineageData,
) -> RebalanceResult:
    """Paths A/B (and C): no intents, before state as after state, rules on the before state."""
    rules = evaluate_rules(before, options, diagnostics, universe.locked)
    gate = workflow_gate(BLOCKED, rules, diagnostics, options) if options.enable_workflow_gates else None
    return RebalanceResult(
        rebalance_run_id=run_id,
        correlation_id=correlation_id,
        status=BLOCKED,
        before=before,
        universe=UniverseData(f"u_{run_id}", universe.buy_list, universe.sell_list, universe.excluded, NO_COVERAGE),
        target=TargetData(f"t_{run_id}", trace),
        intents=[],
        after_simulated=before,
        reconciliation=None,
        tax_impact=None,
        rule_results=rules,
        # The reference's early-block summary really is "Blocked" and drops the comparison payload.
        explanation=Explanation("Blocked", None, has_comparison_key=False),
        diagnostics=diagnostics,
        gate_decision=gate,
        lineage=lineage,
        base_currency=before.total_value.currency,
    )
