"""The canonical form of a request and its fingerprint (rebalance/canonical.py)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

import pytest

from rebalance.canonical import request_canonical
from rebalance.options import OptionsInvalid, engine_options_parse
from rebalance.parsing import batch_request_parse
from tests.factories.bodies import lots_batch_body as body


def reparsed(data: Any) -> Any:
    return batch_request_parse(json.loads(request_canonical(batch_request_parse(data)).json, parse_float=Decimal))


def test_the_canonical_form_parses_back_to_the_same_request() -> None:
    batch = batch_request_parse(body())
    again = reparsed(body())

    assert again == batch
    assert request_canonical(again).json == request_canonical(batch).json
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", request_canonical(batch).fingerprint)


def test_the_canonical_form_is_compact_fully_defaulted_and_keeps_decimal_scale() -> None:
    text = request_canonical(batch_request_parse(body())).json
    document = json.loads(text)
    assert document["portfolio_snapshot"]["positions"][0] == {
        "instrument_id": "NESN",
        "quantity": "100.0",
        "market_value": None,
        "lots": [],
    }
    assert document["shelf_entries"][1] == {
        "instrument_id": "MSFT",
        "status": "SELL_ONLY",
        "asset_class": "UNKNOWN",
        "issuer_id": None,
        "liquidity_tier": None,
        "settlement_days": 1,
        "min_notional": {"amount": "500", "currency": "USD"},
        "attributes": {},
    }
    assert document["scenarios"] == {
        "baseline": {"description": None, "options": {}},
        "with-cap": {"description": "Staples capped",
                     "options": {"group_constraints": {"sector:STAPLES": {"max_weight": "0.2"}}}},
    }
    assert b" " not in text.replace(b"Staples capped", b"")


def test_a_field_added_to_a_shape_is_in_the_canonical_form_without_another_edit() -> None:
    # The canonical form is written from the shapes themselves: every declared field is there.
    from dataclasses import fields

    from rebalance.engine import models as em

    document = json.loads(request_canonical(batch_request_parse(body())).json)
    assert list(document["portfolio_snapshot"]) == [f.name for f in fields(em.PortfolioSnapshot)]
    assert list(document["shelf_entries"][0]) == [f.name for f in fields(em.ShelfEntry)]
    assert list(document["portfolio_snapshot"]["positions"][1]["lots"][0]) == [f.name for f in fields(em.TaxLot)]


def test_the_fingerprint_ignores_key_order_everywhere_whitespace_and_number_form() -> None:
    first = batch_request_parse(body())

    def reverse_keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: reverse_keys(value[key]) for key in reversed(list(value))}
        if isinstance(value, list):
            return [reverse_keys(item) for item in value]
        return value

    text = json.dumps(reverse_keys(body()), indent=4).replace('"96.10"', "96.10").replace('"0.65"', "0.65")
    second = batch_request_parse(json.loads(text, parse_float=Decimal))

    # Attributes and options come in the other order too: the same request for replay.
    assert list(second.shelf_entries[0].attributes) == ["region", "sector"]
    assert request_canonical(second).fingerprint == request_canonical(first).fingerprint


def test_the_fingerprint_changes_with_meaningful_differences() -> None:
    base = request_canonical(batch_request_parse(body())).fingerprint

    scale = body()
    scale["market_data_snapshot"]["prices"][0]["price"] = "96.1"  # same number, different scale
    attribute = body()
    attribute["shelf_entries"][0]["attributes"] = {"sector": "STAPLES", "region": "EU"}
    description = body()
    description["scenarios"]["baseline"] = {"description": "defaults"}

    fingerprints = {request_canonical(batch_request_parse(variant)).fingerprint for variant in (scale, attribute, description)}
    assert base not in fingerprints and len(fingerprints) == 3


def test_options_with_big_integers_and_numbers_survive_the_canonical_form() -> None:
    data = body()
    data["scenarios"]["baseline"] = {
        "options": {"settlement_horizon_days": 10**30, "fx_buffer_pct": Decimal("0.020")}
    }
    batch = batch_request_parse(data)
    again = reparsed(data)
    assert request_canonical(again).fingerprint == request_canonical(batch).fingerprint
    for parsed in (batch, again):
        with pytest.raises(OptionsInvalid) as raised:
            engine_options_parse(parsed.scenarios["baseline"].options)
        assert raised.value.message == "Input should be less than or equal to 10"


def test_option_and_attribute_order_survive_the_canonical_form() -> None:
    # Which option error is reported first depends on the order of the keys (as at the reference),
    # and allocation_by_attribute follows the attributes' order: a stored request keeps both.
    sent = body()
    sent["scenarios"]["baseline"] = {"options": {"max_overdraft_by_ccy": {"USD": "-1", " ": "5"}, "allow_restricted": True}}
    first = batch_request_parse(sent)
    again = reparsed(sent)
    assert list(again.scenarios["baseline"].options) == ["max_overdraft_by_ccy", "allow_restricted"]
    assert list(again.scenarios["baseline"].options["max_overdraft_by_ccy"]) == ["USD", " "]
    assert list(again.shelf_entries[0].attributes) == ["sector", "region"]
    with pytest.raises(OptionsInvalid) as original:
        engine_options_parse(first.scenarios["baseline"].options)
    with pytest.raises(OptionsInvalid) as replayed:
        engine_options_parse(again.scenarios["baseline"].options)
    assert original.value.message == replayed.value.message == (
        "Value error, max_overdraft_by_ccy values must be non-negative"
    )
