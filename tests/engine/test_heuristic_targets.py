"""Heuristic target generation: sell-only, groups, normalisation, cap, cash buffer, trace (3.4-3.7)."""

from __future__ import annotations

from tests.factories.engine import build, run, shelf_entry, targets, trades


def _weights(wire: dict) -> dict[str, str]:
    return {iid: t["final_weight"] for iid, t in targets(wire).items()}


def test_sell_only_weight_is_redistributed_pro_rata_to_buyable_targets() -> None:
    inputs = build(
        prices={"SO": "10", "A": "10", "B": "10"},
        model={"SO": "0.2", "A": "0.3", "B": "0.5"},
        shelf={"SO": "SELL_ONLY", "A": "APPROVED", "B": "APPROVED"},
    )
    result, wire = run(inputs)
    # A gets 0.3 + 0.2 x (0.3 / 0.8) = 0.3 + 0.2 x 0.375 = 0.3 + 0.0750 (the proportion is taken first).
    assert _weights(wire) == {"SO": "0.0", "A": "0.3750", "B": "0.6250"}
    assert {iid: t["tags"] for iid, t in targets(wire).items()} == {
        "SO": ["CAPPED_BY_MAX_WEIGHT"],
        "A": ["REDISTRIBUTED_RECIPIENT"],
        "B": ["REDISTRIBUTED_RECIPIENT"],
    }
    assert result.status == "READY"


def test_sell_only_weight_without_recipient_stays_cash_and_needs_review() -> None:
    inputs = build(
        cash={"USD": "1000"}, positions={"SO": "10"}, prices={"SO": "10"}, model={"SO": "0.5"}, shelf={"SO": "SELL_ONLY"}
    )
    result, wire = run(inputs)
    assert trades(wire) == [("SO", "SELL", "10")]
    assert result.status == "PENDING_REVIEW"


def _grouped(**extra: str) -> dict:
    return {
        "A": shelf_entry("A", attributes={"sector": "TECH"}),
        "B": shelf_entry("B", attributes={"sector": "TECH"}),
        "C": shelf_entry("C", attributes={"sector": "FIN"}),
    }


def test_group_cap_scales_members_and_hands_the_released_weight_to_other_buyables() -> None:
    inputs = build(prices={"A": "10", "B": "10", "C": "10"}, model={"A": "0.4", "B": "0.2", "C": "0.4"}, shelf=_grouped())
    result, wire = run(inputs, group_constraints={"sector:TECH": "0.3"})
    assert _weights(wire) == {"A": "0.20", "B": "0.10", "C": "0.7"}
    assert wire["diagnostics"]["warnings"] == ["CAPPED_BY_GROUP_LIMIT_sector:TECH"]
    assert wire["diagnostics"]["group_constraint_events"] == [
        {
            "constraint_key": "sector:TECH",
            "group_weight_before": "0.6",
            "max_weight": "0.3",
            "released_weight": "0.3",
            "recipients": {"C": "0.3"},
            "status": "CAPPED",
        }
    ]
    assert result.status == "READY"
    assert wire["after_simulated"]["allocation_by_attribute"]["sector"][0]["weight"] == "0.3000"


def test_group_recipients_get_the_released_weight_times_their_proportion() -> None:
    shelf = {
        "A": shelf_entry("A", attributes={"sector": "TECH"}),
        "OLD": shelf_entry("OLD", attributes={"sector": "TECH"}),
        "B": shelf_entry("B", attributes={"sector": "FIN"}),
        "C": shelf_entry("C", attributes={"sector": "FIN"}),
    }
    inputs = build(
        cash={"USD": "1000"},
        positions={"OLD": "10"},
        prices={"A": "10", "B": "10", "C": "10", "OLD": "10"},
        model={"A": "0.5", "B": "0.1", "C": "0.2"},
        shelf=shelf,
    )
    _, wire = run(inputs, group_constraints={"sector:TECH": "0.3"})
    event = wire["diagnostics"]["group_constraint_events"][0]
    # B: 0.2 x (0.1 / 0.3); (0.2 x 0.1) / 0.3 would print ...667.
    assert event["recipients"] == {"B": "0.06666666666666666666666666666", "C": "0.1333333333333333333333333333"}
    # The held member outside the model is 0.0 in E, so scaling it by 0.3 / 0.5 keeps two places.
    assert _weights(wire) == {
        "A": "0.30",
        "B": "0.1666666666666666666666666667",
        "C": "0.3333333333333333333333333333",
        "OLD": "0.00",
    }


def test_group_within_tolerance_and_unknown_attribute_are_left_alone() -> None:
    inputs = build(prices={"A": "10", "B": "10", "C": "10"}, model={"A": "0.2", "B": "0.10005", "C": "0.4"}, shelf=_grouped())
    _, wire = run(inputs, group_constraints={"sector:TECH": "0.3", "colour:RED": "0.1"})
    assert wire["diagnostics"]["warnings"] == ["UNKNOWN_CONSTRAINT_ATTRIBUTE_colour"]
    assert wire["diagnostics"]["group_constraint_events"] == []
    assert _weights(wire)["B"] == "0.10005"


def test_group_without_recipient_blocks_with_an_empty_trace() -> None:
    inputs = build(prices={"A": "10", "B": "10"}, model={"A": "0.3", "B": "0.3"}, shelf=_grouped())
    result, wire = run(inputs, group_constraints={"sector:TECH": "0.4"})
    assert result.status == "BLOCKED"
    assert wire["target"]["targets"] == []
    assert wire["diagnostics"]["warnings"] == [
        "CAPPED_BY_GROUP_LIMIT_sector:TECH",
        "NO_ELIGIBLE_REDISTRIBUTION_DESTINATION",
    ]
    assert wire["diagnostics"]["group_constraint_events"][0]["status"] == "BLOCKED"
    assert wire["diagnostics"]["group_constraint_events"][0]["recipients"] == {}


def test_weights_above_one_are_normalised_and_need_review() -> None:
    inputs = build(prices={"A": "10", "B": "10"}, model={"A": "0.7", "B": "0.5"})
    result, wire = run(inputs)
    assert _weights(wire) == {"A": "0.5833333333333333333333333333", "B": "0.4166666666666666666666666666"}
    assert result.status == "PENDING_REVIEW"

    just_over = build(prices={"A": "10", "B": "10"}, model={"A": "0.50005", "B": "0.5"})
    result, wire = run(just_over)
    assert _weights(wire) == {"A": "0.50005", "B": "0.5"}
    assert result.status == "READY"


def test_single_position_cap_redistributes_front_loaded() -> None:
    inputs = build(prices={"A": "10", "B": "10", "C": "10"}, model={"A": "0.7", "B": "0.2", "C": "0.1"})
    result, wire = run(inputs, single_position_max_weight="0.4")
    # B's share 0.3 x (0.2 / 0.3) rounds to 0.2000000000000000000000000000, equal to its room 0.2:
    # min(share, room) keeps the share, hence the 28-digit text.
    assert _weights(wire) == {"A": "0.4", "B": "0.4000000000000000000000000000", "C": "0.1333333333333333333333333333"}
    # 0.0667 of the excess is left over (the share is taken of the remaining excess).
    assert result.status == "PENDING_REVIEW"
    assert trades(wire) == [("A", "BUY", "400"), ("B", "BUY", "400"), ("C", "BUY", "133")]


def test_cap_share_is_the_candidates_proportion_times_the_remaining_excess() -> None:
    inputs = build(prices={"A": "10", "B": "10", "C": "10"}, model={"A": "0.42", "B": "0.01", "C": "0.08"})
    result, wire = run(inputs, single_position_max_weight="0.4")
    # C receives rem x (0.08 / 0.09) with rem = 0.02 - B's share; (rem x 0.08) / 0.09 would end in ...913.
    assert _weights(wire) == {
        "A": "0.4",
        "B": "0.01222222222222222222222222222",
        "C": "0.09580246913580246913580246914",
    }
    assert result.status == "PENDING_REVIEW"  # 0.00197... of the excess is left over


def test_single_position_cap_without_candidate_needs_review() -> None:
    result, wire = run(build(prices={"A": "20"}, model={"A": "1.0"}), single_position_max_weight="0.25")
    assert _weights(wire) == {"A": "0.25"}
    assert trades(wire) == [("A", "BUY", "125")]
    assert result.status == "PENDING_REVIEW"


def test_cap_fully_redistributed_stays_ready() -> None:
    result, wire = run(build(prices={"A": "10", "B": "10"}, model={"A": "0.55", "B": "0.35"}), single_position_max_weight="0.5")
    assert _weights(wire) == {"A": "0.5", "B": "0.40"}
    assert result.status == "READY"


def test_min_cash_buffer_scales_buyable_weights() -> None:
    result, wire = run(build(prices={"A": "10", "B": "10"}, model={"A": "0.6", "B": "0.4"}), min_cash_buffer_pct="0.05")
    assert _weights(wire) == {"A": "0.570", "B": "0.380"}
    assert result.status == "PENDING_REVIEW"


def test_trace_lists_model_targets_then_implicit_sells_and_locked_holdings() -> None:
    inputs = build(
        cash={"USD": "600.00"},
        positions={"OLD": "10", "LOCK": "10"},
        prices={"X": "10", "A": "10", "OLD": "20", "LOCK": "20"},
        model={"X": "0.1", "A": "0.5"},
        shelf={"X": "BANNED", "A": "APPROVED", "OLD": "APPROVED", "LOCK": "SUSPENDED"},
    )
    _, wire = run(inputs)
    trace = wire["target"]["targets"]
    assert [(t["instrument_id"], t["model_weight"], t["final_weight"], t["tags"]) for t in trace] == [
        ("X", "0.1", "0.0", ["CAPPED_BY_MAX_WEIGHT"]),
        ("A", "0.5", "0.5", []),
        ("OLD", "0.0", "0.0", ["IMPLICIT_SELL_TO_ZERO"]),
        ("LOCK", "0.0", "0.2", ["LOCKED_POSITION"]),
    ]
    assert trace[1]["final_value"] == {"amount": "500.000", "currency": "USD"}
    assert wire["target"]["strategy"] == {}
    assert wire["target"]["target_id"] == "t_" + wire["rebalance_run_id"]
