"""Per-instrument facts gathered once per batch for the hot per-instrument loops."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from .models import Money, Position, Price, ShelfEntry

UNKNOWN_ASSET_CLASS = "UNKNOWN"


class InstrumentFacts(NamedTuple):
    """Everything valuation and sizing read about one instrument, behind one dict lookup.

    Those loops visit every instrument of every scenario; one compact record instead of separate
    price / shelf / position / FX lookups keeps them short and cache-friendly.
    """

    price: Decimal | None  # first price row's price, None when the instrument has no price
    currency: str  # that row's currency ("" without a price)
    base_rate: Decimal | None  # fx(price currency, base); None without a price or a usable rate
    asset_class: str  # shelf asset class, "UNKNOWN" without a shelf entry
    attributes: tuple[tuple[str, str], ...]  # shelf attributes, insertion order
    min_notional: Money | None  # shelf dust threshold
    position: Position | None  # first position of the instrument


# Facts of an instrument the inputs never mention (only reachable by calling value_portfolio directly).
UNKNOWN_INSTRUMENT = InstrumentFacts(None, "", None, UNKNOWN_ASSET_CLASS, (), None, None)


def build_instrument_facts(
    positions: dict[str, Position],
    prices: dict[str, Price],
    shelf: dict[str, ShelfEntry],
    model_weights: dict[str, Decimal],
    base_rates: dict[str, Decimal | None],
) -> dict[str, InstrumentFacts]:
    """Facts for every instrument held, priced, on the shelf or in the model."""
    facts: dict[str, InstrumentFacts] = {}
    make = tuple.__new__  # positional NamedTuple construction, without the keyword-argument overhead
    sources: Iterable[Iterable[str]] = (positions, prices, shelf, model_weights)
    for ids in sources:
        for instrument_id in ids:
            if instrument_id in facts:
                continue
            row = prices.get(instrument_id)
            entry = shelf.get(instrument_id)
            price_part: tuple[Decimal | None, str, Decimal | None] = (
                (None, "", None) if row is None else (row.price, row.currency, base_rates[row.currency])
            )
            shelf_part: tuple[str, tuple[tuple[str, str], ...], Money | None] = (
                (UNKNOWN_ASSET_CLASS, (), None)
                if entry is None
                else (entry.asset_class, tuple(entry.attributes.items()), entry.min_notional)
            )
            facts[instrument_id] = make(InstrumentFacts, price_part + shelf_part + (positions.get(instrument_id),))
    return facts
