"""Batch-level preparation: lookup indexes and caches shared by every scenario of a batch.

`prepare_inputs` runs once per batch. Everything it builds is a pure function of the four input
snapshots, so scenarios can share it; the only lazily filled members are memo caches whose values
never change once computed (a race between two threads computes the same value twice and keeps
one, which is harmless), so a PreparedInputs is safe to share between threads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from .fx import FxTable
from .gc_pause import collector_paused
from .indexes import InputIndexes
from .instruments import build_instrument_facts
from .models import Position, Price, RebalanceInputs, ShelfEntry
from .results import SimulatedState
from .universe import Universe, build_universe
from .valuation import value_portfolio

CALCULATED = "CALCULATED"
TRUST_SNAPSHOT = "TRUST_SNAPSHOT"


@dataclass(slots=True)
class BeforeValuation:
    """The before state of one valuation mode with the data-quality entries its valuation logged.

    Each scenario appends these entries to its own fresh diagnostics, exactly as if it had valued
    the portfolio itself.
    """

    state: SimulatedState
    price_missing: tuple[str, ...]
    fx_missing: tuple[str, ...]


@dataclass(slots=True, eq=False)
class PreparedInputs(InputIndexes):
    """The indexes of a batch plus the before states and universes its scenarios share (memoised)."""

    _before: dict[str, BeforeValuation] = field(default_factory=dict, repr=False)
    _universes: dict[tuple[str, bool], Universe] = field(default_factory=dict, repr=False)

    def before(self, valuation_mode: str) -> BeforeValuation:
        """The before-state valuation for a valuation mode (computed once, then shared)."""
        cached = self._before.get(valuation_mode)
        if cached is None:
            price_missing: list[str] = []
            fx_missing: list[str] = []
            portfolio = self.inputs.portfolio
            state = value_portfolio(
                self,
                [(p.instrument_id, p.quantity, p.market_value) for p in portfolio.positions],
                portfolio.cash_balances,
                trust_snapshot=valuation_mode == TRUST_SNAPSHOT,
                price_missing=price_missing,
                fx_missing=fx_missing,
            )
            computed = BeforeValuation(state, tuple(price_missing), tuple(fx_missing))
            cached = self._before.setdefault(valuation_mode, computed)
        return cached

    def universe(self, valuation_mode: str, allow_restricted: bool) -> Universe:
        """The universe for a valuation mode and `allow_restricted` flag (computed once, then shared).

        Locked holdings are frozen at their before-state weight, hence the dependence on the mode.
        """
        key = (valuation_mode, allow_restricted)
        cached = self._universes.get(key)
        if cached is None:
            computed = build_universe(self, self.before(valuation_mode).state, allow_restricted)
            cached = self._universes.setdefault(key, computed)
        return cached


def prepare_inputs(inputs: RebalanceInputs) -> PreparedInputs:
    """Build the lookup indexes of a batch once; the result is read-only and shared by scenarios.

    Price map, shelf map and first-position map keep the first row per instrument; the FX table
    keeps the first row per pair string and treats a zero rate as absent (spec 3.1).
    """
    with collector_paused():
        return _prepare(inputs)


def _prepare(inputs: RebalanceInputs) -> PreparedInputs:
    portfolio = inputs.portfolio
    market = inputs.market_data
    base = portfolio.base_currency

    prices: dict[str, Price] = {}
    for row in market.prices:
        prices.setdefault(row.instrument_id, row)
    shelf: dict[str, ShelfEntry] = {}
    attribute_keys: set[str] = set()
    for entry in inputs.shelf:
        shelf.setdefault(entry.instrument_id, entry)
        attribute_keys.update(entry.attributes)
    positions: dict[str, Position] = {}
    for position in portfolio.positions:
        positions.setdefault(position.instrument_id, position)
    model_weights: dict[str, Decimal] = {}
    for target in inputs.model.targets:
        model_weights.setdefault(target.instrument_id, target.weight)

    fx = FxTable(market.fx_rates)
    # Every currency the valuation and sizing stages convert to base: price, cash and trusted
    # market-value currencies. Other lookups go through the FX table directly.
    currencies = {base}
    currencies.update(price.currency for price in prices.values())
    currencies.update(balance.currency for balance in portfolio.cash_balances)
    currencies.update(p.market_value.currency for p in portfolio.positions if p.market_value is not None)
    base_rates = {currency: fx.rate(currency, base) for currency in currencies}

    instruments = build_instrument_facts(positions, prices, shelf, model_weights, base_rates)

    return PreparedInputs(
        inputs=inputs,
        base_currency=base,
        prices=prices,
        fx=fx,
        base_rates=base_rates,
        shelf=shelf,
        instruments=instruments,
        positions=positions,
        model_weights=model_weights,
        model_ids=frozenset(model_weights),
        model_has_duplicates=len(model_weights) != len(inputs.model.targets),
        attribute_keys=frozenset(attribute_keys),
    )
