"""Decimals on the wire: the bounds every input decimal must keep, and the checks that enforce them.

A request's numbers arrive decoded with `parse_float=Decimal` (never through a float): JSON numbers
with a fraction or an exponent are `Decimal`, integers `int`, and decimal strings `str`. A decimal
must be finite, have at most 40 digits, an exponent of at least -40 and a magnitude below 1E+18.
Pydantic's core checks the syntax, finiteness and magnitude of each value (rebalance/schemas.py);
the digit and exponent bounds are checked here, on whole columns at once, before any arithmetic
touches a value.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

DECIMAL_MAX_DIGITS = 40
DECIMAL_MIN_EXPONENT = -40
DECIMAL_MAGNITUDE_LIMIT = Decimal("1E+18")
DECIMAL_MAX_STRING_LENGTH = 100
LARGEST_BELOW_LIMIT = 999_999_999_999_999_999
DECIMAL_STRING_PATTERN = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"

DECIMAL_MESSAGE = (
    f"must be a finite decimal (JSON string or number) with at most {DECIMAL_MAX_DIGITS} digits "
    "and magnitude below 1E+18"
)


def _slow_is_sane(value: Decimal) -> bool:
    _, digits, exponent = value.as_tuple()
    return (
        isinstance(exponent, int)
        and len(digits) <= DECIMAL_MAX_DIGITS
        and exponent >= DECIMAL_MIN_EXPONENT
        and value.adjusted() < 18
    )


def decimal_is_sane(value: Decimal) -> bool:
    """Finite, at most 40 coefficient digits, exponent >= -40, magnitude below 1E+18.

    Plain notation of at most 41 characters already guarantees the digit and exponent bounds;
    `adjusted()` is O(1), so a huge exponent costs nothing.
    """
    if not value.is_finite():
        return False
    text = str(value)
    if len(text) <= 41 and "E" not in text:
        return value.adjusted() < 18
    return _slow_is_sane(value)


def decimals_all_sane(values: Iterable[Decimal]) -> bool:
    """Fast path for a column of decimals already known finite and below 1E+18 in magnitude."""
    texts = list(map(str, values))
    return max(map(len, texts), default=0) <= 41 and "E" not in "".join(texts)
