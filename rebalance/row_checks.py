"""The checks a per-field schema cannot see, derived from the shapes: unique keys and decimal bounds.

A list field whose `Meta` names a `unique` key (`positions` by `instrument_id`, a position's `lots`
by `lot_id`, ...) must not repeat it, and every `Decimal` anywhere must keep the wire's digit and
exponent bounds (dpm_async/decimals.py; pydantic's core has already checked its syntax,
finiteness and magnitude). Both follow from the declarations: a decimal or a keyed list added to a
shape is checked without another edit.

Valid requests - nearly all of them - take the fast path: a function generated per shape (as the
standard library generates `__init__`) gathers every decimal and compares each keyed list's
distinct keys with its length, and one pass over the decimals' text decides. Only when that finds
something is the section walked again, field by field, to report every fault with its path in
document order.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from decimal import Decimal
from typing import Any, get_args, get_origin

from dpm_async.decimals import DECIMAL_MESSAGE, decimal_is_sane, decimals_all_sane
from dpm_async.shapes import Meta, optional_inner, shape_fields
from rebalance.messages import Errors, path_key

type Gatherer = Callable[[Any, list[Decimal]], bool]


def rows_check(value: Any, annotation: Any, meta: Meta, path: str, errors: Errors) -> None:
    """Reports the repeated keys and out-of-bounds decimals of a validated section at `path`."""
    decimals: list[Decimal] = []
    gather = _gatherer(annotation, meta)
    if gather is None or (gather(value, decimals) and decimals_all_sane(decimals)):
        return
    _walk(value, annotation, meta, path, errors)


def _walk(value: Any, annotation: Any, meta: Meta, path: str, errors: Errors) -> None:
    """The slow path: every fault, with its path, in document order."""
    inner = optional_inner(annotation)
    if inner is not None:
        if value is not None:
            _walk(value, inner, meta, path, errors)
        return
    if annotation is Decimal:
        if not decimal_is_sane(value):
            errors.add(path, DECIMAL_MESSAGE)
        return
    if dataclasses.is_dataclass(annotation):
        for field in shape_fields(annotation):  # type: ignore[arg-type]
            _walk(getattr(value, field.name), field.type, field.meta, f"{path}.{field.name}", errors)
        return
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is list:
        if meta.unique is not None:
            _report_repeats([getattr(item, meta.unique) for item in value], path, meta.unique, errors)
        for index, item in enumerate(value):
            _walk(item, arguments[0], Meta(), f"{path}[{index}]", errors)
    elif origin is dict:
        for key, item in value.items():
            _walk(item, arguments[1], Meta(), f"{path}{path_key(key)}", errors)


def _report_repeats(keys: list[Any], path: str, key_name: str, errors: Errors) -> None:
    first_index: dict[Any, int] = {}
    for index, key in enumerate(keys):
        first = first_index.setdefault(key, index)
        if first != index:
            errors.add(f"{path}[{index}].{key_name}", f"duplicate {key_name}, first given at {path}[{first}]")


@functools.cache
def _gatherer(annotation: Any, meta: Meta) -> Gatherer | None:
    """A function that appends every decimal under a value to a list and returns False as soon as a
    keyed list repeats a key; None when the type holds neither (nothing to check)."""
    namespace: dict[str, Any] = {}
    statements = _statements(annotation, meta, "value", namespace, "    ")
    if not statements:
        return None
    source = "def gather(value, decimals):\n" + "\n".join(statements) + "\n    return True\n"
    exec(compile(source, f"<row checks of {annotation!r}>", "exec"), namespace)  # noqa: S102 - our own text
    gather: Gatherer = namespace["gather"]
    return gather


def _statements(annotation: Any, meta: Meta, read: str, namespace: dict[str, Any], indent: str) -> list[str]:
    """Python statements gathering the decimals under `read` and checking its keyed lists."""
    inner = optional_inner(annotation)
    if inner is not None:
        body = _statements(inner, meta, read, namespace, indent + "    ")
        return [f"{indent}if {read} is not None:", *body] if body else []
    if annotation is Decimal:
        return [f"{indent}decimals.append({read})"]
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return [  # inlined: no call per row
            line for field in shape_fields(annotation)
            for line in _statements(field.type, field.meta, f"{read}.{field.name}", namespace, indent)
        ]
    origin, arguments = get_origin(annotation), get_args(annotation)
    item = f"item{indent.count('    ')}"
    statements = []
    if origin is list:
        if meta.unique is not None:
            keys = f"{{{item}.{meta.unique} for {item} in {read}}}"
            statements += [f"{indent}if len({keys}) != len({read}):", f"{indent}    return False"]
        body = _statements(arguments[0], Meta(), item, namespace, indent + "    ")
        if body:
            statements += [f"{indent}for {item} in {read}:", *body]
    elif origin is dict:
        body = _statements(arguments[1], Meta(), item, namespace, indent + "    ")
        if body:
            statements += [f"{indent}for {item} in {read}.values():", *body]
    return statements
