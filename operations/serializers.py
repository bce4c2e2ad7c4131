"""The list's query parameters (`GET /rebalance/operations`) and its opaque cursor."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from rest_framework import serializers

from dpm_async.correlation import CORRELATION_ID_PATTERN
from dpm_async.problems import FieldError, RequestInvalid
from operations.models import OPERATION_ID_PATTERN, OperationStatus, OperationType
from operations.resource import instant_text
from operations.selectors import OperationFilters

LIST_LIMIT_DEFAULT = 50
LIST_LIMIT_MAX = 200


# --- the list's cursor -----------------------------------------------------------------------

def cursor_encode(key: tuple[datetime, str]) -> str:
    """Opaque to clients: base64url (unpadded) of `["<created_at>", "<operation_id>"]`."""
    created_at, operation_id = key
    raw = orjson.dumps([instant_text(created_at), operation_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def cursor_decode(cursor: str) -> tuple[datetime, str]:
    """The (created_at, id) a cursor stands for; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_text, operation_id = orjson.loads(raw)
        created_at = datetime.strptime(created_text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise ValueError("not a cursor returned by this endpoint") from None
    if not isinstance(operation_id, str) or not OPERATION_ID_PATTERN.fullmatch(operation_id):
        raise ValueError("not a cursor returned by this endpoint")
    return created_at, operation_id


# --- the list's query parameters -------------------------------------------------------------

# A `+` in an unencoded query string arrives as a space: "12:00:00 02:00" meant "12:00:00+02:00".
_SPACE_FOR_PLUS_OFFSET = re.compile(r"^(.*\d) (\d{2}(?::?\d{2})?)$")


class InstantField(serializers.DateTimeField):
    """An ISO 8601 instant; an offset is honoured, a value without one is taken as UTC."""

    # The longest instant worth reading (`2026-02-20T12:00:00.123456789+02:00` is 35); Python reads
    # ISO 8601's basic format too, which would otherwise take 1000 digits for an instant.
    MAX_LENGTH = 64

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            if len(value) > self.MAX_LENGTH:
                self.fail("invalid", format="YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]")
            value = _SPACE_FOR_PLUS_OFFSET.sub(r"\1+\2", value.strip())
        return super().to_internal_value(value)


class OperationListQuerySerializer(serializers.Serializer[dict[str, Any]]):
    """`GET /rebalance/operations` query parameters; anything else is refused (400)."""

    status = serializers.ChoiceField(choices=OperationStatus.values, required=False,
                                     help_text="Only operations in this status.")
    operation_type = serializers.ChoiceField(choices=OperationType.values, required=False,
                                             help_text="Only operations of this type.")
    correlation_id = serializers.RegexField(rf"^{CORRELATION_ID_PATTERN.pattern}\Z", required=False,
                                            help_text="Only the operation with this correlation id.")
    created_from = InstantField(required=False, help_text="Created at or after this instant (ISO 8601).")
    created_to = InstantField(required=False, help_text="Created at or before this instant (ISO 8601).")
    limit = serializers.IntegerField(min_value=1, max_value=LIST_LIMIT_MAX, default=LIST_LIMIT_DEFAULT,
                                     help_text=f"Page size, 1 to {LIST_LIMIT_MAX}.")
    cursor = serializers.CharField(required=False, max_length=512,
                                   help_text="`next_cursor` of the previous page; opaque.")

    def validate_cursor(self, value: str) -> tuple[datetime, str]:
        try:
            return cursor_decode(value)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        created_from, created_to = attrs.get("created_from"), attrs.get("created_to")
        if created_from and created_to and created_from > created_to:
            raise serializers.ValidationError({"created_to": "must not be before created_from"})
        return attrs


@dataclass(frozen=True)
class OperationListQuery:
    filters: OperationFilters
    limit: int
    after: tuple[datetime, str] | None


def operation_list_query_parse(params: Any) -> OperationListQuery:
    """Validates the list's query parameters (a QueryDict); RequestInvalid (400) lists every fault.

    An unknown parameter is an error rather than silently ignored, and so is a repeated one.
    """
    errors: list[FieldError] = []
    known = OperationListQuerySerializer().fields
    for name in params:
        if name not in known:
            errors.append({"field": name, "message": "unknown query parameter"})
        elif len(params.getlist(name)) > 1:
            errors.append({"field": name, "message": "give this parameter once"})
    data = {name: params.get(name) for name in params if name in known}
    serializer = OperationListQuerySerializer(data=data)
    if not serializer.is_valid():
        for field, messages in serializer.errors.items():
            for message in messages if isinstance(messages, list) else [messages]:
                errors.append({"field": "" if field == "non_field_errors" else field, "message": str(message)})
    if errors:
        raise RequestInvalid(errors, "The query parameters are invalid.")
    values = serializer.validated_data
    return OperationListQuery(
        filters=OperationFilters(
            status=values.get("status"),
            operation_type=values.get("operation_type"),
            correlation_id=values.get("correlation_id"),
            created_from=values.get("created_from"),
            created_to=values.get("created_to"),
        ),
        limit=values["limit"],
        after=values.get("cursor"),
    )
