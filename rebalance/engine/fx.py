"""FX rate lookup (spec 3.1).

Rates are looked up by exact pair string, first row per pair wins, a zero first row counts as
absent, the inverse pair is used as `1 / rate`, and there is no triangulation. The table is built
once per batch and never changes afterwards, so every scenario (and thread) can share it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from .models import FxRate

# Same-currency conversion is the Decimal 1.0 (one decimal place), not 1: the reference multiplies
# by it, which is why same-currency base amounts print one decimal more ("10000.0" -> "10000.00").
SAME_CURRENCY_RATE = Decimal("1.0")
_ONE = Decimal(1)


class FxTable:
    """Read-only FX lookup built from the market data's rate rows."""

    __slots__ = ("_direct", "_inverse")

    def __init__(self, rows: Iterable[FxRate]) -> None:
        first: dict[str, Decimal] = {}
        for row in rows:
            # Only the first row of a pair string is ever considered, even when it is zero.
            if row.pair not in first:
                first[row.pair] = row.rate
        self._direct: dict[str, Decimal] = {pair: rate for pair, rate in first.items() if rate != 0}
        # Inverses are computed once here rather than per lookup: `1 / rate` at 28 digits.
        self._inverse: dict[str, Decimal] = {pair: _ONE / rate for pair, rate in self._direct.items()}

    def rate(self, from_ccy: str, to_ccy: str) -> Decimal | None:
        """Units of `to_ccy` per unit of `from_ccy`, or None when no usable row exists."""
        if from_ccy == to_ccy:
            return SAME_CURRENCY_RATE
        rate = self._direct.get(f"{from_ccy}/{to_ccy}")
        if rate is not None:
            return rate
        return self._inverse.get(f"{to_ccy}/{from_ccy}")
