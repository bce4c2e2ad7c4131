"""Request validation and wire schemas of the rebalance API (spec/engine.md sections 1, 2 and 4.3).

Three things live here:

* the batch request (`BatchRebalanceRequestSchema` and its parts): `batch_request_parse` validates
  a decoded JSON body with pydantic straight into the engine's dataclasses
  (`rebalance.engine.models`), one Rust pass per top-level section, then runs the checks that need
  whole columns (duplicates, lot sums, decimal digit and exponent bounds) in one Python pass.
  Every error found is reported with a field path such as `portfolio_snapshot.positions[3].quantity`;
* the scenario options (`engine_options_parse`): the reference service's `EngineOptions` model,
  field for field, so that `INVALID_OPTIONS: <message>` carries the reference's exact wording;
* the result (`BatchRebalanceResultSchema` and its parts): documentation only, for the OpenAPI
  document. The service writes results with orjson; these models describe exactly what it writes.

Numbers: the body arrives decoded with `parse_float=Decimal`, so JSON numbers with a fraction or an
exponent are `Decimal`, integers `int`, and decimal strings `str`; nothing here ever goes through
a float. A decimal must be finite, have at most 40 digits, an exponent of at least -40 and a
magnitude below 1E+18; strings are checked for length and syntax (in Rust) before a `Decimal` is
built, and no arithmetic touches a value before its magnitude has been checked.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import SchemaValidator, core_schema

from dpm_async.problems import RequestInvalid
from rebalance.engine import models as em

__all__ = [
    "BatchRebalanceRequestSchema",
    "BatchRebalanceResultSchema",
    "BatchRequest",
    "OpenApiModel",
    "OptionsInvalid",
    "RebalanceResultSchema",
    "batch_request_parse",
    "engine_options_parse",
]

# ------------------------------------------------------------------------------------------------
# Limits and messages
# ------------------------------------------------------------------------------------------------

MAX_ERRORS = 100

MAX_SCENARIOS = 20
MAX_POSITIONS = 10_000
MAX_CASH_BALANCES = 100
MAX_LOTS = 1_000
MAX_PRICES = 20_000
MAX_FX_RATES = 1_000
MAX_TARGETS = 10_000
MAX_SHELF_ENTRIES = 20_000
MAX_ATTRIBUTES = 64
MAX_OPTIONS_DEPTH = 32

MAX_ID_LENGTH = 128
MAX_CURRENCY_LENGTH = 16
MAX_PAIR_LENGTH = 2 * MAX_CURRENCY_LENGTH + 1
MAX_ATTRIBUTE_VALUE_LENGTH = 256
MAX_DESCRIPTION_LENGTH = 2_000

DECIMAL_MAX_DIGITS = 40
DECIMAL_MIN_EXPONENT = -40
DECIMAL_MAGNITUDE_LIMIT = Decimal("1E+18")
DECIMAL_MAX_STRING_LENGTH = 100
_LARGEST_BELOW_LIMIT = 999_999_999_999_999_999

# Tolerance between a position's quantity and the sum of its lots (spec 1.2, 4.2).
LOT_QUANTITY_TOLERANCE = Decimal("0.0001")

DECIMAL_MESSAGE = (
    f"must be a finite decimal (JSON string or number) with at most {DECIMAL_MAX_DIGITS} digits "
    "and magnitude below 1E+18"
)
SCENARIO_NAME_MESSAGE = r"scenario names must match regex [a-z0-9_\-]{1,64}"
SCENARIOS_EMPTY_MESSAGE = "at least one scenario is required"
SCENARIOS_TOO_MANY_MESSAGE = f"scenario count exceeds maximum of {MAX_SCENARIOS}"

# What an over-long list is called in "at most N …" messages, by its field name.
_LIST_NOUNS = {
    "positions": "positions",
    "cash_balances": "cash balances",
    "lots": "lots",
    "prices": "prices",
    "fx_rates": "FX rates",
    "targets": "model targets",
    "shelf_entries": "shelf entries",
    "attributes": "attributes",
}

# Regexes (Rust regex syntax, also valid ECMA-262 for the OpenAPI document).
_NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"
_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"  # tab, newline and carriage return allowed
_PAIR_PATTERN = r"^[^/\x00-\x1f\x7f]+/[^/\x00-\x1f\x7f]+$"
_SCENARIO_NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
_DECIMAL_STRING_PATTERN = r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"

_PATTERN_MESSAGES = {
    _NO_CONTROL_PATTERN: "must not contain control characters",
    _TEXT_PATTERN: "must not contain control characters other than tab and line breaks",
    _PAIR_PATTERN: "must be a currency pair 'BASE/QUOTE' with two non-empty parts, e.g. 'EUR/USD'",
    _SCENARIO_NAME_PATTERN: SCENARIO_NAME_MESSAGE,
}


# ------------------------------------------------------------------------------------------------
# OpenAPI rendering
# ------------------------------------------------------------------------------------------------


def _openapi_version() -> str:
    """The OAS version drf-spectacular renders (3.0.3 unless configured otherwise)."""
    try:
        from drf_spectacular.settings import spectacular_settings

        return str(spectacular_settings.OAS_VERSION)
    except Exception:  # Django not configured (e.g. schema generated outside the service)
        return "3.0.3"


_DATA_KEYWORDS = frozenset({"example", "examples", "default", "enum", "const"})


def _openapi30_schema(schema: Any) -> Any:
    """Rewrites pydantic's JSON Schema (2020-12) into an OpenAPI 3.0 Schema Object.

    `anyOf [X, null]` -> X with `nullable: true`; `const` -> one-value `enum`; `examples` ->
    `example`; `patternProperties` -> `additionalProperties` and no `propertyNames` (3.0 cannot
    constrain keys; the descriptions say what they are); a `$ref` with siblings -> `allOf: [$ref]`
    plus siblings.
    """
    if isinstance(schema, list):
        return [_openapi30_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DATA_KEYWORDS:
            result[key] = value
        elif key == "properties":
            result[key] = {name: _openapi30_schema(item) for name, item in value.items()}
        else:
            result[key] = _openapi30_schema(value)
    if "const" in result:
        result["enum"] = [result.pop("const")]
    if "examples" in result:
        examples = result.pop("examples")
        if isinstance(examples, list) and examples:
            result.setdefault("example", examples[0])
    result.pop("propertyNames", None)
    if "patternProperties" in result:
        patterns = result.pop("patternProperties")
        if len(patterns) == 1 and "additionalProperties" not in result:
            result["additionalProperties"] = next(iter(patterns.values()))
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(result.get(bound), (int, float)) and not isinstance(result.get(bound), bool):
            result[plain] = result.pop(bound)
            result[bound] = True
    if "anyOf" in result:
        choices = [choice for choice in result["anyOf"] if choice != {"type": "null"}]
        if len(choices) < len(result["anyOf"]):
            rest = {key: value for key, value in result.items() if key != "anyOf"}
            if len(choices) == 1:
                result = {**choices[0], **rest}
            else:
                result = {"anyOf": choices, **rest}
            result["nullable"] = True
    if "$ref" in result and len(result) > 1:
        ref = result.pop("$ref")
        result = {"allOf": [{"$ref": ref}], **result}
    return result


class OpenApiModel(BaseModel):
    """Base for pydantic models documented through drf-spectacular's pydantic extension.

    That extension embeds pydantic's JSON Schema as is, which is not a valid OpenAPI 3.0 Schema
    Object (`type: null`, `const`, `examples`, ...); under OAS 3.0 this rewrites each model's
    schema (see `_openapi30_schema`), under 3.1 it leaves it alone.
    """

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: core_schema.CoreSchema, handler: Any) -> dict[str, Any]:
        json_schema = handler(schema)
        json_schema = handler.resolve_ref_schema(json_schema)
        if _openapi_version().startswith("3.0"):
            converted = _openapi30_schema(json_schema)
            json_schema.clear()
            json_schema.update(converted)
        return json_schema


# ------------------------------------------------------------------------------------------------
# Wire value types
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _WireDecimal:
    """A Decimal given as a JSON string or a JSON number, validated entirely in pydantic's core.

    The input must first be a Decimal (a JSON number with a fraction or exponent, as decoded with
    `parse_float=Decimal`), an int, or a string of at most 100 characters in decimal syntax (sign,
    digits, point, exponent; no spaces, underscores or NaN/Infinity words);
    then it must be finite and lie strictly inside the bounds (comparisons are cheap whatever the
    exponent). Booleans are refused. The digit and exponent bounds are checked on whole columns by
    `_decimals_all_sane` in the Python pass (cheaper there than pydantic's `max_digits`, and exact:
    pydantic normalises first, so it would let `"0E-999999"` through).
    """

    gt: Decimal | None = -DECIMAL_MAGNITUDE_LIMIT
    ge: Decimal | None = None
    description: str = "Decimal as a JSON string (preferred, keeps its scale) or a JSON number."

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        shape = core_schema.union_schema(
            [
                core_schema.is_instance_schema(Decimal),
                core_schema.int_schema(strict=True),
                core_schema.str_schema(
                    strict=True, max_length=DECIMAL_MAX_STRING_LENGTH, pattern=_DECIMAL_STRING_PATTERN
                ),
                core_schema.float_schema(strict=True),
            ],
            mode="left_to_right",
            custom_error_type="decimal_invalid",
            custom_error_message=DECIMAL_MESSAGE,
        )
        value = core_schema.decimal_schema(
            allow_inf_nan=False,
            lt=DECIMAL_MAGNITUDE_LIMIT,
            gt=self.gt,
            ge=self.ge,
        )
        return core_schema.chain_schema([shape, value])

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        # Inclusive bounds only: exclusiveMinimum is a number in JSON Schema but a flag in OAS 3.0.
        number: dict[str, Any] = {
            "type": "number",
            "minimum": -_LARGEST_BELOW_LIMIT,
            "maximum": _LARGEST_BELOW_LIMIT,
        }
        string: dict[str, Any] = {
            "type": "string",
            "pattern": _DECIMAL_STRING_PATTERN,
            "maxLength": DECIMAL_MAX_STRING_LENGTH,
        }
        if self.gt == 0:
            number["minimum"] = 1e-40
        elif self.ge == 0:
            number["minimum"] = 0
        if self.gt == 0 or self.ge == 0:
            string["pattern"] = _DECIMAL_STRING_PATTERN.replace("^[+-]?", "^[+]?", 1)
        bounds = "greater than 0" if self.gt == 0 else "at least 0" if self.ge == 0 else "above -1E+18"
        return {
            "anyOf": [string, number],
            "description": (
                f"{self.description} Finite, at most {DECIMAL_MAX_DIGITS} significant digits, exponent "
                f"at least {DECIMAL_MIN_EXPONENT}, below 1E+18 and {bounds}."
            ),
            "examples": ["1250.50"],
        }


DecimalIn = Annotated[Decimal, _WireDecimal()]
PositiveDecimalIn = Annotated[Decimal, _WireDecimal(gt=Decimal(0), description="Decimal greater than 0.")]
NonNegativeDecimalIn = Annotated[Decimal, _WireDecimal(gt=None, ge=Decimal(0), description="Decimal >= 0.")]

IdStr = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_ID_LENGTH, pattern=_NO_CONTROL_PATTERN),
]
CurrencyStr = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_CURRENCY_LENGTH, pattern=_NO_CONTROL_PATTERN),
    Field(description="Currency code; a free string (no ISO check), e.g. `USD`.", examples=["USD"]),
]
PairStr = Annotated[
    str,
    StringConstraints(strict=True, max_length=MAX_PAIR_LENGTH, pattern=_PAIR_PATTERN),
    Field(description="`BASE/QUOTE`: 1 unit of BASE = `rate` units of QUOTE.", examples=["EUR/USD"]),
]
AttributeKeyStr = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=MAX_ID_LENGTH, pattern=_NO_CONTROL_PATTERN),
]
AttributeValueStr = Annotated[
    str,
    StringConstraints(strict=True, max_length=MAX_ATTRIBUTE_VALUE_LENGTH, pattern=_NO_CONTROL_PATTERN),
]
DescriptionStr = Annotated[
    str, StringConstraints(strict=True, max_length=MAX_DESCRIPTION_LENGTH, pattern=_TEXT_PATTERN)
]
ScenarioName = Annotated[str, StringConstraints(strict=True, pattern=_SCENARIO_NAME_PATTERN)]

SettlementDays = Annotated[int, Field(ge=0, le=10)]
Attributes = Annotated[dict[AttributeKeyStr, AttributeValueStr], Field(max_length=MAX_ATTRIBUTES)]
SHELF_STATUSES = ("APPROVED", "RESTRICTED", "BANNED", "SUSPENDED", "SELL_ONLY")
LIQUIDITY_TIERS = ("L1", "L2", "L3", "L4", "L5")
ShelfStatus = Literal[SHELF_STATUSES]
LiquidityTier = Literal[LIQUIDITY_TIERS]


# ------------------------------------------------------------------------------------------------
# Request wire models (spec 1.2, 1.4). Unknown keys are ignored everywhere.
# ------------------------------------------------------------------------------------------------


class Money(OpenApiModel):
    """An amount in a currency."""

    amount: DecimalIn
    currency: CurrencyStr


class TaxLot(OpenApiModel):
    """One tax lot of a position (used by tax-aware HIFO selling)."""

    lot_id: IdStr
    quantity: NonNegativeDecimalIn
    unit_cost: Money
    purchase_date: Annotated[
        IdStr, Field(description="ISO date; compared as a plain string.", examples=["2021-03-15"])
    ]


class Position(OpenApiModel):
    """A holding. When lots are given, their quantities must add up to `quantity` (within 0.0001)."""

    instrument_id: IdStr
    quantity: DecimalIn
    market_value: Money | None = None
    lots: Annotated[list[TaxLot], Field(max_length=MAX_LOTS)] = Field(default_factory=list)


class CashBalance(OpenApiModel):
    """Cash in one currency; at most one balance per currency."""

    currency: CurrencyStr
    amount: DecimalIn
    settled: DecimalIn | None = None
    pending: DecimalIn | None = None


class PortfolioSnapshot(OpenApiModel):
    """The portfolio to rebalance. Instrument ids are unique within `positions`."""

    snapshot_id: IdStr | None = None
    portfolio_id: IdStr
    base_currency: CurrencyStr
    positions: Annotated[list[Position], Field(max_length=MAX_POSITIONS)] = Field(default_factory=list)
    cash_balances: Annotated[list[CashBalance], Field(max_length=MAX_CASH_BALANCES)] = Field(
        default_factory=list
    )


class Price(OpenApiModel):
    """The price of one instrument, in its trading currency."""

    instrument_id: IdStr
    price: PositiveDecimalIn
    currency: CurrencyStr


class FxRate(OpenApiModel):
    """An FX rate: 1 unit of the pair's left currency = `rate` units of the right one."""

    pair: PairStr
    rate: PositiveDecimalIn


class MarketDataSnapshot(OpenApiModel):
    """Prices and FX rates. Instrument ids and pairs are unique."""

    snapshot_id: IdStr | None = None
    prices: Annotated[list[Price], Field(max_length=MAX_PRICES)] = Field(default_factory=list)
    fx_rates: Annotated[list[FxRate], Field(max_length=MAX_FX_RATES)] = Field(default_factory=list)


class ModelTarget(OpenApiModel):
    """One instrument's weight in the model portfolio."""

    instrument_id: IdStr
    weight: DecimalIn


class ModelPortfolio(OpenApiModel):
    """The model portfolio; instrument ids are unique. `targets` may be empty but must be present."""

    targets: Annotated[list[ModelTarget], Field(max_length=MAX_TARGETS)]


class ShelfEntry(OpenApiModel):
    """What may be traded: an instrument's shelf status and tags. Instrument ids are unique."""

    instrument_id: IdStr
    status: ShelfStatus
    asset_class: IdStr = "UNKNOWN"
    issuer_id: IdStr | None = None
    liquidity_tier: LiquidityTier | None = None
    settlement_days: SettlementDays = 2
    min_notional: Money | None = None
    attributes: Attributes = Field(
        default_factory=dict,
        description="Tags for group constraints (`<key>:<value>`) and allocation_by_attribute.",
        examples=[{"sector": "TECH", "region": "US"}],
    )


class SimulationScenario(OpenApiModel):
    """One what-if scenario: a set of engine options over the shared snapshots."""

    description: DescriptionStr | None = None
    options: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "EngineOptions (spec 1.3); every field optional, unknown keys ignored. The content is "
            "validated per scenario when the batch runs: invalid options put the scenario in "
            "`failed_scenarios` as `INVALID_OPTIONS: <message>` instead of failing the request."
        ),
        examples=[{"target_method": "HEURISTIC", "max_turnover_pct": "0.25"}],
    )


ShelfEntries = Annotated[list[ShelfEntry], Field(max_length=MAX_SHELF_ENTRIES)]
Scenarios = Annotated[
    dict[ScenarioName, SimulationScenario],
    Field(
        min_length=1,
        max_length=MAX_SCENARIOS,
        description="Scenario name (`^[a-z0-9_-]{1,64}$`) -> scenario; 1 to 20 entries.",
    ),
]

_REQUEST_EXAMPLE: dict[str, Any] = {
    "portfolio_snapshot": {
        "snapshot_id": "ps_2026_03_31_eod",
        "portfolio_id": "pf_household_042",
        "base_currency": "CHF",
        "positions": [
            {"instrument_id": "CH0012032048", "quantity": "120"},
            {
                "instrument_id": "US0378331005",
                "quantity": "40",
                "lots": [
                    {
                        "lot_id": "lot_a",
                        "quantity": "25",
                        "unit_cost": {"amount": "142.10", "currency": "USD"},
                        "purchase_date": "2022-05-04",
                    },
                    {
                        "lot_id": "lot_b",
                        "quantity": "15",
                        "unit_cost": {"amount": "188.75", "currency": "USD"},
                        "purchase_date": "2024-01-19",
                    },
                ],
            },
        ],
        "cash_balances": [{"currency": "CHF", "amount": "15000.00"}, {"currency": "USD", "amount": "850.00"}],
    },
    "market_data_snapshot": {
        "snapshot_id": "md_2026_03_31",
        "prices": [
            {"instrument_id": "CH0012032048", "price": "265.40", "currency": "CHF"},
            {"instrument_id": "US0378331005", "price": "201.30", "currency": "USD"},
            {"instrument_id": "IE00B4L5Y983", "price": "98.12", "currency": "USD"},
        ],
        "fx_rates": [{"pair": "USD/CHF", "rate": "0.8812"}],
    },
    "model_portfolio": {
        "targets": [
            {"instrument_id": "CH0012032048", "weight": "0.35"},
            {"instrument_id": "US0378331005", "weight": "0.15"},
            {"instrument_id": "IE00B4L5Y983", "weight": "0.45"},
        ]
    },
    "shelf_entries": [
        {
            "instrument_id": "CH0012032048",
            "status": "APPROVED",
            "asset_class": "EQUITY",
            "attributes": {"sector": "HEALTH"},
        },
        {
            "instrument_id": "US0378331005",
            "status": "APPROVED",
            "asset_class": "EQUITY",
            "settlement_days": 1,
            "attributes": {"sector": "TECH"},
        },
        {
            "instrument_id": "IE00B4L5Y983",
            "status": "APPROVED",
            "asset_class": "FUND",
            "liquidity_tier": "L1",
            "attributes": {"sector": "DIVERSIFIED"},
        },
    ],
    "scenarios": {
        "baseline": {"description": "Engine defaults", "options": {}},
        "tech-cap": {
            "description": "TECH capped at 10% with a 20% turnover budget",
            "options": {
                "group_constraints": {"sector:TECH": {"max_weight": "0.10"}},
                "max_turnover_pct": "0.20",
            },
        },
    },
}


class BatchRebalanceRequestSchema(OpenApiModel):
    """Body of `POST /rebalance/analyze` and `/rebalance/analyze/async` (spec 1.4).

    The snapshots, model and shelf are shared by every scenario; each scenario only brings its
    engine options. Decimals are JSON strings (preferred: they keep their scale, `"100.0"`) or JSON
    numbers. A stray top-level `options` key is ignored (there are no batch-level options).
    """

    model_config = ConfigDict(
        title="BatchRebalanceRequest", json_schema_extra={"examples": [_REQUEST_EXAMPLE]}
    )

    portfolio_snapshot: PortfolioSnapshot
    market_data_snapshot: MarketDataSnapshot
    model_portfolio: ModelPortfolio
    shelf_entries: ShelfEntries
    scenarios: Scenarios


# ------------------------------------------------------------------------------------------------
# Parsing the batch request
# ------------------------------------------------------------------------------------------------
#
# The wire models above document the body (and can validate it), but building a pydantic model
# per row and then an engine dataclass from it costs twice. Parsing therefore validates each
# top-level section with a core schema that builds the engine's slotted dataclasses directly in
# pydantic's Rust core, from the very same field types (`IdStr`, `DecimalIn`, ...), so the
# constraints cannot drift apart; tests pin that both accept the same fields.


def _type_schema(annotation: Any) -> core_schema.CoreSchema:
    return TypeAdapter(annotation).core_schema


_REQUIRED = object()


def _dataclass_schema(cls: type, *fields: tuple[str, core_schema.CoreSchema, Any]) -> core_schema.CoreSchema:
    """A core schema validating a JSON object into the engine dataclass `cls` (unknown keys ignored).

    Each field is `(name, schema, default)`: `_REQUIRED`, a value, or `list`/`dict` as a factory.
    """
    arguments = []
    for name, schema, default in fields:
        if default is list or default is dict:
            schema = core_schema.with_default_schema(schema, default_factory=default)
        elif default is not _REQUIRED:
            schema = core_schema.with_default_schema(schema, default=default)
        arguments.append(core_schema.dataclass_field(name, schema))
    return core_schema.dataclass_schema(
        cls,
        core_schema.dataclass_args_schema(cls.__name__, arguments),
        [argument["name"] for argument in arguments],
        slots=True,
    )


def _engine_schemas() -> dict[str, core_schema.CoreSchema]:
    id_ = _type_schema(IdStr)
    currency = _type_schema(CurrencyStr)
    decimal = _type_schema(DecimalIn)
    nullable = core_schema.nullable_schema
    money = _dataclass_schema(em.Money, ("amount", decimal, _REQUIRED), ("currency", currency, _REQUIRED))
    lot = _dataclass_schema(
        em.TaxLot,
        ("lot_id", id_, _REQUIRED),
        ("quantity", _type_schema(NonNegativeDecimalIn), _REQUIRED),
        ("unit_cost", money, _REQUIRED),
        ("purchase_date", id_, _REQUIRED),
    )
    position = _dataclass_schema(
        em.Position,
        ("instrument_id", id_, _REQUIRED),
        ("quantity", decimal, _REQUIRED),
        ("market_value", nullable(money), None),
        ("lots", core_schema.list_schema(lot, max_length=MAX_LOTS), list),
    )
    cash_balance = _dataclass_schema(
        em.CashBalance,
        ("currency", currency, _REQUIRED),
        ("amount", decimal, _REQUIRED),
        ("settled", nullable(decimal), None),
        ("pending", nullable(decimal), None),
    )
    portfolio = _dataclass_schema(
        em.PortfolioSnapshot,
        ("snapshot_id", nullable(id_), None),
        ("portfolio_id", id_, _REQUIRED),
        ("base_currency", currency, _REQUIRED),
        ("positions", core_schema.list_schema(position, max_length=MAX_POSITIONS), list),
        ("cash_balances", core_schema.list_schema(cash_balance, max_length=MAX_CASH_BALANCES), list),
    )
    price = _dataclass_schema(
        em.Price,
        ("instrument_id", id_, _REQUIRED),
        ("price", _type_schema(PositiveDecimalIn), _REQUIRED),
        ("currency", currency, _REQUIRED),
    )
    fx_rate = _dataclass_schema(
        em.FxRate,
        ("pair", _type_schema(PairStr), _REQUIRED),
        ("rate", _type_schema(PositiveDecimalIn), _REQUIRED),
    )
    market_data = _dataclass_schema(
        em.MarketDataSnapshot,
        ("snapshot_id", nullable(id_), None),
        ("prices", core_schema.list_schema(price, max_length=MAX_PRICES), list),
        ("fx_rates", core_schema.list_schema(fx_rate, max_length=MAX_FX_RATES), list),
    )
    target = _dataclass_schema(
        em.ModelTarget, ("instrument_id", id_, _REQUIRED), ("weight", decimal, _REQUIRED)
    )
    model = _dataclass_schema(
        em.ModelPortfolio, ("targets", core_schema.list_schema(target, max_length=MAX_TARGETS), _REQUIRED)
    )
    shelf_entry = _dataclass_schema(
        em.ShelfEntry,
        ("instrument_id", id_, _REQUIRED),
        ("status", _type_schema(ShelfStatus), _REQUIRED),
        ("asset_class", id_, "UNKNOWN"),
        ("issuer_id", nullable(id_), None),
        ("liquidity_tier", nullable(_type_schema(LiquidityTier)), None),
        ("settlement_days", _type_schema(SettlementDays), 2),
        ("min_notional", nullable(money), None),
        ("attributes", _type_schema(Attributes), dict),
    )
    return {
        "portfolio_snapshot": portfolio,
        "market_data_snapshot": market_data,
        "model_portfolio": model,
        "shelf_entries": core_schema.list_schema(shelf_entry, max_length=MAX_SHELF_ENTRIES),
        # Scenario count is checked on the raw map, so that it is reported together with bad names.
        "scenarios": _type_schema(dict[ScenarioName, SimulationScenario]),
    }


_SECTION_VALIDATORS: dict[str, SchemaValidator] = {
    name: SchemaValidator(schema) for name, schema in _engine_schemas().items()
}


@dataclass(slots=True)
class BatchRequest:
    """A validated batch request: the engine's inputs plus each scenario's raw options.

    `scenarios` maps each name, in code-point order (the order they run in), to its options
    object, validated per scenario with `engine_options_parse` when the batch runs.
    """

    inputs: em.RebalanceInputs
    scenarios: dict[str, dict[str, Any]]
    portfolio_snapshot_id: str
    market_data_snapshot_id: str
    descriptions: dict[str, str | None] = field(default_factory=dict)
    _canonical: bytes | None = field(default=None, repr=False, compare=False)

    def canonical_json(self) -> bytes:
        """The validated request, fully defaulted, as compact JSON with sorted keys.

        Decimals are strings keeping their scale (`str(Decimal)`), so `batch_request_parse` of
        this document gives the same request again; stored as an operation's request. The
        exceptions to sorted keys are a shelf entry's `attributes` map (the engine's output follows
        its order) and each scenario's `options` (their order decides which option error is
        reported first).
        """
        if self._canonical is None:
            document = _canonical_document(self.inputs, self.scenarios, self.descriptions)
            self._canonical = orjson.dumps(document, default=_json_default)
        return self._canonical

    def fingerprint(self) -> str:
        """`sha256:<hex>` of `canonical_json()`: equal for bodies that validate to the same request."""
        return "sha256:" + hashlib.sha256(self.canonical_json()).hexdigest()


class _Errors:
    """Collects `{"field", "message"}` errors in document order, keeping the first MAX_ERRORS."""

    __slots__ = ("items", "count")

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []
        self.count = 0

    def add(self, field_path: str, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"field": field_path, "message": message})

    def raise_if_any(self) -> None:
        if self.count:
            detail = "The request body is invalid."
            if self.count > len(self.items):
                detail = f"The request body is invalid: {self.count} errors, the first {len(self.items)} are listed."
            raise RequestInvalid(self.items, detail=detail)


def batch_request_parse(data: Any) -> BatchRequest:
    """Validates a decoded batch body and converts it into the engine's inputs.

    Raises `RequestInvalid` listing every error found (at most MAX_ERRORS), in document order.
    Each section is validated on its own, so a structural error in one section does not hide
    duplicate or lot errors in another. Scenario options are only checked to be JSON objects
    here (copied with their keys sorted); their content is validated per scenario by
    `engine_options_parse` when the batch runs.
    """
    errors = _Errors()
    if not isinstance(data, dict):
        errors.add("", "must be a JSON object")
        errors.raise_if_any()

    validated: dict[str, Any] = {}
    for name, validator in _SECTION_VALIDATORS.items():
        if name not in data:
            errors.add(name, "is required")
            continue
        raw = data[name]
        if name == "scenarios" and isinstance(raw, dict):
            if not raw:
                errors.add(name, SCENARIOS_EMPTY_MESSAGE)
                continue
            if len(raw) > MAX_SCENARIOS:
                errors.add(name, SCENARIOS_TOO_MANY_MESSAGE)
        try:
            value = validator.validate_python(raw)
        except ValidationError as error:
            _errors_from_pydantic(error, (name,), errors)
            continue
        validated[name] = value
        check = _SECTION_CHECKS.get(name)
        if check is not None:
            check(value, errors)

    scenarios: dict[str, dict[str, Any]] = {}
    descriptions: dict[str, str | None] = {}
    for scenario_name in sorted(validated.get("scenarios", ())):
        scenario = validated["scenarios"][scenario_name]
        try:
            scenarios[scenario_name] = _json_object_sanitize(scenario.options, 1)
        except _JsonShapeError as shape:
            errors.add(f"scenarios{_path_key(scenario_name)}.options{shape.path}", shape.message)
        descriptions[scenario_name] = scenario.description
    errors.raise_if_any()

    portfolio: em.PortfolioSnapshot = validated["portfolio_snapshot"]
    market_data: em.MarketDataSnapshot = validated["market_data_snapshot"]
    return BatchRequest(
        inputs=em.RebalanceInputs(
            portfolio=portfolio,
            market_data=market_data,
            model=validated["model_portfolio"],
            shelf=validated["shelf_entries"],
        ),
        scenarios=scenarios,
        portfolio_snapshot_id=portfolio.snapshot_id or portfolio.portfolio_id,
        market_data_snapshot_id=market_data.snapshot_id or "md",
        descriptions=descriptions,
    )


# -- the Python pass: what a per-field schema cannot see -------------------------------------------
#
# Each check has a fast path over whole columns (set sizes, one `str` per decimal) and only walks
# row by row, building field paths, when the fast path finds something.


def _decimal_slow_is_sane(value: Decimal) -> bool:
    _, digits, exponent = value.as_tuple()
    return (
        isinstance(exponent, int)
        and len(digits) <= DECIMAL_MAX_DIGITS
        and exponent >= DECIMAL_MIN_EXPONENT
        and value.adjusted() < 18
    )


def _decimal_is_sane(value: Decimal) -> bool:
    """Finite, at most 40 coefficient digits, exponent >= -40, magnitude below 1E+18.

    Plain notation of at most 41 characters already guarantees the digit and exponent bounds;
    `adjusted()` is O(1), so a huge exponent costs nothing.
    """
    if not value.is_finite():
        return False
    text = str(value)
    if len(text) <= 41 and "E" not in text:
        return value.adjusted() < 18
    return _decimal_slow_is_sane(value)


def _decimals_all_sane(values: list[Decimal]) -> bool:
    """Fast path for a column of decimals already known finite and below 1E+18 in magnitude."""
    texts = list(map(str, values))
    return max(map(len, texts), default=0) <= 41 and "E" not in "".join(texts)


def _report_insane(items: Any, errors: _Errors) -> None:
    for path, value in items:
        if value is not None and not _decimal_is_sane(value):
            errors.add(path, DECIMAL_MESSAGE)


def _duplicates(keys: list[str]) -> list[tuple[int, int]]:
    """`(index, first_index)` for every repeated key; a set comparison when there are none."""
    if len(set(keys)) == len(keys):
        return []
    first_index: dict[str, int] = {}
    found = []
    for index, key in enumerate(keys):
        first = first_index.setdefault(key, index)
        if first != index:
            found.append((index, first))
    return found


def _report_duplicates(keys: list[str], list_path: str, key_name: str, errors: _Errors) -> None:
    for index, first in _duplicates(keys):
        errors.add(
            f"{list_path}[{index}].{key_name}", f"duplicate {key_name}, first given at {list_path}[{first}]"
        )


def _portfolio_check(portfolio: em.PortfolioSnapshot, errors: _Errors) -> None:
    positions = portfolio.positions
    prefix = "portfolio_snapshot.positions"
    with_lots = [(index, p) for index, p in enumerate(positions) if p.lots]
    # Duplicates and decimal bounds are reported in document order: ids, then values.
    _report_duplicates([p.instrument_id for p in positions], prefix, "instrument_id", errors)
    values = [p.quantity for p in positions]
    values += [p.market_value.amount for p in positions if p.market_value is not None]
    for _, position in with_lots:
        values += [lot.quantity for lot in position.lots]
        values += [lot.unit_cost.amount for lot in position.lots]
    if not _decimals_all_sane(values):
        _report_insane(_position_decimals(positions), errors)
    for index, position in with_lots:
        _lots_check(position, f"{prefix}[{index}]", errors)

    balances = portfolio.cash_balances
    _report_duplicates([b.currency for b in balances], "portfolio_snapshot.cash_balances", "currency", errors)
    values = [v for b in balances for v in (b.amount, b.settled, b.pending) if v is not None]
    if not _decimals_all_sane(values):
        _report_insane(
            (
                (f"portfolio_snapshot.cash_balances[{index}].{name}", getattr(balance, name))
                for index, balance in enumerate(balances)
                for name in ("amount", "settled", "pending")
            ),
            errors,
        )


def _position_decimals(positions: list[em.Position]) -> Any:
    for index, position in enumerate(positions):
        path = f"portfolio_snapshot.positions[{index}]"
        yield f"{path}.quantity", position.quantity
        if position.market_value is not None:
            yield f"{path}.market_value.amount", position.market_value.amount
        for lot_index, lot in enumerate(position.lots):
            yield f"{path}.lots[{lot_index}].quantity", lot.quantity
            yield f"{path}.lots[{lot_index}].unit_cost.amount", lot.unit_cost.amount


def _lots_check(position: em.Position, path: str, errors: _Errors) -> None:
    lots = position.lots
    _report_duplicates([lot.lot_id for lot in lots], f"{path}.lots", "lot_id", errors)
    # Arithmetic only once every operand is known to be of sane size (so it is cheap).
    if not all(_decimal_is_sane(value) for value in [position.quantity, *(lot.quantity for lot in lots)]):
        return
    total = sum((lot.quantity for lot in lots), Decimal(0))
    if abs(total - position.quantity) > LOT_QUANTITY_TOLERANCE:
        errors.add(
            f"{path}.lots",
            f"lot quantities add up to {total}, which differs from the position quantity "
            f"{position.quantity} by more than {LOT_QUANTITY_TOLERANCE}",
        )


def _market_data_check(market_data: em.MarketDataSnapshot, errors: _Errors) -> None:
    prices = market_data.prices
    _report_duplicates(
        [p.instrument_id for p in prices], "market_data_snapshot.prices", "instrument_id", errors
    )
    if not _decimals_all_sane([p.price for p in prices]):
        _report_insane(
            ((f"market_data_snapshot.prices[{index}].price", p.price) for index, p in enumerate(prices)),
            errors,
        )
    rates = market_data.fx_rates
    _report_duplicates([r.pair for r in rates], "market_data_snapshot.fx_rates", "pair", errors)
    if not _decimals_all_sane([r.rate for r in rates]):
        _report_insane(
            ((f"market_data_snapshot.fx_rates[{index}].rate", r.rate) for index, r in enumerate(rates)),
            errors,
        )


def _model_check(model: em.ModelPortfolio, errors: _Errors) -> None:
    targets = model.targets
    _report_duplicates([t.instrument_id for t in targets], "model_portfolio.targets", "instrument_id", errors)
    if not _decimals_all_sane([t.weight for t in targets]):
        _report_insane(
            ((f"model_portfolio.targets[{index}].weight", t.weight) for index, t in enumerate(targets)),
            errors,
        )


def _shelf_check(shelf: list[em.ShelfEntry], errors: _Errors) -> None:
    _report_duplicates([s.instrument_id for s in shelf], "shelf_entries", "instrument_id", errors)
    values = [s.min_notional.amount for s in shelf if s.min_notional is not None]
    if not _decimals_all_sane(values):
        _report_insane(
            (
                (f"shelf_entries[{index}].min_notional.amount", s.min_notional.amount)
                for index, s in enumerate(shelf)
                if s.min_notional is not None
            ),
            errors,
        )


_SECTION_CHECKS: dict[str, Any] = {
    "portfolio_snapshot": _portfolio_check,
    "market_data_snapshot": _market_data_check,
    "model_portfolio": _model_check,
    "shelf_entries": _shelf_check,
}


# -- scenario options: any JSON object, made safe to re-serialise ---------------------------------

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


class _JsonShapeError(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def _json_object_sanitize(value: dict[str, Any], depth: int) -> dict[str, Any]:
    """Copies an options object, keys in the order given, checking it is plain JSON that
    canonical_json can write back. The order is kept because it decides which option error is
    reported first (as at the reference), so a request re-parsed from its canonical form reports
    the same INVALID_OPTIONS message as the original.

    Integers beyond 64 bits become Decimals (orjson writes only 64-bit integers; a Decimal is
    written as its string, which every option field reads the same way), stray floats become
    Decimals through their shortest repr, and strings with unpaired surrogates are refused.
    """
    if depth > MAX_OPTIONS_DEPTH:
        raise _JsonShapeError("", f"must not be nested deeper than {MAX_OPTIONS_DEPTH} levels")
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _is_encodable(key):
            raise _JsonShapeError("", "keys must be valid Unicode strings")
        try:
            result[key] = _json_value_sanitize(item, depth)
        except _JsonShapeError as inner:
            raise _JsonShapeError(_path_key(key) + inner.path, inner.message) from None
    return result


def _json_value_sanitize(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, (bool, Decimal)):
        return value
    if isinstance(value, str):
        if not _is_encodable(value):
            raise _JsonShapeError("", "must be valid Unicode text")
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _UINT64_MAX else Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else Decimal(str(value))
    if isinstance(value, dict):
        return _json_object_sanitize(value, depth + 1)
    if isinstance(value, list):
        if depth + 1 > MAX_OPTIONS_DEPTH:
            raise _JsonShapeError("", f"must not be nested deeper than {MAX_OPTIONS_DEPTH} levels")
        items = []
        for index, item in enumerate(value):
            try:
                items.append(_json_value_sanitize(item, depth + 1))
            except _JsonShapeError as inner:
                raise _JsonShapeError(f"[{index}]{inner.path}", inner.message) from None
        return items
    raise _JsonShapeError("", "must be a JSON value")


def _is_encodable(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# -- canonical JSON -------------------------------------------------------------------------------
#
# Written by hand rather than with OPT_SORT_KEYS: every object's keys are in sorted order, except
# where order is meaningful, so that a stored request re-parsed later runs exactly like the
# original: a shelf entry's `attributes` (allocation_by_attribute lists keys in first-appearance
# order) and scenario `options` (their order decides which option error is reported first).


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _money_document(money: em.Money | None) -> dict[str, str] | None:
    return None if money is None else {"amount": str(money.amount), "currency": money.currency}


def _optional_str(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _canonical_document(
    inputs: em.RebalanceInputs, scenarios: dict[str, dict[str, Any]], descriptions: dict[str, str | None]
) -> dict[str, Any]:
    """The fully defaulted request as plain JSON values, keys in sorted order (see above)."""
    portfolio, market_data = inputs.portfolio, inputs.market_data
    money = _money_document
    return {
        "market_data_snapshot": {
            "fx_rates": [{"pair": r.pair, "rate": str(r.rate)} for r in market_data.fx_rates],
            "prices": [
                {"currency": p.currency, "instrument_id": p.instrument_id, "price": str(p.price)}
                for p in market_data.prices
            ],
            "snapshot_id": market_data.snapshot_id,
        },
        "model_portfolio": {
            "targets": [
                {"instrument_id": t.instrument_id, "weight": str(t.weight)} for t in inputs.model.targets
            ]
        },
        "portfolio_snapshot": {
            "base_currency": portfolio.base_currency,
            "cash_balances": [
                {
                    "amount": str(c.amount),
                    "currency": c.currency,
                    "pending": _optional_str(c.pending),
                    "settled": _optional_str(c.settled),
                }
                for c in portfolio.cash_balances
            ],
            "portfolio_id": portfolio.portfolio_id,
            "positions": [
                {
                    "instrument_id": p.instrument_id,
                    "lots": [
                        {
                            "lot_id": lot.lot_id,
                            "purchase_date": lot.purchase_date,
                            "quantity": str(lot.quantity),
                            "unit_cost": money(lot.unit_cost),
                        }
                        for lot in p.lots
                    ],
                    "market_value": None if p.market_value is None else money(p.market_value),
                    "quantity": str(p.quantity),
                }
                for p in portfolio.positions
            ],
            "snapshot_id": portfolio.snapshot_id,
        },
        "scenarios": {
            name: {"description": descriptions.get(name), "options": scenarios[name]}
            for name in sorted(scenarios)
        },
        "shelf_entries": [
            {
                "asset_class": s.asset_class,
                "attributes": s.attributes,
                "instrument_id": s.instrument_id,
                "issuer_id": s.issuer_id,
                "liquidity_tier": s.liquidity_tier,
                "min_notional": None if s.min_notional is None else money(s.min_notional),
                "settlement_days": s.settlement_days,
                "status": s.status,
            }
            for s in inputs.shelf
        ],
    }


# -- pydantic errors -> {"field", "message"} ------------------------------------------------------

_SAFE_KEY = re.compile(r"[A-Za-z0-9_\-:]{1,64}")
_MAX_KEY_IN_PATH = 64


def _path_key(key: Any) -> str:
    """A map key as a path segment: `.name` when plain, else `["escaped…"]` (JSON-escaped, truncated)."""
    text = key if isinstance(key, str) else str(key)
    if _SAFE_KEY.fullmatch(text):
        return "." + text
    shown = text[:_MAX_KEY_IN_PATH]
    quoted = json.dumps(shown)  # escapes quotes, control characters, non-ASCII and lone surrogates
    if len(text) > _MAX_KEY_IN_PATH:
        quoted = quoted[:-1] + '..."'
    return f"[{quoted}]"


def _field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif item == "[key]":
            continue
        else:
            path += _path_key(item)
    return path[1:] if path.startswith(".") else path


def _errors_from_pydantic(error: ValidationError, prefix: tuple[Any, ...], errors: _Errors) -> None:
    for item in error.errors(include_url=False, include_input=False):
        if errors.count >= MAX_ERRORS:
            errors.count += 1
            continue
        loc = prefix + tuple(item["loc"])
        errors.add(_field_path(loc), _message_for(item, loc))


def _message_for(item: Any, loc: tuple[Any, ...]) -> str:
    kind = item["type"]
    ctx = item.get("ctx") or {}
    is_key = bool(loc) and loc[-1] == "[key]"
    name = next((part for part in reversed(loc) if isinstance(part, str) and part != "[key]"), "")
    if loc[:1] == ("scenarios",) and is_key and len(loc) == 3:
        return SCENARIO_NAME_MESSAGE
    message = _MESSAGES.get(kind)
    if message is None:
        if kind == "string_pattern_mismatch":
            message = _PATTERN_MESSAGES.get(str(ctx.get("pattern")), "has an invalid format")
        elif kind == "string_too_short":
            minimum = ctx.get("min_length")
            message = "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
        elif kind == "string_too_long":
            message = f"must be at most {ctx.get('max_length')} characters"
        elif kind == "too_long":
            noun = _LIST_NOUNS.get(name, "items")
            message = f"at most {ctx.get('max_length')} {noun}"
        elif kind == "too_short":
            message = f"must have at least {ctx.get('min_length')} items"
        elif kind == "literal_error":
            message = f"must be one of {ctx.get('expected')}"
        elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
            message = _bound_message(kind, ctx)
        else:
            message = str(item.get("msg", "is invalid"))[:200]
    return f"key {message}" if is_key else message


def _bound_message(kind: str, ctx: dict[str, Any]) -> str:
    bound = next(iter(ctx.values()), None)
    if isinstance(bound, Decimal) and abs(bound) == DECIMAL_MAGNITUDE_LIMIT:
        return DECIMAL_MESSAGE
    words = {
        "greater_than": "greater than",
        "greater_than_equal": "greater than or equal to",
        "less_than": "less than",
        "less_than_equal": "less than or equal to",
    }[kind]
    return f"must be {words} {bound}"


_MESSAGES = {
    "missing": "is required",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dataclass_type": "must be a JSON object",
    "dataclass_exact_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode text",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "int_parsing_size": "must be an integer",
    "decimal_invalid": DECIMAL_MESSAGE,
    "decimal_type": DECIMAL_MESSAGE,
    "decimal_parsing": DECIMAL_MESSAGE,
    "finite_number": DECIMAL_MESSAGE,
    "decimal_max_digits": DECIMAL_MESSAGE,
    "decimal_max_places": DECIMAL_MESSAGE,
    "decimal_whole_digits": DECIMAL_MESSAGE,
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}


# ------------------------------------------------------------------------------------------------
# Scenario options: the reference's EngineOptions (spec 1.3), for its exact validation messages
# ------------------------------------------------------------------------------------------------


class OptionsInvalid(Exception):
    """A scenario's options failed validation; `message` is the first error's pydantic `msg`."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _reference_models() -> type[BaseModel]:
    """The reference service's option models. Class names matter: pydantic quotes them in messages
    such as `Input should be a valid dictionary or instance of Money`, and field order decides
    which error comes first. Built in a function so that the names do not clash with the wire
    models above."""

    class Money(BaseModel):
        amount: Decimal
        currency: str

    class GroupConstraint(BaseModel):
        max_weight: Decimal

        @field_validator("max_weight")
        @classmethod
        def _max_weight_range(cls, value: Decimal) -> Decimal:
            if value < 0 or value > 1:
                raise ValueError("max_weight must be between 0 and 1 inclusive")
            return value

    class SuitabilityThresholds(BaseModel):
        single_position_max_weight: Decimal = Field(default=Decimal("0.10"), ge=0, le=1)
        issuer_max_weight: Decimal = Field(default=Decimal("0.20"), ge=0, le=1)
        max_weight_by_liquidity_tier: dict[str, Decimal] = Field(
            default_factory=lambda: {"L4": Decimal("0.10"), "L5": Decimal("0.05")}
        )
        cash_band_min_weight: Decimal = Field(default=Decimal("0.01"), ge=0, le=1)
        cash_band_max_weight: Decimal = Field(default=Decimal("0.05"), ge=0, le=1)
        data_quality_issue_severity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"

        @field_validator("max_weight_by_liquidity_tier")
        @classmethod
        def _tiers(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
            for tier, weight in value.items():
                if tier not in ("L1", "L2", "L3", "L4", "L5"):
                    raise ValueError("max_weight_by_liquidity_tier keys must be one of L1, L2, L3, L4, L5")
                if weight < 0 or weight > 1:
                    raise ValueError("max_weight_by_liquidity_tier values must be between 0 and 1 inclusive")
            return value

        @model_validator(mode="after")
        def _cash_band(self) -> Any:
            if self.cash_band_min_weight > self.cash_band_max_weight:
                raise ValueError("cash_band_min_weight must be less than or equal to cash_band_max_weight")
            return self

    class EngineOptions(BaseModel):
        valuation_mode: Literal["CALCULATED", "TRUST_SNAPSHOT"] = "CALCULATED"
        target_method: Literal["HEURISTIC", "SOLVER"] = "HEURISTIC"
        compare_target_methods: bool = False
        compare_target_methods_tolerance: Decimal = Decimal("0.0001")
        cash_band_min_weight: Decimal = Decimal("0.00")
        cash_band_max_weight: Decimal = Decimal("1.00")
        single_position_max_weight: Decimal | None = None
        min_trade_notional: Money | None = None
        allow_restricted: bool = False
        suppress_dust_trades: bool = True
        dust_trade_threshold: Money | None = None
        fx_buffer_pct: Decimal = Decimal("0.01")
        block_on_missing_prices: bool = True
        block_on_missing_fx: bool = True
        min_cash_buffer_pct: Decimal = Decimal("0.0")
        max_turnover_pct: Decimal | None = None
        enable_tax_awareness: bool = False
        max_realized_capital_gains: Decimal | None = Field(default=None, ge=0)
        enable_settlement_awareness: bool = False
        enable_proposal_simulation: bool = False
        enable_workflow_gates: bool = True
        # HEAD renamed these two; both spellings are accepted, the reference's wins when both are given.
        workflow_requires_client_consent: bool = Field(
            default=False,
            validation_alias=AliasChoices(
                "workflow_requires_client_consent", "workflow_requires_mandate_approval"
            ),
        )
        client_consent_already_obtained: bool = Field(
            default=False,
            validation_alias=AliasChoices(
                "client_consent_already_obtained", "mandate_approval_already_obtained"
            ),
        )
        proposal_apply_cash_flows_first: bool = True
        proposal_block_negative_cash: bool = True
        link_buy_to_same_currency_sell_dependency: bool | None = None
        enable_drift_analytics: bool = True
        enable_suitability_scanner: bool = True
        suitability_thresholds: SuitabilityThresholds = Field(default_factory=SuitabilityThresholds)
        enable_instrument_drift: bool = True
        drift_top_contributors_limit: int = Field(default=5, ge=1, le=20)
        drift_unmodeled_exposure_threshold: Decimal = Field(default=Decimal("0.01"), ge=0, le=1)
        auto_funding: bool = True
        funding_mode: Literal["AUTO_FX"] = "AUTO_FX"
        fx_funding_source_currency: Literal["BASE_ONLY", "ANY_CASH"] = "ANY_CASH"
        fx_generation_policy: Literal["ONE_FX_PER_CCY"] = "ONE_FX_PER_CCY"
        settlement_horizon_days: int = Field(default=5, ge=0, le=10)
        fx_settlement_days: int = Field(default=2, ge=0, le=10)
        max_overdraft_by_ccy: dict[str, Decimal] = Field(default_factory=dict)
        group_constraints: dict[str, GroupConstraint] = Field(default_factory=dict)

        @field_validator("max_turnover_pct")
        @classmethod
        def _turnover_range(cls, value: Decimal | None) -> Decimal | None:
            if value is not None and (value < 0 or value > 1):
                raise ValueError("max_turnover_pct must be between 0 and 1 inclusive")
            return value

        @field_validator("max_overdraft_by_ccy")
        @classmethod
        def _overdraft(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
            for currency, allowance in value.items():
                if not currency.strip():
                    raise ValueError("max_overdraft_by_ccy keys must be non-empty currency codes")
                if allowance < 0:
                    raise ValueError("max_overdraft_by_ccy values must be non-negative")
            return value

        @field_validator("group_constraints")
        @classmethod
        def _group_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
            for key in value:
                parts = key.split(":")
                if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                    raise ValueError(
                        "group_constraints keys must use format '<attribute_key>:<attribute_value>'"
                    )
            return value

    return EngineOptions


_ReferenceEngineOptions = _reference_models()


# Decimal options the engine computes with; absurd magnitudes are refused after the reference checks.
_ENGINE_DECIMAL_OPTIONS = (
    "compare_target_methods_tolerance",
    "cash_band_min_weight",
    "cash_band_max_weight",
    "single_position_max_weight",
    "fx_buffer_pct",
    "min_cash_buffer_pct",
    "max_turnover_pct",
    "max_realized_capital_gains",
)


def engine_options_parse(raw: Any) -> em.EngineOptions:
    """Validates one scenario's options as the reference's EngineOptions and converts them.

    Defaults apply, unknown keys are ignored, advisory-only options are validated but dropped.
    Raises `OptionsInvalid` with the message of the first error, exactly as the reference words
    it (the batch reports `INVALID_OPTIONS: <message>`). Beyond the reference, a decimal the engine
    computes with must be finite with at most 40 digits, exponent >= -40 and magnitude below 1E+18.
    """
    try:
        options = _ReferenceEngineOptions.model_validate(raw)
    except ValidationError as error:
        raise OptionsInvalid(error.errors(include_url=False, include_input=False)[0]["msg"]) from None

    for name in _ENGINE_DECIMAL_OPTIONS:
        value = getattr(options, name)
        if value is not None and not _decimal_is_sane(value):
            raise OptionsInvalid(f"Value error, {name} {DECIMAL_MESSAGE}")
    if options.min_trade_notional is not None and not _decimal_is_sane(options.min_trade_notional.amount):
        raise OptionsInvalid(f"Value error, min_trade_notional.amount {DECIMAL_MESSAGE}")
    for currency, allowance in options.max_overdraft_by_ccy.items():
        if not _decimal_is_sane(allowance):
            raise OptionsInvalid(f"Value error, max_overdraft_by_ccy.{currency[:16]} {DECIMAL_MESSAGE}")

    min_trade_notional = options.min_trade_notional
    return em.EngineOptions(
        valuation_mode=options.valuation_mode,
        target_method=options.target_method,
        compare_target_methods=options.compare_target_methods,
        compare_target_methods_tolerance=options.compare_target_methods_tolerance,
        cash_band_min_weight=options.cash_band_min_weight,
        cash_band_max_weight=options.cash_band_max_weight,
        single_position_max_weight=options.single_position_max_weight,
        min_trade_notional=(
            None
            if min_trade_notional is None
            else em.Money(min_trade_notional.amount, min_trade_notional.currency)
        ),
        allow_restricted=options.allow_restricted,
        suppress_dust_trades=options.suppress_dust_trades,
        fx_buffer_pct=options.fx_buffer_pct,
        block_on_missing_prices=options.block_on_missing_prices,
        block_on_missing_fx=options.block_on_missing_fx,
        min_cash_buffer_pct=options.min_cash_buffer_pct,
        max_turnover_pct=options.max_turnover_pct,
        enable_tax_awareness=options.enable_tax_awareness,
        max_realized_capital_gains=options.max_realized_capital_gains,
        enable_settlement_awareness=options.enable_settlement_awareness,
        enable_workflow_gates=options.enable_workflow_gates,
        workflow_requires_client_consent=options.workflow_requires_client_consent,
        client_consent_already_obtained=options.client_consent_already_obtained,
        link_buy_to_same_currency_sell_dependency=options.link_buy_to_same_currency_sell_dependency,
        settlement_horizon_days=options.settlement_horizon_days,
        fx_settlement_days=options.fx_settlement_days,
        max_overdraft_by_ccy=dict(options.max_overdraft_by_ccy),
        group_constraints={
            key: constraint.max_weight for key, constraint in options.group_constraints.items()
        },
    )


# ------------------------------------------------------------------------------------------------
# Result wire schema (spec 2.1-2.10), for the OpenAPI document only
# ------------------------------------------------------------------------------------------------

DecimalString = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]+(\.[0-9]+)?(E[+-][0-9]+)?$",
        description="Decimal as a JSON string, Python `str(Decimal)`: full precision, scale kept (`10000.00`), exponent notation possible (`0E-23`).",
        examples=["10000.00"],
    ),
]
Weight4 = Annotated[
    str,
    Field(
        pattern=r"^-?[0-9]+\.[0-9]{4}$",
        description="Weight as a decimal string quantized to exactly 4 places (ROUND_HALF_EVEN).",
        examples=["0.2500"],
    ),
]
RUN_STATUSES = ("READY", "PENDING_REVIEW", "BLOCKED")
TARGET_METHODS = ("HEURISTIC", "SOLVER")
TRADE_SIDES = ("BUY", "SELL")
RULE_SEVERITIES = ("HARD", "SOFT", "INFO")
RULE_STATUSES = ("PASS", "FAIL")
RECONCILIATION_STATUSES = ("OK", "MISMATCH")
GROUP_CONSTRAINT_STATUSES = ("CAPPED", "BLOCKED")
GATE_REASON_SEVERITIES = ("HIGH", "MEDIUM", "LOW")
GATE_REASON_SOURCES = ("RULE_ENGINE", "SUITABILITY", "DATA_QUALITY")
GATES = (
    "BLOCKED",
    "RISK_REVIEW_REQUIRED",
    "COMPLIANCE_REVIEW_REQUIRED",
    "CLIENT_CONSENT_REQUIRED",
    "EXECUTION_READY",
    "NONE",
)
GATE_NEXT_STEPS = (
    "FIX_INPUT",
    "RISK_REVIEW",
    "COMPLIANCE_REVIEW",
    "REQUEST_CLIENT_CONSENT",
    "EXECUTE",
    "NONE",
)

# drf-spectacular names every enum it finds; several of these value sets appear under more than
# one field name (`status`, `primary_method`/`alternate_method`, ...), so settings'
# SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] names them by their import paths here.

RunStatus = Literal[RUN_STATUSES]
TargetMethod = Literal[TARGET_METHODS]


class MoneyResult(OpenApiModel):
    """An amount (decimal string) in a currency."""

    amount: DecimalString
    currency: str


class CashBalanceResult(OpenApiModel):
    """A cash balance as echoed in a simulated state."""

    currency: str
    amount: DecimalString
    settled: DecimalString | None
    pending: DecimalString | None


class PositionSummary(OpenApiModel):
    """A position valued in its instrument currency and the base currency (spec 2.2)."""

    instrument_id: str
    quantity: DecimalString
    instrument_currency: str
    asset_class: str
    price: MoneyResult | None = Field(description="Price in the valuation currency; null when no price row.")
    value_in_instrument_ccy: MoneyResult
    value_in_base_ccy: MoneyResult
    weight: Weight4


class AllocationMetric(OpenApiModel):
    """A bucket's weight and base-currency value."""

    key: str
    weight: Weight4
    value: MoneyResult


class SimulatedState(OpenApiModel):
    """A portfolio state: before the trades or simulated after them (spec 2.2)."""

    total_value: MoneyResult
    cash_balances: list[CashBalanceResult]
    positions: list[PositionSummary]
    allocation_by_asset_class: list[AllocationMetric] = Field(
        description="Asset classes, then a final `CASH` bucket."
    )
    allocation_by_instrument: list[AllocationMetric]
    allocation: list[AllocationMetric] = Field(description="Legacy alias of allocation_by_instrument.")
    allocation_by_attribute: dict[str, list[AllocationMetric]]


class ExcludedInstrument(OpenApiModel):
    instrument_id: str
    reason_code: str = Field(examples=["SHELF_STATUS_BANNED"])
    details: str | None = Field(description="Always null.")


class UniverseCoverage(OpenApiModel):
    price_coverage_pct: DecimalString = Field(description="`1` on the main path, `0` on early-block paths.")
    fx_coverage_pct: DecimalString


class UniverseData(OpenApiModel):
    """The tradeable universe (spec 2.3)."""

    universe_id: str
    eligible_for_buy: list[str]
    eligible_for_sell: list[str]
    excluded: list[ExcludedInstrument]
    coverage: UniverseCoverage


class TargetTraceEntry(OpenApiModel):
    instrument_id: str
    model_weight: DecimalString
    final_weight: DecimalString
    final_value: MoneyResult
    tags: list[str] = Field(
        description="`CAPPED_BY_MAX_WEIGHT`, `REDISTRIBUTED_RECIPIENT`, `IMPLICIT_SELL_TO_ZERO`, `LOCKED_POSITION`."
    )


class TargetData(OpenApiModel):
    """Target weights per instrument (spec 2.3, 3.7)."""

    target_id: str
    strategy: dict[str, Any] = Field(description="Always `{}`.")
    targets: list[TargetTraceEntry]


class Rationale(OpenApiModel):
    code: str = Field(examples=["DRIFT_REBALANCE"])
    message: str = Field(examples=["Align"])


class SecurityTradeIntent(OpenApiModel):
    """A buy or sell of a security."""

    intent_type: Literal["SECURITY_TRADE"]
    intent_id: str = Field(examples=["oi_1"])
    instrument_id: str
    side: Literal[TRADE_SIDES]
    quantity: DecimalString
    notional: MoneyResult = Field(description="In the instrument currency.")
    notional_base: MoneyResult = Field(description="In the base currency.")
    dependencies: list[str]
    rationale: Rationale
    constraints_applied: list[str] = Field(description="Drawn from `MIN_NOTIONAL`, `TAX_BUDGET`.")


class FxSpotIntent(OpenApiModel):
    """An FX spot trade funding buys (`FUNDING`) or sweeping foreign cash to base (`SWEEP`)."""

    intent_type: Literal["FX_SPOT"]
    intent_id: str = Field(examples=["oi_fx_3"])
    pair: str = Field(examples=["USD/CHF"])
    buy_currency: str
    buy_amount: DecimalString
    sell_currency: str
    sell_amount_estimated: DecimalString
    dependencies: list[str]
    rationale: Rationale


Intent = Annotated[SecurityTradeIntent | FxSpotIntent, Field(discriminator="intent_type")]


class RuleResult(OpenApiModel):
    """One post-trade rule outcome (spec 2.5, 3.18)."""

    rule_id: str = Field(examples=["CASH_BAND"])
    severity: Literal[RULE_SEVERITIES]
    status: Literal[RULE_STATUSES]
    measured: DecimalString
    threshold: dict[str, DecimalString]
    reason_code: str
    remediation_hint: str | None


class Reconciliation(OpenApiModel):
    """Value conservation between the before and after states (spec 3.19)."""

    before_total_value: MoneyResult
    after_total_value: MoneyResult
    delta: MoneyResult
    tolerance: MoneyResult
    status: Literal[RECONCILIATION_STATUSES]


class TaxImpact(OpenApiModel):
    """Realised gains and losses of the sells, in the base currency."""

    total_realized_gain: MoneyResult
    total_realized_loss: MoneyResult
    budget_limit: MoneyResult | None
    budget_used: MoneyResult | None


class TargetMethodComparison(OpenApiModel):
    """Result of running the other target method too (`compare_target_methods`)."""

    primary_method: TargetMethod
    primary_status: RunStatus
    alternate_method: TargetMethod
    alternate_status: RunStatus
    tolerance: DecimalString
    differing_instruments: list[str]
    alternate_warnings: list[str]


class Explanation(OpenApiModel):
    """`summary` is the status (or `Blocked` on early-block paths, where the comparison key is absent)."""

    summary: str
    target_method_comparison: TargetMethodComparison | None = None


class SuppressedIntent(OpenApiModel):
    instrument_id: str
    reason: str = Field(examples=["BELOW_MIN_NOTIONAL"])
    intended_notional: MoneyResult
    threshold: MoneyResult


class DroppedIntent(OpenApiModel):
    instrument_id: str
    reason: str = Field(examples=["TURNOVER_LIMIT"])
    potential_notional: MoneyResult
    score: DecimalString


class GroupConstraintEvent(OpenApiModel):
    constraint_key: str = Field(examples=["sector:TECH"])
    group_weight_before: DecimalString
    max_weight: DecimalString
    released_weight: DecimalString
    recipients: dict[str, DecimalString]
    status: Literal[GROUP_CONSTRAINT_STATUSES]


class TaxBudgetConstraintEvent(OpenApiModel):
    instrument_id: str
    requested_quantity: DecimalString
    allowed_quantity: DecimalString
    reason_code: str = Field(examples=["TAX_BUDGET_LIMIT_REACHED"])


class CashLadderPoint(OpenApiModel):
    date_offset: int
    currency: str
    projected_balance: DecimalString


class CashLadderBreach(OpenApiModel):
    date_offset: int
    currency: str
    projected_balance: DecimalString
    allowed_floor: DecimalString
    reason_code: str = Field(examples=["OVERDRAFT_ON_T_PLUS_1"])


class DataQuality(OpenApiModel):
    price_missing: list[str]
    fx_missing: list[str]
    shelf_missing: list[str]


class DiagnosticsData(OpenApiModel):
    """Warnings and per-stage events (spec 2.6); always complete."""

    warnings: list[str]
    suppressed_intents: list[SuppressedIntent]
    dropped_intents: list[DroppedIntent]
    group_constraint_events: list[GroupConstraintEvent]
    tax_budget_constraint_events: list[TaxBudgetConstraintEvent]
    cash_ladder: list[CashLadderPoint]
    cash_ladder_breaches: list[CashLadderBreach]
    missing_fx_pairs: list[str] = Field(description="Advisory only; always empty.")
    funding_plan: list[dict[str, Any]] = Field(description="Advisory only; always empty.")
    insufficient_cash: list[dict[str, Any]] = Field(description="Advisory only; always empty.")
    data_quality: DataQuality


class GateReason(OpenApiModel):
    reason_code: str = Field(examples=["SOFT_RULE_FAIL:CASH_BAND"])
    severity: Literal[GATE_REASON_SEVERITIES]
    source: Literal[GATE_REASON_SOURCES]
    details: dict[str, str]


class GateSummary(OpenApiModel):
    hard_fail_count: int
    soft_fail_count: int
    new_high_suitability_count: int
    new_medium_suitability_count: int


class GateDecision(OpenApiModel):
    """The workflow gate (spec 2.7, 3.21)."""

    gate: Literal[GATES]
    recommended_next_step: Literal[GATE_NEXT_STEPS]
    reasons: list[GateReason]
    summary: GateSummary


class LineageData(OpenApiModel):
    portfolio_snapshot_id: str
    market_data_snapshot_id: str
    request_hash: str = Field(description="`<batch_run_id>:<scenario>` in a batch.")
    idempotency_key: str | None
    engine_version: str | None


class RebalanceResult(OpenApiModel):
    """One scenario's complete rebalance result (spec 2.1), keys in this order."""

    rebalance_run_id: str = Field(examples=["rr_1f0c9a7e"])
    correlation_id: str
    status: RunStatus
    before: SimulatedState
    universe: UniverseData
    target: TargetData
    intents: list[Intent] = Field(description="In execution order.")
    after_simulated: SimulatedState
    reconciliation: Reconciliation | None
    tax_impact: TaxImpact | None
    rule_results: list[RuleResult]
    explanation: Explanation
    diagnostics: DiagnosticsData
    gate_decision: GateDecision | None = Field(description="Null when `enable_workflow_gates` is false.")
    lineage: LineageData


class BaseSnapshotIds(OpenApiModel):
    portfolio_snapshot_id: str = Field(description="The portfolio's snapshot_id, else its portfolio_id.")
    market_data_snapshot_id: str = Field(description="The market data's snapshot_id, else `md`.")


class ComparisonMetric(OpenApiModel):
    status: RunStatus
    security_intent_count: int
    gross_turnover_notional_base: MoneyResult


def _result_example() -> dict[str, Any]:
    def money(amount: str, currency: str = "CHF") -> dict[str, str]:
        return {"amount": amount, "currency": currency}

    def state(
        cash: str, position_qty: str, position_value: str, weight: str, cash_weight: str
    ) -> dict[str, Any]:
        position = {
            "instrument_id": "CH0012032048",
            "quantity": position_qty,
            "instrument_currency": "CHF",
            "asset_class": "EQUITY",
            "price": money("265.40"),
            "value_in_instrument_ccy": money(position_value),
            "value_in_base_ccy": money(position_value + "0"),
            "weight": weight,
        }
        metric = {"key": "CH0012032048", "weight": weight, "value": money(position_value + "0")}
        return {
            "total_value": money("47848.00"),
            "cash_balances": [{"currency": "CHF", "amount": cash, "settled": None, "pending": None}],
            "positions": [position],
            "allocation_by_asset_class": [
                {"key": "EQUITY", "weight": weight, "value": money(position_value + "0")},
                {"key": "CASH", "weight": cash_weight, "value": money(cash)},
            ],
            "allocation_by_instrument": [metric],
            "allocation": [metric],
            "allocation_by_attribute": {
                "sector": [{"key": "HEALTH", "weight": weight, "value": money(position_value + "0")}]
            },
        }

    result = {
        "rebalance_run_id": "rr_5b2e9c11",
        "correlation_id": "corr_3f6a8d0c2b7e4a91b5c1d9e0f2a4b6c8:baseline",
        "status": "READY",
        "before": state("15000.00", "120", "31848.00", "0.6656", "0.3135"),
        "universe": {
            "universe_id": "u_rr_5b2e9c11",
            "eligible_for_buy": ["CH0012032048"],
            "eligible_for_sell": ["CH0012032048"],
            "excluded": [],
            "coverage": {"price_coverage_pct": "1", "fx_coverage_pct": "1"},
        },
        "target": {
            "target_id": "t_rr_5b2e9c11",
            "strategy": {},
            "targets": [
                {
                    "instrument_id": "CH0012032048",
                    "model_weight": "0.95",
                    "final_weight": "0.95",
                    "final_value": money("45455.6000"),
                    "tags": [],
                }
            ],
        },
        "intents": [
            {
                "intent_type": "SECURITY_TRADE",
                "intent_id": "oi_1",
                "instrument_id": "CH0012032048",
                "side": "BUY",
                "quantity": "51",
                "notional": money("13535.40"),
                "notional_base": money("13535.400"),
                "dependencies": [],
                "rationale": {"code": "DRIFT_REBALANCE", "message": "Align"},
                "constraints_applied": [],
            }
        ],
        "after_simulated": state("1464.60", "171", "45383.40", "0.9485", "0.0306"),
        "reconciliation": {
            "before_total_value": money("47848.00"),
            "after_total_value": money("47848.00"),
            "delta": money("0.00"),
            "tolerance": money("24.424000"),
            "status": "OK",
        },
        "tax_impact": None,
        "rule_results": [
            {
                "rule_id": "CASH_BAND",
                "severity": "SOFT",
                "status": "PASS",
                "measured": "0.03060943",
                "threshold": {"min": "0.00", "max": "1.00"},
                "reason_code": "OK",
                "remediation_hint": None,
            }
        ],
        "explanation": {"summary": "READY", "target_method_comparison": None},
        "diagnostics": {
            "warnings": [],
            "suppressed_intents": [],
            "dropped_intents": [],
            "group_constraint_events": [],
            "tax_budget_constraint_events": [],
            "cash_ladder": [],
            "cash_ladder_breaches": [],
            "missing_fx_pairs": [],
            "funding_plan": [],
            "insufficient_cash": [],
            "data_quality": {"price_missing": [], "fx_missing": [], "shelf_missing": []},
        },
        "gate_decision": {
            "gate": "EXECUTION_READY",
            "recommended_next_step": "EXECUTE",
            "reasons": [],
            "summary": {
                "hard_fail_count": 0,
                "soft_fail_count": 0,
                "new_high_suitability_count": 0,
                "new_medium_suitability_count": 0,
            },
        },
        "lineage": {
            "portfolio_snapshot_id": "pf_household_042",
            "market_data_snapshot_id": "md",
            "request_hash": "batch_7d41c2aa:baseline",
            "idempotency_key": None,
            "engine_version": None,
        },
    }
    return {
        "batch_run_id": "batch_7d41c2aa",
        "run_at_utc": "2026-03-31T18:02:11.482913+00:00",
        "base_snapshot_ids": {
            "portfolio_snapshot_id": "ps_2026_03_31_eod",
            "market_data_snapshot_id": "md_2026_03_31",
        },
        "results": {"baseline": result},
        "comparison_metrics": {
            "baseline": {
                "status": "READY",
                "security_intent_count": 1,
                "gross_turnover_notional_base": money("13535.400"),
            }
        },
        "failed_scenarios": {
            "tech-cap": "INVALID_OPTIONS: Value error, group_constraints keys must use format '<attribute_key>:<attribute_value>'"
        },
        "warnings": ["PARTIAL_BATCH_FAILURE"],
    }


class BatchRebalanceResultSchema(OpenApiModel):
    """Result of a what-if batch (spec 2.10): one RebalanceResult per successful scenario.

    `results` and `comparison_metrics` have the same keys (the scenarios that ran, in code-point
    order); a scenario with invalid options or a fault is in `failed_scenarios` instead, and then
    `warnings` is `["PARTIAL_BATCH_FAILURE"]`. Decimals are JSON strings.
    """

    model_config = ConfigDict(
        title="BatchRebalanceResult", json_schema_extra={"examples": [_result_example()]}
    )

    batch_run_id: str = Field(examples=["batch_7d41c2aa"])
    run_at_utc: str = Field(
        json_schema_extra={"format": "date-time"}, examples=["2026-03-31T18:02:11.482913+00:00"]
    )
    base_snapshot_ids: BaseSnapshotIds
    results: dict[ScenarioName, RebalanceResult]
    comparison_metrics: dict[ScenarioName, ComparisonMetric]
    failed_scenarios: dict[ScenarioName, str] = Field(
        description="Scenario -> `INVALID_OPTIONS: <message>` or `SCENARIO_EXECUTION_ERROR: <type>`."
    )
    warnings: list[str]


RebalanceResultSchema = RebalanceResult
