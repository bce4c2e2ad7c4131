"""Intent generation (spec 3.10 to 3.15): sizing, dust, tax lots, turnover, FX, dependencies, order.

Deliberate differences from the reference (docs/engine.md):
* item 2: the current value of a holding comes from the same valuation as the before state;
* item 7: tax impact is computed from the final intent set (a dust-suppressed sell gives back the
  gains budget it consumed; intents dropped by turnover count nothing);
* item 18: the FX-stage block returns a normal blocked result (handled by the pipeline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from .models import EngineOptions, Money, Position
from .prepared import PreparedInputs
from .results import (
    DRIFT_REBALANCE,
    FUNDING,
    SWEEP,
    DiagnosticsData,
    DroppedIntent,
    FxSpotIntent,
    Intent,
    SecurityTradeIntent,
    SuppressedIntent,
    TargetInstrument,
    TaxBudgetConstraintEvent,
    TaxImpact,
)
from .wire_types import TradeSide

BUY: Final = "BUY"
SELL: Final = "SELL"
ZERO = Decimal(0)
ONE = Decimal(1)
TAX_SNAP_TOLERANCE = Decimal("1e-10")
TAX_BUDGET_LIMIT_REACHED = "TAX_BUDGET_LIMIT_REACHED"
TRUST_SNAPSHOT = "TRUST_SNAPSHOT"
# constraints_applied values, shared (tuples are immutable and untracked by the GC).
NO_CONSTRAINTS: tuple[str, ...] = ()
MIN_NOTIONAL_ONLY = ("MIN_NOTIONAL",)
TAX_BUDGET_ONLY = ("TAX_BUDGET",)
MIN_NOTIONAL_AND_TAX_BUDGET = ("MIN_NOTIONAL", "TAX_BUDGET")
NO_DEPENDENCIES: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------- tax state


@dataclass(slots=True)
class TaxLedger:
    """Run-wide gains-budget state of the HIFO limiter, and realized results per emitted intent."""

    budget: Decimal | None
    used: Decimal = ZERO
    # intent_id -> realized gain (>= 0) or loss (< 0) per lot, in selling order.
    realized: dict[str, list[Decimal]] = field(default_factory=dict)

    def impact(self, kept: list[SecurityTradeIntent], base: str) -> TaxImpact:
        """Tax impact of the final intent set (item 7), summed in generation order.

        Summing lot by lot in generation order reproduces the reference's running totals exactly
        whenever no intent was suppressed or dropped.
        """
        realized = self.realized
        kept_ids = {intent.intent_id for intent in kept if intent.intent_id in realized}
        gains = ZERO
        losses = ZERO
        for intent_id, amounts in realized.items():  # insertion order = generation order
            if intent_id not in kept_ids:
                continue
            for amount in amounts:
                if amount >= 0:
                    gains += amount
                else:
                    losses += abs(amount)
        budget = self.budget
        if budget is None:
            return TaxImpact(Money(gains, base), Money(losses, base), None, None)
        used = budget if abs(budget - gains) <= TAX_SNAP_TOLERANCE else gains
        return TaxImpact(Money(gains, base), Money(losses, base), Money(budget, base), Money(min(used, budget), base))


def _limit_sell_by_tax_lots(
    position: Position | None,
    requested: Decimal,
    price: Decimal,
    price_ccy: str,
    rate: Decimal,
    ledger: TaxLedger,
    prepared: PreparedInputs,
    fx_missing: list[str],
) -> tuple[Decimal, list[Decimal]]:
    """HIFO lot selection under the gains budget (spec 3.11): (allowed quantity, realized per lot)."""
    if position is None or not position.lots:
        return requested, []
    fx_rate = prepared.fx.rate
    ordered = []
    for lot in position.lots:
        cost = lot.unit_cost
        if cost.currency == price_ccy:
            unit_cost = cost.amount
        else:
            conversion = fx_rate(cost.currency, price_ccy)
            if conversion is None:
                # No limiting without a cost in the price currency; the missing FX may block later.
                fx_missing.append(f"{cost.currency}/{price_ccy}")
                return requested, []
            unit_cost = cost.amount * conversion
        ordered.append((unit_cost, lot.purchase_date, lot.lot_id, lot.quantity))
    # Highest cost first; ties by newest date, then reverse-lexical lot id (whole key descending).
    ordered.sort(key=lambda lot_key: lot_key[:3], reverse=True)

    budget = ledger.budget
    remaining = requested
    allowed = ZERO
    realized: list[Decimal] = []
    for unit_cost, _date, _lot_id, lot_quantity in ordered:
        if remaining <= 0:
            break
        if lot_quantity <= 0:
            continue
        sellable = min(remaining, lot_quantity)
        take = sellable
        gain = (price - unit_cost) * rate  # per unit, base currency
        if budget is not None and gain > 0:
            if ledger.used < budget:
                take = min(take, (budget - ledger.used) / gain)  # fractional on purpose (parity)
            else:
                take = ZERO
        if take <= 0:
            break
        amount = gain * take
        if amount >= 0:
            ledger.used += amount
        realized.append(amount)
        allowed += take
        remaining -= take
        if take < sellable:
            break
    return allowed, realized


# ------------------------------------------------------------------------------------------ sizing


def size_security_intents(
    trace: list[TargetInstrument],
    prepared: PreparedInputs,
    options: EngineOptions,
    total_value: Decimal,
    diagnostics: DiagnosticsData,
    ledger: TaxLedger | None,
) -> list[SecurityTradeIntent]:
    """One SECURITY_TRADE per traced instrument whose floored quantity is positive and not dust."""
    base = prepared.base_currency
    instruments = prepared.instruments
    fx_rate = prepared.fx.rate
    trust = options.valuation_mode == TRUST_SNAPSHOT
    min_trade = options.min_trade_notional
    suppress = options.suppress_dust_trades
    dq = diagnostics.data_quality
    price_missing = dq.price_missing
    fx_missing = dq.fx_missing
    suppressed = diagnostics.suppressed_intents
    tax_events = diagnostics.tax_budget_constraint_events
    warnings = diagnostics.warnings
    tax_warned = False

    # The trace read as a map id -> final weight (trace order, first occurrence). Ids repeat only
    # when the model lists an instrument twice, so the de-duplication set is built only then.
    seen: set[str] | None = set() if prepared.model_has_duplicates else None

    intents: list[SecurityTradeIntent] = []
    for entry in trace:
        instrument_id = entry.instrument_id
        if seen is not None:
            if instrument_id in seen:
                continue
            seen.add(instrument_id)
        # Every traced id is a model target or a holding, so it has facts.
        price, price_ccy, rate, _asset_class, _attributes, shelf_min_notional, position = instruments[instrument_id]
        if price is None:
            price_missing.append(instrument_id)
            continue
        if rate is None:
            fx_missing.append(f"{price_ccy}/{base}")
            continue
        target = total_value * entry.final_weight / rate
        if position is None:
            current = ZERO
        elif trust and position.market_value is not None:
            # Item 2: size from the trusted value the before state used, in the price currency.
            market_value = position.market_value
            if market_value.currency == price_ccy:
                current = market_value.amount
            else:
                conversion = fx_rate(market_value.currency, price_ccy)
                if conversion is None:
                    fx_missing.append(f"{market_value.currency}/{price_ccy}")
                    current = position.quantity * price
                else:
                    current = market_value.amount * conversion
        else:
            current = position.quantity * price  # item 2: CALCULATED ignores market_value
        delta = target - current
        # Quantity = floor(|delta| / price) as an integer; `// ONE` truncates the 28-digit quotient
        # exactly like quantize(1, ROUND_DOWN) for these non-negative values, but faster.
        side: TradeSide
        if delta > 0:
            side = BUY
            quantity = delta / price // ONE
        else:
            side = SELL
            quantity = abs(delta) / price // ONE

        tax_limited = False
        realized: list[Decimal] = []
        used_before = ZERO
        if ledger is not None and side == SELL and quantity > 0:
            used_before = ledger.used
            allowed, realized = _limit_sell_by_tax_lots(
                position, quantity, price, price_ccy, rate, ledger, prepared, fx_missing
            )
            if allowed < quantity:
                if not tax_warned:
                    warnings.append(TAX_BUDGET_LIMIT_REACHED)
                    tax_warned = True
                tax_events.append(TaxBudgetConstraintEvent(instrument_id, quantity, allowed, TAX_BUDGET_LIMIT_REACHED))
                tax_limited = True
                quantity = allowed

        notional = quantity * price
        threshold = min_trade if min_trade is not None else shelf_min_notional
        # Currencies are not compared (reference quirk); zero quantities are logged too (parity).
        if suppress and threshold is not None and notional < threshold.amount:
            suppressed.append(SuppressedIntent(instrument_id, "BELOW_MIN_NOTIONAL", Money(notional, price_ccy), threshold))
            if ledger is not None and realized:
                ledger.used = used_before  # item 7: a suppressed sell gives its gains budget back
            continue
        if quantity > 0:
            constraints: tuple[str, ...]
            if threshold is not None:
                constraints = MIN_NOTIONAL_AND_TAX_BUDGET if tax_limited else MIN_NOTIONAL_ONLY
            else:
                constraints = TAX_BUDGET_ONLY if tax_limited else NO_CONSTRAINTS
            intent_id = f"oi_{len(intents) + 1}"
            intents.append(
                SecurityTradeIntent(
                    intent_id,
                    instrument_id,
                    side,
                    quantity,
                    notional,
                    price_ccy,
                    notional * rate,
                    NO_DEPENDENCIES,
                    DRIFT_REBALANCE,
                    constraints,
                )
            )
            if realized:
                ledger.realized[intent_id] = realized  # type: ignore[union-attr]
    return intents


# ---------------------------------------------------------------------------------------- turnover


def apply_turnover_limit(
    intents: list[SecurityTradeIntent],
    max_turnover_pct: Decimal | None,
    total_value: Decimal,
    base: str,
    diagnostics: DiagnosticsData,
) -> list[SecurityTradeIntent]:
    """Keep the highest-scoring whole intents within the budget, skip-and-continue (spec 3.12).

    The kept list comes back in ranking order, which the reference then uses downstream.
    """
    if max_turnover_pct is None:
        return intents
    budget = total_value * max_turnover_pct
    proposed = ZERO
    for intent in intents:
        proposed += abs(intent.notional_base)
    if proposed <= budget:
        return intents
    scored = []
    for intent in intents:
        magnitude = abs(intent.notional_base)
        score = magnitude / total_value if total_value > 0 else ZERO
        scored.append((score, magnitude, intent))
    scored.sort(key=lambda item: (-item[0], item[1], item[2].instrument_id, item[2].intent_id))
    kept: list[SecurityTradeIntent] = []
    dropped = diagnostics.dropped_intents
    used = ZERO
    for score, magnitude, intent in scored:
        if used + magnitude <= budget:
            kept.append(intent)
            used += magnitude
        else:
            dropped.append(DroppedIntent(intent.instrument_id, "TURNOVER_LIMIT", Money(magnitude, base), score))
    if dropped:
        diagnostics.warnings.append("PARTIAL_REBALANCE_TURNOVER_LIMIT")
    return kept


# ---------------------------------------------------------------------------------------------- FX


def generate_fx_intents(
    intents: list[SecurityTradeIntent],
    prepared: PreparedInputs,
    options: EngineOptions,
    diagnostics: DiagnosticsData,
) -> tuple[list[FxSpotIntent], dict[str, str]] | None:
    """Funding and sweep FX through the base currency (spec 3.13).

    Returns (FX intents, funding intent id per currency), or None when a missing rate must block
    the run (path C, handled as a blocked result by the pipeline - item 18).
    """
    base = prepared.base_currency
    balances: dict[str, Decimal] = {}
    for cash in prepared.inputs.portfolio.cash_balances:
        balances[cash.currency] = cash.amount  # a repeated currency overwrites
    for intent in intents:
        currency = intent.currency
        if intent.side == SELL:
            balances[currency] = balances.get(currency, ZERO) + intent.notional
        else:
            balances[currency] = balances.get(currency, ZERO) - intent.notional

    fx_intents: list[FxSpotIntent] = []
    funding: dict[str, str] = {}
    buffer_factor = ONE + options.fx_buffer_pct
    fx_rate = prepared.fx.rate
    for currency, balance in balances.items():
        if currency == base:
            continue
        rate = fx_rate(currency, base)
        if rate is None:
            diagnostics.data_quality.fx_missing.append(f"{currency}/{base}")
            if options.block_on_missing_fx:
                return None
            continue
        intent_id = f"oi_fx_{len(intents) + len(fx_intents) + 1}"
        pair = f"{currency}/{base}"
        if balance < 0:
            buy_amount = abs(balance) * buffer_factor
            fx_intents.append(
                FxSpotIntent(intent_id, pair, currency, buy_amount, base, buy_amount * rate, NO_DEPENDENCIES, FUNDING)
            )
            funding[currency] = intent_id
        elif balance > 0:
            # Unconditional sweep of residual foreign cash to base (reference behaviour, kept).
            fx_intents.append(
                FxSpotIntent(intent_id, pair, base, balance * rate, currency, balance, NO_DEPENDENCIES, SWEEP)
            )
    return fx_intents, funding


def link_dependencies(
    intents: list[SecurityTradeIntent], funding: dict[str, str], link_same_currency_sell: bool | None
) -> None:
    """BUYs depend on their currency's funding FX, then on the last same-currency SELL (spec 3.14)."""
    last_sell: dict[str, str] = {}
    for intent in intents:
        if intent.side == SELL:
            last_sell[intent.currency] = intent.intent_id
    link = link_same_currency_sell is not False  # null means true for DPM
    for intent in intents:
        if intent.side != BUY:
            continue
        currency = intent.currency
        funding_id = funding.get(currency)
        sell_id = last_sell.get(currency) if link else None
        if funding_id is not None:
            intent.dependencies = (funding_id,) if sell_id is None else (funding_id, sell_id)
        elif sell_id is not None:
            intent.dependencies = (sell_id,)


def execution_order(intents: list[SecurityTradeIntent], fx_intents: list[FxSpotIntent]) -> list[Intent]:
    """Stable order: SELL trades, then FX, then BUY trades (spec 3.15)."""
    sells: list[Intent] = [intent for intent in intents if intent.side == SELL]
    buys = [intent for intent in intents if intent.side != SELL]
    sells.extend(fx_intents)
    sells.extend(buys)
    return sells
