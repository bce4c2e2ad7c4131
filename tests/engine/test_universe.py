"""Universe construction and shelf statuses (spec 3.3)."""

from __future__ import annotations

from tests.factories.engine import build, run, targets, trades


def _excluded(wire: dict) -> list[tuple[str, str]]:
    return [(x["instrument_id"], x["reason_code"]) for x in wire["universe"]["excluded"]]


def test_statuses_of_unheld_model_targets() -> None:
    inputs = build(
        cash={"USD": "10000"},
        prices={"OK": "10", "SO": "10", "BAN": "10", "SUS": "10", "RES": "10"},
        model={"OK": "0.2", "SO": "0.1", "BAN": "0.1", "SUS": "0.1", "RES": "0.1"},
        shelf={"OK": "APPROVED", "SO": "SELL_ONLY", "BAN": "BANNED", "SUS": "SUSPENDED", "RES": "RESTRICTED"},
    )
    result, wire = run(inputs)
    universe = wire["universe"]
    assert universe["eligible_for_buy"] == ["OK"]
    assert universe["eligible_for_sell"] == ["OK", "SO"]
    assert _excluded(wire) == [
        ("SO", "SHELF_STATUS_SELL_ONLY"),
        ("BAN", "SHELF_STATUS_BANNED"),
        ("SUS", "SHELF_STATUS_SUSPENDED"),
        ("RES", "SHELF_STATUS_RESTRICTED"),
    ]
    assert all(x["details"] is None for x in universe["excluded"])
    assert universe["coverage"] == {"price_coverage_pct": "1", "fx_coverage_pct": "1"}
    # The SELL_ONLY weight (0.1) goes to the only buyable target.
    assert targets(wire)["OK"]["final_weight"] == "0.3"
    assert trades(wire) == [("OK", "BUY", "300")]


def test_allow_restricted_makes_restricted_targets_buyable() -> None:
    inputs = build(prices={"RES": "10"}, model={"RES": "0.5"}, shelf={"RES": "RESTRICTED"})
    _, blocked = run(inputs)
    assert trades(blocked) == []
    _, allowed = run(inputs, allow_restricted=True)
    assert allowed["universe"]["excluded"] == []
    assert trades(allowed) == [("RES", "BUY", "500")]


def test_held_banned_model_target_is_excluded_twice_and_locked_not_sold() -> None:
    inputs = build(
        cash={"USD": "500"}, positions={"BAN": "50"}, prices={"BAN": "10"}, model={"BAN": "0"}, shelf={"BAN": "BANNED"}
    )
    result, wire = run(inputs)
    assert _excluded(wire) == [("BAN", "SHELF_STATUS_BANNED"), ("BAN", "LOCKED_DUE_TO_BANNED")]
    assert trades(wire) == []
    assert result.status == "READY"
    assert targets(wire)["BAN"]["final_weight"] == "0.5"  # frozen at its current weight


def test_held_restricted_outside_model_stays_locked_even_with_allow_restricted() -> None:
    inputs = build(
        cash={"USD": "900"},
        positions={"RES": "10"},
        prices={"RES": "10", "NEW": "10"},
        model={"NEW": "0.5"},
        shelf={"RES": "RESTRICTED", "NEW": "APPROVED"},
    )
    _, wire = run(inputs, allow_restricted=True)
    assert _excluded(wire) == [("RES", "LOCKED_DUE_TO_RESTRICTED")]
    assert targets(wire)["RES"]["tags"] == ["LOCKED_POSITION"]
    assert trades(wire) == [("NEW", "BUY", "50")]


def test_holding_without_shelf_entry_is_locked_without_a_data_quality_entry() -> None:
    inputs = build(
        cash={"USD": "800"}, positions={"OFF": "20"}, prices={"OFF": "10", "NEW": "8"}, model={"NEW": "0.5"},
        shelf={"NEW": "APPROVED"},
    )
    result, wire = run(inputs)
    assert _excluded(wire) == [("OFF", "LOCKED_DUE_TO_MISSING_SHELF")]
    assert wire["diagnostics"]["data_quality"]["shelf_missing"] == []
    assert result.status == "READY"
    assert trades(wire) == [("NEW", "BUY", "62")]


def test_model_target_without_shelf_entry_always_blocks() -> None:
    inputs = build(prices={"GHOST": "10"}, model={"GHOST": "0.5"}, shelf={})
    result, wire = run(inputs, block_on_missing_prices=False, block_on_missing_fx=False)
    assert wire["diagnostics"]["data_quality"]["shelf_missing"] == ["GHOST"]
    assert result.status == "BLOCKED"


def test_held_approved_instrument_outside_the_model_is_sold_to_zero_and_zero_quantities_are_ignored() -> None:
    inputs = build(
        cash={"USD": "0"},
        positions={"OLD": "7", "EMPTY": "0", "KEEP": "10"},
        prices={"OLD": "10", "EMPTY": "10", "KEEP": "10"},
        model={"KEEP": "0.5"},
        shelf={"OLD": "SELL_ONLY", "EMPTY": "APPROVED", "KEEP": "APPROVED"},
    )
    _, wire = run(inputs)
    assert wire["universe"]["eligible_for_sell"] == ["KEEP", "OLD"]
    assert "EMPTY" not in targets(wire)
    assert targets(wire)["OLD"]["tags"] == ["IMPLICIT_SELL_TO_ZERO"]
    assert ("OLD", "SELL", "7") in trades(wire)
