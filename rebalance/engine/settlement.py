"""Settlement-aware cash ladder (spec 3.16)."""

from __future__ import annotations

from decimal import Decimal

from .models import EngineOptions
from .prepared import PreparedInputs
from .results import (
    CashLadderBreach,
    CashLadderPoint,
    DiagnosticsData,
    FxSpotIntent,
    Intent,
    RuleResult,
    SecurityTradeIntent,
)

ZERO = Decimal(0)
DEFAULT_SETTLEMENT_DAYS = 2
SETTLEMENT_HINT = "Adjust timing, funding, or overdraft settings."


def build_cash_ladder(
    intents: list[Intent],
    prepared: PreparedInputs,
    options: EngineOptions,
    diagnostics: DiagnosticsData,
) -> CashLadderBreach | None:
    """Project daily cash per currency over the horizon; return the first breach, if any.

    Ladder points and breaches are written to the diagnostics, as is the warning
    SETTLEMENT_OVERDRAFT_UTILIZED when any allowance was used.
    """
    shelf = prepared.shelf
    security_days: dict[str, int] = {}
    max_security_day = 0
    for intent in intents:
        if isinstance(intent, SecurityTradeIntent):
            entry = shelf.get(intent.instrument_id)
            day = entry.settlement_days if entry is not None else DEFAULT_SETTLEMENT_DAYS
            security_days[intent.intent_id] = day
            max_security_day = max(max_security_day, day)
    fx_day = options.fx_settlement_days
    horizon = max(options.settlement_horizon_days, fx_day, max_security_day, 0)
    width = horizon + 1

    flows: dict[str, list[Decimal]] = {}

    def vector(currency: str) -> list[Decimal]:
        found = flows.get(currency)
        if found is None:
            found = flows[currency] = [ZERO] * width
        return found

    for balance in prepared.inputs.portfolio.cash_balances:
        seed = balance.settled if balance.settled is not None else balance.amount
        row = vector(balance.currency)
        row[0] += seed

    # Flows in ascending intent-id string order (reference behaviour; "oi_10" < "oi_2").
    for intent in sorted(intents, key=lambda item: item.intent_id):
        if isinstance(intent, FxSpotIntent):
            vector(intent.sell_currency)[fx_day] -= intent.sell_amount_estimated
            vector(intent.buy_currency)[fx_day] += intent.buy_amount
        else:
            day = security_days[intent.intent_id]
            row = vector(intent.currency)
            if intent.side == "SELL":
                row[day] += intent.notional
            else:
                row[day] -= intent.notional

    ladder = diagnostics.cash_ladder
    breaches = diagnostics.cash_ladder_breaches
    overdrafts = options.max_overdraft_by_ccy
    utilized = False
    for currency in sorted(flows):
        allowance = overdrafts.get(currency) or ZERO
        # `-(allowance or 0)`: no allowance gives the floor 0 (not the Decimal -0).
        floor = -allowance if allowance else ZERO
        running = ZERO
        for day, flow in enumerate(flows[currency]):
            running += flow
            ladder.append(CashLadderPoint(day, currency, running))
            if running < 0 and allowance > 0:
                utilized = True
            if running < floor:
                breaches.append(CashLadderBreach(day, currency, running, floor, f"OVERDRAFT_ON_T_PLUS_{day}"))
    if utilized:
        diagnostics.warnings.append("SETTLEMENT_OVERDRAFT_UTILIZED")
    if not breaches:
        return None
    first = breaches[0]
    diagnostics.warnings.append(first.reason_code)
    return first


def settlement_rule(breach: CashLadderBreach) -> RuleResult:
    """The single rule that replaces the rule set when the ladder breaches (path D)."""
    return RuleResult(
        "SETTLEMENT_CASH_LADDER",
        "HARD",
        "FAIL",
        breach.allowed_floor - breach.projected_balance,
        {"min": breach.allowed_floor},
        breach.reason_code,
        SETTLEMENT_HINT,
    )
