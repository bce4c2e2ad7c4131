"""A shape is declared once and everything else is derived from it (docs/architecture.md, "Shapes").

These tests declare shapes of their own, so they show that validation, the checks across rows, the
canonical form and the OpenAPI document follow a declaration with no other edit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Literal, TypedDict

import pytest
from pydantic import ValidationError
from pydantic_core import SchemaValidator

from dpm_async.openapi import Components
from dpm_async.shapes import Meta
from rebalance.canonical import _converter
from rebalance.messages import Errors
from rebalance.row_checks import rows_check
from rebalance.schemas import validation_schema

type Colour = Literal["RED", "GREEN"]


@dataclass(slots=True)
class Leg:
    """One leg."""

    leg_id: Annotated[str, Meta(min_length=1, max_length=8)]
    amount: Decimal
    fee: Decimal | None = None


@dataclass(slots=True)
class Order:
    """An order with legs."""

    order_id: str
    colour: Colour
    legs: Annotated[list[Leg], Meta(max_length=3, unique="leg_id")] = field(default_factory=list)
    tags: Annotated[dict[str, str], Meta(description="Free tags.")] = field(default_factory=dict)


class OrderAnswer(TypedDict):
    """What an order answers."""

    order_id: str
    total: Annotated[str, Meta(pattern=r"^[0-9.]+$")]
    note: str | None


def test_validation_follows_the_declaration():
    validator = SchemaValidator(validation_schema(Order))
    order = validator.validate_python(
        {"order_id": "o1", "colour": "RED", "legs": [{"leg_id": "a", "amount": "1.50"}], "ignored": 1}
    )
    assert order == Order("o1", "RED", [Leg("a", Decimal("1.50"))])
    with pytest.raises(ValidationError) as raised:
        validator.validate_python({"order_id": 5, "colour": "BLUE", "legs": [{"leg_id": "", "amount": "x"}] * 4})
    assert {tuple(error["loc"]) for error in raised.value.errors()} == {
        ("order_id",), ("colour",), ("legs",)
    }


def test_checks_across_rows_follow_the_declaration():
    errors = Errors()
    order = Order("o1", "RED", [Leg("a", Decimal("1")), Leg("a", Decimal("1E-99")), Leg("b", Decimal(2), Decimal("1" * 45))])
    rows_check(order, Order, Meta(), "order", errors)
    assert errors.items == [
        {"field": "order.legs[1].leg_id", "message": "duplicate leg_id, first given at order.legs[0]"},
        {"field": "order.legs[1].amount", "message": errors.items[1]["message"]},
        {"field": "order.legs[2].fee", "message": errors.items[1]["message"]},
    ]
    assert "at most 40 digits" in errors.items[1]["message"]
    clean = Errors()
    rows_check(Order("o2", "GREEN", [Leg("a", Decimal("1"))]), Order, Meta(), "order", clean)
    assert clean.count == 0


def test_the_canonical_form_follows_the_declaration():
    convert = _converter(Order)
    assert convert is not None
    document = convert(Order("o1", "RED", [Leg("a", Decimal("1.50"))], {"z": "1", "a": "2"}))
    assert json.dumps(document) == (
        '{"order_id": "o1", "colour": "RED", "legs": [{"leg_id": "a", "amount": "1.50", "fee": null}], '
        '"tags": {"z": "1", "a": "2"}}'
    )


def test_the_openapi_document_follows_the_declaration():
    components = Components()
    order = components.object_schema(Order)
    assert order["description"] == "An order with legs."
    assert order["required"] == ["order_id", "colour"]
    assert order["properties"]["colour"] == {"$ref": "#/components/schemas/Colour"}
    assert order["properties"]["legs"] == {
        "type": "array", "items": {"$ref": "#/components/schemas/Leg"}, "maxItems": 3
    }
    assert order["properties"]["tags"]["description"] == "Free tags."
    leg = components.schemas["Leg"][1]
    assert leg["properties"]["leg_id"] == {"type": "string", "minLength": 1, "maxLength": 8}
    assert leg["properties"]["fee"]["nullable"] is True and "anyOf" in leg["properties"]["fee"]
    assert components.schemas["Colour"][1] == {"type": "string", "enum": ["RED", "GREEN"]}
    answer = Components().object_schema(OrderAnswer)
    assert answer["properties"]["total"] == {"type": "string", "pattern": r"^[0-9.]+$"}
    assert answer["properties"]["note"] == {"type": "string", "nullable": True}
    assert answer["required"] == ["order_id", "total", "note"]
