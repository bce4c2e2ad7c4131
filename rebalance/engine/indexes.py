"""The lookup indexes of a batch's inputs, built once by `prepare_inputs` (prepared.py).

Apart from PreparedInputs (which adds the memoised before states and universes), so that the
stages PreparedInputs memoises - valuation and the universe - can read the indexes without
importing the module that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .fx import FxTable
from .instruments import InstrumentFacts
from .models import Position, Price, RebalanceInputs, ShelfEntry


@dataclass(slots=True, eq=False)
class InputIndexes:
    """Inputs of a batch plus the lookup indexes the engine needs, built once by `prepare_inputs`."""

    inputs: RebalanceInputs
    base_currency: str
    prices: dict[str, Price]  # first row per instrument wins
    fx: FxTable
    base_rates: dict[str, Decimal | None]  # fx(ccy, base) for every currency seen in the inputs
    shelf: dict[str, ShelfEntry]  # first entry per instrument wins
    instruments: dict[str, InstrumentFacts]  # every instrument named anywhere in the inputs
    positions: dict[str, Position]  # first position per instrument
    model_weights: dict[str, Decimal]  # first target row per instrument
    model_ids: frozenset[str]
    model_has_duplicates: bool  # some instrument appears twice in the model (normally rejected upstream)
    attribute_keys: frozenset[str]  # union of attribute keys over all shelf entries
