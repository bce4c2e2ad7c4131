"""The wire's common value types, in which the engine declares its shapes (docs/architecture.md, "Shapes").

The engine's input dataclasses (`models.py`) and its result's wire form (`wire_types.py`) are the
one declaration of the request and result shapes; their fields carry `Meta`s (dpm_async/shapes.py,
standard library only) from which the HTTP layer derives validation, the canonical request and the
OpenAPI document. The engine itself never reads a `Meta`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from dpm_async.shapes import Meta

# Lengths of identifiers and texts on the wire.
MAX_ID_LENGTH = 128
MAX_CURRENCY_LENGTH = 16
MAX_ATTRIBUTE_VALUE_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 2_000

# Regexes: Rust regex syntax (pydantic's core) that is also valid ECMA-262 (the OpenAPI document).
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # tab, newline and carriage return allowed
PAIR_PATTERN = r"^[^/\x00-\x1f\x7f]+/[^/\x00-\x1f\x7f]+$"
SCENARIO_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
DECIMAL_TEXT_PATTERN = r"^-?[0-9]+(\.[0-9]+)?(E[+-][0-9]+)?$"
WEIGHT4_PATTERN = r"^-?[0-9]+\.[0-9]{4}$"


# --- the wire's common value types ----------------------------------------------------------------

IdStr = Annotated[
    str,
    Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_CONTROL_PATTERN,
         pattern_message="must not contain control characters"),
]
CurrencyStr = Annotated[
    str,
    Meta(description="Currency code; a free string (no ISO check), e.g. `USD`.", example="USD", min_length=1,
         max_length=MAX_CURRENCY_LENGTH, pattern=NO_CONTROL_PATTERN,
         pattern_message="must not contain control characters"),
]
PairStr = Annotated[
    str,
    Meta(description="`BASE/QUOTE`: 1 unit of BASE = `rate` units of QUOTE.", example="EUR/USD",
         max_length=2 * MAX_CURRENCY_LENGTH + 1, pattern=PAIR_PATTERN,
         pattern_message="must be a currency pair 'BASE/QUOTE' with two non-empty parts, e.g. 'EUR/USD'"),
]
AttributeKeyStr = Annotated[
    str,
    Meta(min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_CONTROL_PATTERN,
         pattern_message="must not contain control characters"),
]
AttributeValueStr = Annotated[
    str,
    Meta(max_length=MAX_ATTRIBUTE_VALUE_LENGTH, pattern=NO_CONTROL_PATTERN,
         pattern_message="must not contain control characters"),
]
DescriptionStr = Annotated[
    str,
    Meta(max_length=MAX_DESCRIPTION_LENGTH, pattern=TEXT_PATTERN,
         pattern_message="must not contain control characters other than tab and line breaks"),
]
ScenarioName = Annotated[
    str, Meta(pattern=SCENARIO_NAME_PATTERN, pattern_message=r"scenario names must match regex [a-z0-9_\-]{1,64}")
]

# Input decimals: a JSON string (preferred: it keeps its scale) or a JSON number; the HTTP layer
# bounds every one (digits, exponent, magnitude). These add a lower bound.
PositiveDecimal = Annotated[Decimal, Meta(description="Decimal greater than 0.", gt=0)]
NonNegativeDecimal = Annotated[Decimal, Meta(description="Decimal >= 0.", ge=0)]

# Output decimals: always `str(Decimal)`.
DecimalText = Annotated[
    str,
    Meta(
        description="Decimal as a JSON string, Python `str(Decimal)`: full precision, scale kept (`10000.00`), "
        "exponent notation possible (`0E-23`).",
        example="10000.00",
        pattern=DECIMAL_TEXT_PATTERN,
    ),
]
Weight4Text = Annotated[
    str,
    Meta(description="Weight as a decimal string quantized to exactly 4 places (ROUND_HALF_EVEN).",
         example="0.2500", pattern=WEIGHT4_PATTERN),
]
