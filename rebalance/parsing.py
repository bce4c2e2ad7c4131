"""Parsing a batch body: decoded JSON -> `BatchRebalanceRequest`, or a 400 naming every fault.

Each top-level section is validated on its own by the core schema derived from its declaration
(rebalance/schemas.py), so a structural error in one section does not hide duplicate or lot errors
in another. Then a Python pass runs the checks a per-field schema cannot see: repeated keys and the
digit and exponent bounds of every decimal (rebalance/row_checks.py, derived from the shapes), and
lots that do not add up to their position.

Scenario options are only checked to be plain JSON objects here (and copied safe to re-serialise);
their content is validated per scenario when the batch runs (rebalance/options.py).
"""

from __future__ import annotations

import dataclasses
import math
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from pydantic_core import SchemaValidator

from dpm_async.decimals import decimal_is_sane
from dpm_async.shapes import shape_fields
from rebalance.batch import MAX_OPTIONS_DEPTH, MAX_SCENARIOS, BatchRebalanceRequest, Scenario
from rebalance.engine import models as em
from rebalance.messages import Errors, path_key
from rebalance.row_checks import rows_check
from rebalance.schemas import validation_schema

# Tolerance between a position's quantity and the sum of its lots (spec 1.2, 4.2).
LOT_QUANTITY_TOLERANCE = Decimal("0.0001")

SCENARIOS_EMPTY_MESSAGE = "at least one scenario is required"
SCENARIOS_TOO_MANY_MESSAGE = f"scenario count exceeds maximum of {MAX_SCENARIOS}"


def _section_validators() -> dict[str, SchemaValidator]:
    validators = {}
    for field in shape_fields(BatchRebalanceRequest):
        # The scenario count is checked on the raw map, so that it is reported together with bad
        # names; the map's own bounds are therefore left out of its schema.
        meta = dataclasses.replace(field.meta, min_length=None, max_length=None) \
            if field.name == "scenarios" else field.meta
        validators[field.name] = SchemaValidator(validation_schema(field.type, meta))
    return validators


_SECTION_VALIDATORS = _section_validators()
_SECTION_FIELDS = {field.name: field for field in shape_fields(BatchRebalanceRequest)}


def batch_request_parse(data: Any) -> BatchRebalanceRequest:
    """Validates a decoded batch body into the engine's inputs and the scenarios' raw options.

    Raises `RequestInvalid` listing every error found (at most MAX_ERRORS), in document order.
    Scenarios come out in code-point order of their names, each with its options copied (keys in
    the order given).
    """
    errors = Errors()
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
            errors.add_pydantic(error, (name,))
            continue
        validated[name] = value
        _section_check(name, value, errors)

    scenarios: dict[str, Scenario] = {}
    for scenario_name in sorted(validated.get("scenarios", ())):
        scenario = validated["scenarios"][scenario_name]
        try:
            scenario.options = _json_object_sanitize(scenario.options, 1)
        except _JsonShapeError as shape:
            errors.add(f"scenarios{path_key(scenario_name)}.options{shape.path}", shape.message)
        scenarios[scenario_name] = scenario
    errors.raise_if_any()
    validated["scenarios"] = scenarios
    return BatchRebalanceRequest(**validated)


# -- the Python pass: what a per-field schema cannot see ------------------------------------------


def _section_check(name: str, value: Any, errors: Errors) -> None:
    """Repeated keys and decimal bounds (derived from the shapes), then the lots of each position."""
    field = _SECTION_FIELDS[name]
    rows_check(value, field.type, field.meta, name, errors)
    if name == "portfolio_snapshot":
        for index, position in enumerate(value.positions):
            if position.lots:
                _lots_check(position, f"portfolio_snapshot.positions[{index}]", errors)


def _lots_check(position: em.Position, path: str, errors: Errors) -> None:
    """A position's lots add up to its quantity (within LOT_QUANTITY_TOLERANCE)."""
    lots = position.lots
    # Arithmetic only once every operand is known to be of sane size (so it is cheap).
    if not all(decimal_is_sane(value) for value in [position.quantity, *(lot.quantity for lot in lots)]):
        return
    total = sum((lot.quantity for lot in lots), Decimal(0))
    if abs(total - position.quantity) > LOT_QUANTITY_TOLERANCE:
        errors.add(
            f"{path}.lots",
            f"lot quantities add up to {total}, which differs from the position quantity "
            f"{position.quantity} by more than {LOT_QUANTITY_TOLERANCE}",
        )


# -- scenario options: any JSON object, made safe to re-serialise ---------------------------------

_INT64_MIN = -(2**63)
_UINT64_MAX = 2**64 - 1


class _JsonShapeError(Exception):
    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path
        self.message = message


def _json_object_sanitize(value: dict[str, Any], depth: int) -> dict[str, Any]:
    """Copies an options object, keys in the order given, checking it is plain JSON that the
    canonical form can write back. The order is kept because it decides which option error is
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
            raise _JsonShapeError(path_key(key) + inner.path, inner.message) from None
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
