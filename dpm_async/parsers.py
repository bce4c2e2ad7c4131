"""JSON request parsing that never passes a number through a float.

JSON numbers with a fraction or exponent become `Decimal`, integers stay `int` (the standard
library refuses integers of more than 4300 digits, which we report as a bad body). NaN and
Infinity literals, invalid UTF-8, pathological nesting (the C scanner's recursion guard raises
RecursionError, which we report) and bodies over DPM_MAX_REQUEST_BYTES are refused with a
problem, never a 500. The free-form parts of a body (scenario options) are depth-checked where
they are validated.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from rest_framework.parsers import BaseParser

from dpm_async.problems import MalformedJson, RequestTooLarge

_MAX_NUMBER_TEXT = 64  # longer numeric literals are refused before any conversion


def _parse_float(text: str) -> Decimal:
    if len(text) > _MAX_NUMBER_TEXT:
        raise ValueError(f"number literal longer than {_MAX_NUMBER_TEXT} characters")
    return Decimal(text)


def _parse_int(text: str) -> int:
    if len(text) > _MAX_NUMBER_TEXT:
        raise ValueError(f"number literal longer than {_MAX_NUMBER_TEXT} characters")
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def json_decode_body(raw: bytes) -> Any:
    """Decodes a request body; raises MalformedJson with a human message on any defect."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedJson(f"the body is not valid UTF-8 (byte {error.start})") from None
    if not text.strip():
        raise MalformedJson("the body is empty")
    try:
        return json.loads(text, parse_float=_parse_float, parse_int=_parse_int, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise MalformedJson(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:
        raise MalformedJson(str(error) or "invalid JSON") from None


class DecimalJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = settings.DPM_MAX_REQUEST_BYTES
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(f"The request body exceeds the limit of {limit} bytes.")
        return json_decode_body(raw)
