"""Declared shapes: the vocabulary fields are declared in, and how a shape's fields are read.

A shape is a dataclass (a request's parts, which validation builds) or a TypedDict (an answer's wire
form, which an encoder builds). Each field may carry a `Meta` in its `Annotated[...]` type: the
bounds the HTTP layer enforces and the words the OpenAPI document shows. Validation
(rebalance/schemas.py), the canonical request (rebalance/canonical.py) and the OpenAPI document
(dpm_async/openapi.py) are all derived from the declarations, read through the helpers below, so
a field is declared in one place (docs/architecture.md, "Shapes").

Standard library only: the rebalance engine declares its shapes with it and stays pure.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeAliasType, Union, get_args, get_origin, is_typeddict


@dataclass(frozen=True, slots=True)
class Meta:
    """Constraints and documentation of one field (or of the type it annotates).

    Named after JSON Schema's keywords, in snake case. `min_length`/`max_length` bound a string's
    characters, a list's items or a map's entries; `gt`/`ge`/`le` bound a number; `pattern` (with
    the sentence an error shows, `pattern_message`) constrains a string; `unique` names the field
    a list's items must not repeat. `description`, `example` and `format` (e.g. `date-time`) only
    document.
    """

    description: str | None = None
    example: Any = None
    format: str | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    pattern_message: str | None = None
    gt: Decimal | int | None = None
    ge: Decimal | int | None = None
    le: Decimal | int | None = None
    unique: str | None = None


NO_META = Meta()


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One field of a shape: its wire name, its type (without `Annotated`), its merged Meta and, when
    it is not required, its default (a value, or a factory)."""

    name: str
    type: Any
    meta: Meta
    required: bool
    default: Any = None
    default_factory: Callable[[], Any] | None = None


def unwrap(annotation: Any, meta: Meta = NO_META) -> tuple[Any, Meta]:
    """Strips `Annotated` layers (and named aliases of them), merging their Metas; the outer one wins."""
    while True:
        if isinstance(annotation, TypeAliasType) and get_origin(annotation.__value__) is Annotated:
            annotation = annotation.__value__
        if get_origin(annotation) is not Annotated:
            return annotation, meta
        inner, *extras = get_args(annotation)
        for extra in extras:
            if isinstance(extra, Meta):
                meta = meta_merge(extra, meta)
        annotation = inner


def meta_merge(base: Meta, override: Meta) -> Meta:
    """`base` with every field that `override` sets."""
    changes = {f.name: getattr(override, f.name) for f in dataclasses.fields(Meta)
               if getattr(override, f.name) is not None}
    return dataclasses.replace(base, **changes) if changes else base


def is_shape(annotation: Any) -> bool:
    return isinstance(annotation, type) and (dataclasses.is_dataclass(annotation) or is_typeddict(annotation))


def optional_inner(annotation: Any) -> Any | None:
    """`X` for `X | None` (or `Optional[X]`), else None."""
    if get_origin(annotation) in (Union, types.UnionType):
        members = [member for member in get_args(annotation) if member is not type(None)]
        if len(members) == 1 and len(members) < len(get_args(annotation)):
            return members[0]
    return None


def union_members(annotation: Any) -> tuple[Any, ...] | None:
    """The members of a union without None, or None when `annotation` is not a union."""
    if isinstance(annotation, TypeAliasType):
        return union_members(annotation.__value__)
    if get_origin(annotation) in (Union, types.UnionType):
        return tuple(member for member in get_args(annotation) if member is not type(None))
    return None


def literal_values(annotation: Any) -> tuple[Any, ...] | None:
    """The values of a `Literal[...]` (or of a named alias of one), else None."""
    if isinstance(annotation, TypeAliasType):
        annotation = annotation.__value__
    if get_origin(annotation) is Literal:
        return get_args(annotation)
    return None


def description(cls: type) -> str | None:
    """A shape's docstring, cleaned; None for the signature stdlib dataclasses invent when there is none."""
    doc = cls.__doc__
    if not doc or doc.startswith(f"{cls.__name__}("):
        return None
    return inspect.cleandoc(doc)


@functools.cache
def shape_fields(cls: type) -> tuple[FieldInfo, ...]:
    """The fields of a dataclass (those set by `__init__`) or of a TypedDict, in declaration order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    if is_typeddict(cls):
        required_keys: frozenset[str] = getattr(cls, "__required_keys__")  # noqa: B009 - typed as absent
        out = []
        for name, hint in hints.items():
            annotation, meta = unwrap(hint)
            # Under `from __future__ import annotations` the class sees only strings, so
            # `__required_keys__` still lists a `NotRequired[...]` key: the resolved hint decides.
            origin = get_origin(annotation)
            required = origin is typing.Required or (origin is not typing.NotRequired and name in required_keys)
            if origin in (typing.NotRequired, typing.Required):
                annotation, meta = unwrap(get_args(annotation)[0], meta)
            out.append(FieldInfo(name, annotation, meta, required))
        return tuple(out)
    fields = []
    for spec in dataclasses.fields(cls):
        if not spec.init:
            continue
        annotation, meta = unwrap(hints[spec.name])
        factory = None if spec.default_factory is dataclasses.MISSING else spec.default_factory
        default = None if spec.default is dataclasses.MISSING else spec.default
        required = spec.default is dataclasses.MISSING and factory is None
        fields.append(FieldInfo(spec.name, annotation, meta, required, default, factory))
    return tuple(fields)
