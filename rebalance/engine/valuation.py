"""Portfolio valuation (spec 3.2), used for the before state and for the simulated after state.

Scale propagation is part of the contract (spec 4.1): the operations below are the reference's, in
the same order and with the same operands, e.g. a same-currency position is multiplied by the FX
rate 1.0 while base-currency cash is added as is, so their printed scales differ.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from .indexes import InputIndexes
from .instruments import UNKNOWN_INSTRUMENT
from .models import CashBalance, Money
from .results import AllocationMetric, PositionSummary, SimulatedState

ZERO = Decimal(0)
ONE = Decimal(1)
CASH_BUCKET = "CASH"

PositionRow = tuple[str, Decimal, "Money | None"]


def value_portfolio(
    prepared: InputIndexes,
    positions: Iterable[PositionRow],
    cash_balances: list[CashBalance],
    *,
    trust_snapshot: bool,
    price_missing: list[str],
    fx_missing: list[str],
) -> SimulatedState:
    """Value `(instrument_id, quantity, market_value)` rows plus cash into a SimulatedState.

    Missing prices and FX rates are appended to the given data-quality lists (duplicates included,
    as in the reference). `trust_snapshot` selects TRUST_SNAPSHOT valuation: a position's
    market_value, when present, replaces quantity x price.
    """
    base = prepared.base_currency
    instruments = prepared.instruments
    base_rates = prepared.base_rates
    fx_rate = prepared.fx.rate
    base_rate = base_rates[base]

    summaries: list[PositionSummary] = []
    add_summary = summaries.append
    class_values: dict[str, Decimal] = {}
    attribute_values: dict[str, dict[str, Decimal]] = {}
    positions_total = ZERO
    for instrument_id, quantity, market_value in positions:
        price, value_ccy, rate, asset_class, attributes, _min_notional, _position = instruments.get(
            instrument_id, UNKNOWN_INSTRUMENT
        )
        if price is None:
            price_missing.append(instrument_id)
            value_ccy = base
            rate = base_rate
            value = quantity * ZERO  # price 0 when missing
        else:
            value = quantity * price
        if trust_snapshot and market_value is not None:
            value = market_value.amount
            value_ccy = market_value.currency
            rate = base_rates[value_ccy] if value_ccy in base_rates else fx_rate(value_ccy, base)
        if rate is None:
            fx_missing.append(f"{value_ccy}/{base}")
            base_value = ZERO
        else:
            base_value = value * rate
        positions_total += base_value
        for attr_key, attr_value in attributes:
            bucket = attribute_values.get(attr_key)
            if bucket is None:
                bucket = attribute_values[attr_key] = {}
            bucket[attr_value] = bucket.get(attr_value, ZERO) + base_value
        class_values[asset_class] = class_values.get(asset_class, ZERO) + base_value
        # The weight needs the total: it is filled in below. The price is shown with the
        # *valuation* currency (instrument_currency), a reference quirk kept (spec 2.2).
        add_summary(PositionSummary(instrument_id, quantity, value_ccy, asset_class, price, value, base_value, ZERO))

    cash_total = ZERO
    for balance in cash_balances:
        if balance.currency == base:
            cash_total += balance.amount  # base cash is added as is (no x 1.0)
            continue
        currency = balance.currency
        rate = base_rates[currency] if currency in base_rates else fx_rate(currency, base)
        if rate is None:
            fx_missing.append(f"{currency}/{base}")
        else:
            cash_total += balance.amount * rate

    total = positions_total + cash_total
    divisor = total if total != 0 else ONE
    for summary in summaries:
        summary.weight = summary.value_in_base_ccy / divisor
    # The CASH bucket is always present; a shelf asset class literally named CASH absorbs it.
    class_values[CASH_BUCKET] = class_values.get(CASH_BUCKET, ZERO) + cash_total

    by_class = [AllocationMetric(key, value / divisor, Money(value, base)) for key, value in class_values.items()]
    by_attribute = {
        attr_key: [AllocationMetric(key, value / divisor, Money(value, base)) for key, value in bucket.items()]
        for attr_key, bucket in attribute_values.items()
    }
    return SimulatedState(Money(total, base), cash_balances, summaries, by_class, by_attribute)
