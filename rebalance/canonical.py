"""The canonical form of a validated request, and its fingerprint (docs/operations.md, "Correlation ids").

An operation stores its request as `request_canonical_json`: the validated request, fully
defaulted, written from the shapes' declarations (every dataclass field, in declaration order;
decimals as `str(Decimal)`, so they keep their scale). Parsing it again gives the same request, so
a stored operation runs exactly like the original; maps (a shelf entry's `attributes`, a scenario's
`options`) keep the order they were sent in, because the engine's output and the first reported
option error follow it.

Replay and conflict compare `request_fingerprint`: the SHA-256 of the same document with the keys
of every JSON object sorted, so two bodies that differ only in key order, whitespace, number
spelling (`1.0` vs `"1.0"`) or defaults left out are the same request.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, get_args, get_origin

import orjson

from dpm_async.shapes import optional_inner, shape_fields
from rebalance.batch import BatchRebalanceRequest

type Converter = Callable[[Any], Any]


def _decimal_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@functools.cache
def _converter(annotation: Any) -> Converter | None:
    """How a value of `annotation` becomes plain JSON values (None: it already is one)."""
    if _expression(annotation, "value", {}) == "value":
        return None
    namespace: dict[str, Any] = {}
    name = getattr(annotation, "__name__", "value")
    source = f"def convert(value):\n    return {_expression(annotation, 'value', namespace)}\n"
    exec(compile(source, f"<canonical form of {name}>", "exec"), namespace)  # noqa: S102 - our own text
    function: Converter = namespace["convert"]
    return function


def _expression(annotation: Any, read: str, namespace: dict[str, Any]) -> str:
    """Python source that writes the value `read` (of type `annotation`) as plain JSON values.

    Converters are generated from the shapes as the standard library's dataclasses generate
    `__init__`: a dataclass becomes a dict display with one item per field, optional values and
    lists are inlined, and only a nested dataclass costs a call. That is as fast as code written
    by hand; a generic loop over the fields costs several times as much (and orjson's `default=`
    hook a Python call per decimal).
    """
    inner = optional_inner(annotation)
    if inner is not None:
        converted = _expression(inner, read, namespace)
        return read if converted == read else f"(None if {read} is None else {converted})"
    if annotation is Decimal:
        return f"str({read})"
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        function = f"convert_{annotation.__name__}"
        namespace.setdefault(function, _converter_of_dataclass(annotation))
        return f"{function}({read})"
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is list:
        converted = _expression(arguments[0], "item", namespace)
        return read if converted == "item" else f"[{converted} for item in {read}]"
    if origin is dict:
        converted = _expression(arguments[1], "item", namespace)
        return read if converted == "item" else f"{{key: {converted} for key, item in {read}.items()}}"
    return read  # str, int, bool, literals, and options (plain JSON, decimals written by `default`)


@functools.cache
def _converter_of_dataclass(cls: type) -> Converter:
    namespace: dict[str, Any] = {}
    items = ", ".join(
        f"{field.name!r}: {_expression(field.type, f'value.{field.name}', namespace)}" for field in shape_fields(cls)
    )
    source = f"def convert(value):\n    return {{{items}}}\n"
    exec(compile(source, f"<canonical form of {cls.__name__}>", "exec"), namespace)  # noqa: S102 - our own text
    function: Converter = namespace["convert"]
    return function


@dataclass(frozen=True)
class CanonicalRequest:
    """The stored form of a request (`json`) and what identifies it for replay (`fingerprint`)."""

    json: bytes
    fingerprint: str


def request_canonical(request: BatchRebalanceRequest) -> CanonicalRequest:
    """The validated request as compact JSON that `batch_request_parse` reads back to the same request,
    and `sha256:<hex>` of it with every object's keys sorted (equal for equal requests)."""
    document = _document(request)
    text = orjson.dumps(document, default=_decimal_text)
    sorted_text = orjson.dumps(document, default=_decimal_text, option=orjson.OPT_SORT_KEYS)
    return CanonicalRequest(text, "sha256:" + hashlib.sha256(sorted_text).hexdigest())


_document = _converter_of_dataclass(BatchRebalanceRequest)
