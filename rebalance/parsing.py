"""Parsing a batch body: decoded JSON -> `BatchRebalanceRequest`, or a 400 naming every fault.

Each top-level section is validated on its own by the core schema derived from its declaration
(rebalance/schemas.py), so a structural error in one section does not hide duplicate or lot errors
in another. Then one Python pass runs the checks a per-field schema cannot see: duplicate ids,
lots that do not add up to their position, and the digit and exponent bounds of every decimal.
Each check has a fast path over whole columns (set sizes, one `str` per decimal) and only walks
row by row, building field paths, when the fast path finds something.

Scenario options are only checked to be plain JSON objects here (and copied safe to re-serialise);
their content is validated per scenario when the batch runs (rebalance/options.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from pydantic_core import SchemaValidator

from dpm_async.decimals import DECIMAL_MESSAGE, decimal_is_sane, decimals_all_sane
from dpm_async.shapes import shape_fields
from rebalance.batch import MAX_OPTIONS_DEPTH, MAX_SCENARIOS, BatchRebalanceRequest, Scenario
from rebalance.engine import models as em
from rebalance.messages import Errors, path_key
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
        check = _SECTION_CHECKS.get(name)
        if check is not None:
            check(value, errors)

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


# -- the Python pass -------------------------------------------------------------------------------


def _report_insane(items: Iterator[tuple[str, Decimal | None]], errors: Errors) -> None:
    for path, value in items:
        if value is not None and not decimal_is_sane(value):
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


def _report_duplicates(keys: list[str], list_path: str, key_name: str, errors: Errors) -> None:
    for index, first in _duplicates(keys):
        errors.add(
            f"{list_path}[{index}].{key_name}", f"duplicate {key_name}, first given at {list_path}[{first}]"
        )


def _portfolio_check(portfolio: em.PortfolioSnapshot, errors: Errors) -> None:
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
    if not decimals_all_sane(values):
        _report_insane(_position_decimals(positions), errors)
    for index, position in with_lots:
        _lots_check(position, f"{prefix}[{index}]", errors)

    balances = portfolio.cash_balances
    _report_duplicates([b.currency for b in balances], "portfolio_snapshot.cash_balances", "currency", errors)
    if not decimals_all_sane(v for b in balances for v in (b.amount, b.settled, b.pending) if v is not None):
        _report_insane(
            (
                (f"portfolio_snapshot.cash_balances[{index}].{name}", getattr(balance, name))
                for index, balance in enumerate(balances)
                for name in ("amount", "settled", "pending")
            ),
            errors,
        )


def _position_decimals(positions: list[em.Position]) -> Iterator[tuple[str, Decimal | None]]:
    for index, position in enumerate(positions):
        path = f"portfolio_snapshot.positions[{index}]"
        yield f"{path}.quantity", position.quantity
        if position.market_value is not None:
            yield f"{path}.market_value.amount", position.market_value.amount
        for lot_index, lot in enumerate(position.lots):
            yield f"{path}.lots[{lot_index}].quantity", lot.quantity
            yield f"{path}.lots[{lot_index}].unit_cost.amount", lot.unit_cost.amount


def _lots_check(position: em.Position, path: str, errors: Errors) -> None:
    lots = position.lots
    _report_duplicates([lot.lot_id for lot in lots], f"{path}.lots", "lot_id", errors)
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


def _market_data_check(market_data: em.MarketDataSnapshot, errors: Errors) -> None:
    prices = market_data.prices
    _report_duplicates(
        [p.instrument_id for p in prices], "market_data_snapshot.prices", "instrument_id", errors
    )
    if not decimals_all_sane(p.price for p in prices):
        _report_insane(
            ((f"market_data_snapshot.prices[{index}].price", p.price) for index, p in enumerate(prices)),
            errors,
        )
    rates = market_data.fx_rates
    _report_duplicates([r.pair for r in rates], "market_data_snapshot.fx_rates", "pair", errors)
    if not decimals_all_sane(r.rate for r in rates):
        _report_insane(
            ((f"market_data_snapshot.fx_rates[{index}].rate", r.rate) for index, r in enumerate(rates)),
            errors,
        )


def _model_check(model: em.ModelPortfolio, errors: Errors) -> None:
    targets = model.targets
    _report_duplicates([t.instrument_id for t in targets], "model_portfolio.targets", "instrument_id", errors)
    if not decimals_all_sane(t.weight for t in targets):
        _report_insane(
            ((f"model_portfolio.targets[{index}].weight", t.weight) for index, t in enumerate(targets)),
            errors,
        )


def _shelf_check(shelf: list[em.ShelfEntry], errors: Errors) -> None:
    _report_duplicates([s.instrument_id for s in shelf], "shelf_entries", "instrument_id", errors)
    if not decimals_all_sane(s.min_notional.amount for s in shelf if s.min_notional is not None):
        _report_insane(
            (
                (f"shelf_entries[{index}].min_notional.amount", s.min_notional.amount)
                for index, s in enumerate(shelf)
                if s.min_notional is not None
            ),
            errors,
        )


_SECTION_CHECKS: dict[str, Callable[[Any, Errors], None]] = {
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
