"""Validation of the wire JSON, derived from the declared shapes (docs/architecture.md, "Shapes").

`validation_schema(T)` turns a declared type - the engine's input dataclasses, their fields'
`Meta` bounds, lists, maps, literals - into a pydantic core schema that validates decoded JSON
straight into the engine's slotted dataclasses in pydantic's Rust core (a 2000 x 2000 x 20 body in
a few milliseconds), unknown keys ignored. Nothing here names a field: a field added to a shape is
validated as declared.

Wire rules that hold for every field of a kind:

* strings are strict (no number is taken for a string), bounded by their Meta;
* integers are lax (`"5"` is 5), as pydantic's default;
* a `Decimal` is a JSON string of at most 100 characters in decimal syntax, a JSON number
  (decoded as Decimal or int) or, from Python callers, a finite float; it must be finite and lie
  strictly inside +-1E+18 (and inside its Meta's `gt`/`ge`). The digit and exponent bounds are
  checked afterwards on whole columns (rebalance/decimals.py), cheaper there than per value.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any, get_args, get_origin, is_typeddict

from pydantic_core import core_schema

from dpm_async.decimals import (
    DECIMAL_MAGNITUDE_LIMIT,
    DECIMAL_MAX_STRING_LENGTH,
    DECIMAL_MESSAGE,
    DECIMAL_STRING_PATTERN,
)
from dpm_async.shapes import NO_META, Meta, literal_values, optional_inner, shape_fields, unwrap

# The sentence a pattern mismatch reads as, by pattern (the Metas' `pattern_message`), filled as
# schemas are derived; rebalance/messages.py words pydantic's errors with it.
PATTERN_MESSAGES: dict[str, str] = {}


def validation_schema(annotation: Any, meta: Meta = NO_META) -> core_schema.CoreSchema:
    """The core schema that validates JSON into `annotation` (see the module docstring)."""
    annotation, meta = unwrap(annotation, meta)
    inner = optional_inner(annotation)
    if inner is not None:
        return core_schema.nullable_schema(validation_schema(inner, meta))
    values = literal_values(annotation)
    if values is not None:
        return core_schema.literal_schema(list(values))
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _dataclass_schema(annotation)
    if annotation is str:
        if meta.pattern and meta.pattern_message:
            PATTERN_MESSAGES[meta.pattern] = meta.pattern_message
        return core_schema.str_schema(
            strict=True, min_length=meta.min_length, max_length=meta.max_length, pattern=meta.pattern
        )
    if annotation is int:
        return core_schema.int_schema(ge=_int(meta.ge), le=_int(meta.le), gt=_int(meta.gt))
    if annotation is bool:
        return core_schema.bool_schema()
    if annotation is Decimal:
        return _decimal_schema(meta)
    if annotation is Any:
        return core_schema.any_schema()
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is list:
        return core_schema.list_schema(
            validation_schema(arguments[0]), min_length=meta.min_length, max_length=meta.max_length
        )
    if origin is dict:
        return core_schema.dict_schema(
            validation_schema(arguments[0]), validation_schema(arguments[1]),
            min_length=meta.min_length, max_length=meta.max_length,
        )
    if is_typeddict(annotation):
        raise TypeError(f"{annotation.__name__} is an output shape: nothing validates into it")
    raise TypeError(f"no wire validation for {annotation!r}")


def _int(bound: Decimal | int | None) -> int | None:
    return None if bound is None else int(bound)


def _dataclass_schema(cls: type) -> core_schema.CoreSchema:
    arguments = []
    for field in shape_fields(cls):
        schema = validation_schema(field.type, field.meta)
        if field.default_factory is not None:
            schema = core_schema.with_default_schema(schema, default_factory=field.default_factory)
        elif not field.required:
            schema = core_schema.with_default_schema(schema, default=field.default)
        arguments.append(core_schema.dataclass_field(field.name, schema))
    return core_schema.dataclass_schema(
        cls,
        core_schema.dataclass_args_schema(cls.__name__, arguments),
        [argument["name"] for argument in arguments],
        slots=True,
    )


def _decimal_schema(meta: Meta) -> core_schema.CoreSchema:
    shape = core_schema.union_schema(
        [
            core_schema.is_instance_schema(Decimal),
            core_schema.int_schema(strict=True),
            core_schema.str_schema(strict=True, max_length=DECIMAL_MAX_STRING_LENGTH, pattern=DECIMAL_STRING_PATTERN),
            core_schema.float_schema(strict=True),
        ],
        mode="left_to_right",
        custom_error_type="decimal_invalid",
        custom_error_message=DECIMAL_MESSAGE,
    )
    # Without a lower bound of its own a decimal is bounded below by -1E+18 (exclusive).
    lower = None if meta.gt is None and meta.ge is not None else -DECIMAL_MAGNITUDE_LIMIT
    value = core_schema.decimal_schema(
        allow_inf_nan=False,
        lt=DECIMAL_MAGNITUDE_LIMIT,
        gt=Decimal(meta.gt) if meta.gt is not None else lower,
        ge=None if meta.ge is None else Decimal(meta.ge),
    )
    return core_schema.chain_schema([shape, value])
