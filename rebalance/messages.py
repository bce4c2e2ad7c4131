"""How a request error reads: field paths and sentences for pydantic's errors (docs/api.md, "Errors").

Every error of a 400 is `{"field": "portfolio_snapshot.positions[3].quantity", "message": "…"}`:
the path in the body, in JavaScript-like notation, and a short sentence in the service's own words
(pydantic's wording and error types never reach a client).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from dpm_async.decimals import DECIMAL_MAGNITUDE_LIMIT, DECIMAL_MESSAGE
from dpm_async.problems import FieldError, RequestInvalid
from rebalance.engine.shapes import SCENARIO_NAME_PATTERN
from rebalance.schemas import PATTERN_MESSAGES

MAX_ERRORS = 100

# What an over-long list is called in "at most N …" messages, by its field name ("items" otherwise).
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

_BOUND_WORDS = {
    "greater_than": "greater than",
    "greater_than_equal": "greater than or equal to",
    "less_than": "less than",
    "less_than_equal": "less than or equal to",
}


class Errors:
    """Collects `{"field", "message"}` errors in document order, keeping the first MAX_ERRORS."""

    __slots__ = ("items", "count")

    def __init__(self) -> None:
        self.items: list[FieldError] = []
        self.count = 0

    def add(self, field_path: str, message: str) -> None:
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self.items.append({"field": field_path, "message": message})

    def add_pydantic(self, error: ValidationError, prefix: tuple[Any, ...]) -> None:
        """Every error pydantic found, located under `prefix` and worded by `message_for`."""
        for item in error.errors(include_url=False, include_input=False):
            if self.count >= MAX_ERRORS:
                self.count += 1
                continue
            loc = prefix + tuple(item["loc"])
            self.add(field_path(loc), message_for(item, loc))

    def raise_if_any(self) -> None:
        if self.count:
            detail = "The request body is invalid."
            if self.count > len(self.items):
                detail = f"The request body is invalid: {self.count} errors, the first {len(self.items)} are listed."
            raise RequestInvalid(self.items, detail=detail)


_SAFE_KEY = re.compile(r"[A-Za-z0-9_\-:]{1,64}")
_MAX_KEY_IN_PATH = 64


def path_key(key: Any) -> str:
    """A map key as a path segment: `.name` when plain, else `["escaped…"]` (JSON-escaped, truncated)."""
    text = key if isinstance(key, str) else str(key)
    if _SAFE_KEY.fullmatch(text):
        return "." + text
    shown = text[:_MAX_KEY_IN_PATH]
    quoted = json.dumps(shown)  # escapes quotes, control characters, non-ASCII and lone surrogates
    if len(text) > _MAX_KEY_IN_PATH:
        quoted = quoted[:-1] + '..."'
    return f"[{quoted}]"


def field_path(loc: tuple[Any, ...]) -> str:
    path = ""
    for item in loc:
        if isinstance(item, int):
            path += f"[{item}]"
        elif item == "[key]":
            continue
        else:
            path += path_key(item)
    return path[1:] if path.startswith(".") else path


def message_for(item: Any, loc: tuple[Any, ...]) -> str:
    """The sentence for one pydantic error at `loc` (prefixed `key` when a map key is at fault)."""
    kind = item["type"]
    ctx = item.get("ctx") or {}
    is_key = bool(loc) and loc[-1] == "[key]"
    name = next((part for part in reversed(loc) if isinstance(part, str) and part != "[key]"), "")
    if loc[:1] == ("scenarios",) and is_key and len(loc) == 3:
        return PATTERN_MESSAGES[SCENARIO_NAME_PATTERN]
    message = _MESSAGES.get(kind)
    if message is None:
        if kind == "string_pattern_mismatch":
            message = PATTERN_MESSAGES.get(str(ctx.get("pattern")), "has an invalid format")
        elif kind == "string_too_short":
            minimum = ctx.get("min_length")
            message = "must not be empty" if minimum == 1 else f"must be at least {minimum} characters"
        elif kind == "string_too_long":
            message = f"must be at most {ctx.get('max_length')} characters"
        elif kind == "too_long":
            message = f"at most {ctx.get('max_length')} {_LIST_NOUNS.get(name, 'items')}"
        elif kind == "too_short":
            message = f"must have at least {ctx.get('min_length')} items"
        elif kind == "literal_error":
            message = f"must be one of {ctx.get('expected')}"
        elif kind in _BOUND_WORDS:
            bound = next(iter(ctx.values()), None)
            if isinstance(bound, Decimal) and abs(bound) == DECIMAL_MAGNITUDE_LIMIT:
                message = DECIMAL_MESSAGE
            else:
                message = f"must be {_BOUND_WORDS[kind]} {bound}"
        else:
            message = str(item.get("msg", "is invalid"))[:200]
    return f"key {message}" if is_key else message
