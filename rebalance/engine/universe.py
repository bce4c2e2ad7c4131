"""Universe construction and shelf semantics (spec 3.3).

Builds the eligible-target map `E`, the buy and sell lists, the exclusions and the sell-only
excess. The result depends only on the inputs, the valuation mode (locked holdings are frozen at
their before-state weight) and `allow_restricted`, so PreparedInputs computes it once per pair and
every scenario copies `eligible` before target generation mutates it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from .indexes import InputIndexes
from .models import APPROVED, BANNED, RESTRICTED, SELL_ONLY, SUSPENDED
from .results import ExcludedInstrument, SimulatedState

ZERO = Decimal(0)
# A zero target weight is the Decimal 0.0 (one decimal place), as the reference writes it: it prints
# as "0.0" in the target trace, and TV x 0.0 has one decimal place more than TV x 0 ("0E-9", not
# "0E-8", for an 8-place TV). The trace's default for a model target absent from E is the same value.
ZERO_WEIGHT = Decimal("0.0")


@dataclass(slots=True)
class Universe:
    """Output of universe construction; shared read-only between scenarios."""

    eligible: dict[str, Decimal]  # E: instrument -> target weight, insertion-ordered (copy before use)
    buy_list: list[str]  # BUY_SET in model order
    buy_set: frozenset[str]
    sell_list: list[str]
    excluded: list[ExcludedInstrument]
    shelf_missing: tuple[str, ...]  # appended to each scenario's data-quality diagnostics
    sell_only_excess: Decimal
    # Holdings frozen at their current weight (pass 2: missing shelf, SUSPENDED, BANNED, RESTRICTED).
    locked: frozenset[str]


def build_universe(prepared: InputIndexes, before: SimulatedState, allow_restricted: bool) -> Universe:
    """Run the two universe passes: model targets, then held instruments not yet in E."""
    shelf = prepared.shelf
    eligible: dict[str, Decimal] = {}
    buy_list: list[str] = []
    sell_list: list[str] = []
    excluded: list[ExcludedInstrument] = []
    shelf_missing: list[str] = []
    sell_only_excess = ZERO

    for target in prepared.inputs.model.targets:
        instrument_id = target.instrument_id
        entry = shelf.get(instrument_id)
        if entry is None:
            shelf_missing.append(instrument_id)  # always blocks the run (spec 3.9)
            continue
        status = entry.status
        if status == APPROVED or (status == RESTRICTED and allow_restricted):
            eligible[instrument_id] = target.weight
            buy_list.append(instrument_id)
            sell_list.append(instrument_id)
        elif status == SELL_ONLY:
            eligible[instrument_id] = ZERO_WEIGHT
            sell_list.append(instrument_id)
            excluded.append(ExcludedInstrument(instrument_id, "SHELF_STATUS_SELL_ONLY"))
            # Counted even when not held: the weight is redistributed to buyable targets.
            sell_only_excess += target.weight
        else:  # BANNED, SUSPENDED, or RESTRICTED without allow_restricted
            excluded.append(ExcludedInstrument(instrument_id, f"SHELF_STATUS_{status}"))

    locked: list[str] = []
    for position, summary in zip(prepared.inputs.portfolio.positions, before.positions, strict=True):
        instrument_id = position.instrument_id
        if position.quantity == 0 or instrument_id in eligible:
            continue
        entry = shelf.get(instrument_id)
        if entry is None:
            eligible[instrument_id] = summary.weight
            excluded.append(ExcludedInstrument(instrument_id, "LOCKED_DUE_TO_MISSING_SHELF"))
            locked.append(instrument_id)
        elif entry.status in (SUSPENDED, BANNED, RESTRICTED):
            # RESTRICTED holdings stay locked even with allow_restricted (reference behaviour).
            eligible[instrument_id] = summary.weight
            excluded.append(ExcludedInstrument(instrument_id, f"LOCKED_DUE_TO_{entry.status}"))
            locked.append(instrument_id)
        else:  # APPROVED / SELL_ONLY holding outside the buyable model: implicit sell to zero
            eligible[instrument_id] = ZERO_WEIGHT
            sell_list.append(instrument_id)

    return Universe(
        eligible=eligible,
        buy_list=buy_list,
        buy_set=frozenset(buy_list),
        sell_list=sell_list,
        excluded=excluded,
        shelf_missing=tuple(shelf_missing),
        sell_only_excess=sell_only_excess,
        locked=frozenset(locked),
    )
