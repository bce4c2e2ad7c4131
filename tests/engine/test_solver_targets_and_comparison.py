"""SOLVER target generation around the QP (spec 3.6) and the method comparison (spec 3.8)."""

from __future__ import annotations

import pytest

from rebalance.engine import solver
from tests.factories.engine import build, run, shelf_entry, targets, trades


def _weights(wire: dict) -> dict[str, str]:
    return {iid: t["final_weight"] for iid, t in targets(wire).items()}


def _tech_fin(model: dict[str, str]) -> dict:
    sectors = {"A": "TECH", "B": "TECH", "C": "FIN"}
    return build(
        prices=dict.fromkeys(model, "10"),
        model=model,
        shelf={iid: shelf_entry(iid, attributes={"sector": sectors[iid]}) for iid in model},
    )


def test_solver_projects_model_weights_onto_the_group_limit() -> None:
    result, wire = run(_tech_fin({"A": "0.4", "B": "0.2", "C": "0.4"}), target_method="SOLVER",
                       group_constraints={"sector:TECH": "0.3"})
    assert _weights(wire) == {"A": "0.2500", "B": "0.0500", "C": "0.4000"}
    assert result.status == "READY"


def test_comparison_reports_weight_divergence_between_methods() -> None:
    result, wire = run(
        _tech_fin({"A": "0.4", "B": "0.2", "C": "0.4"}),
        group_constraints={"sector:TECH": "0.3"},
        compare_target_methods=True,
    )
    assert wire["explanation"] == {
        "summary": "READY",
        "target_method_comparison": {
            "primary_method": "HEURISTIC",
            "primary_status": "READY",
            "alternate_method": "SOLVER",
            "alternate_status": "READY",
            "tolerance": "0.0001",
            "differing_instruments": ["A", "B", "C"],
            "alternate_warnings": [],
        },
    }
    assert wire["diagnostics"]["warnings"] == ["CAPPED_BY_GROUP_LIMIT_sector:TECH", "TARGET_METHOD_WEIGHT_DIVERGENCE"]


def test_comparison_with_a_blocked_heuristic_alternate_reports_both_divergences() -> None:
    _, wire = run(
        _tech_fin({"A": "0.3", "B": "0.3"}),
        target_method="SOLVER",
        group_constraints={"sector:TECH": "0.4"},
        compare_target_methods=True,
    )
    comparison = wire["explanation"]["target_method_comparison"]
    assert comparison["alternate_status"] == "BLOCKED"
    assert comparison["differing_instruments"] == ["A", "B"]
    assert comparison["alternate_warnings"] == ["CAPPED_BY_GROUP_LIMIT_sector:TECH", "NO_ELIGIBLE_REDISTRIBUTION_DESTINATION"]
    assert wire["diagnostics"]["warnings"] == ["TARGET_METHOD_STATUS_DIVERGENCE", "TARGET_METHOD_WEIGHT_DIVERGENCE"]
    assert _weights(wire) == {"A": "0.2000", "B": "0.2000"}


def test_comparison_payload_is_dropped_on_early_block_but_its_warnings_stay() -> None:
    inputs = _tech_fin({"A": "0.4", "B": "0.2", "C": "0.4"})
    inputs.portfolio.positions.append(build(positions={"NOPX": "1"}).portfolio.positions[0])
    inputs.shelf.append(shelf_entry("NOPX"))
    result, wire = run(inputs, group_constraints={"sector:TECH": "0.3"}, compare_target_methods=True)
    assert result.status == "BLOCKED"
    assert wire["explanation"] == {"summary": "Blocked"}
    assert "TARGET_METHOD_WEIGHT_DIVERGENCE" in wire["diagnostics"]["warnings"]


def test_solver_counts_locked_group_weight_as_fixed() -> None:
    inputs = build(
        cash={"USD": "700"},
        positions={"LOCKED": "30"},
        prices={"LOCKED": "10", "BUY": "10", "BOND": "10"},
        model={"BUY": "0.5", "BOND": "0.5"},
        shelf={
            "LOCKED": shelf_entry("LOCKED", "SUSPENDED", attributes={"sector": "TECH"}),
            "BUY": shelf_entry("BUY", attributes={"sector": "TECH"}),
            "BOND": shelf_entry("BOND", attributes={"sector": "FIN"}),
        },
    )
    result, wire = run(
        inputs, target_method="SOLVER", group_constraints={"sector:TECH": "0.4"},
        cash_band_min_weight="0", cash_band_max_weight="0",
    )
    assert _weights(wire) == {"BUY": "0.1000", "BOND": "0.6000", "LOCKED": "0.3"}
    assert trades(wire) == [("BUY", "BUY", "10"), ("BOND", "BUY", "60")]
    assert result.status == "READY"


def test_solver_objective_ignores_sell_only_redistribution() -> None:
    inputs = build(
        prices={"A": "10", "B": "10", "SO": "10"},
        model={"A": "0.6", "B": "0.2", "SO": "0.2"},
        shelf={"A": "APPROVED", "B": "APPROVED", "SO": "SELL_ONLY"},
    )
    result, wire = run(inputs, target_method="SOLVER")
    assert _weights(wire) == {"A": "0.6000", "B": "0.2000", "SO": "0.0"}
    assert result.status == "READY"


def test_infeasible_solver_run_blocks_with_hints() -> None:
    result, wire = run(
        build(prices={"A": "10"}, model={"A": "0.5"}),
        target_method="SOLVER", cash_band_min_weight="0.6", cash_band_max_weight="0.4",
    )
    assert result.status == "BLOCKED"
    assert wire["target"]["targets"] == []
    assert wire["diagnostics"]["warnings"] == ["INFEASIBLE_INFEASIBLE", "INFEASIBILITY_HINT_CASH_BAND_CONTRADICTION"]


def test_locked_group_weight_above_its_limit_is_hinted() -> None:
    inputs = build(
        cash={"USD": "700"},
        positions={"LOCKED": "30"},
        prices={"LOCKED": "10", "A": "10"},
        model={"A": "0.5"},
        shelf={
            "LOCKED": shelf_entry("LOCKED", "BANNED", attributes={"sector": "TECH"}),
            "A": shelf_entry("A", attributes={"sector": "FIN"}),
        },
    )
    result, wire = run(inputs, target_method="SOLVER", group_constraints={"sector:TECH": "0.2"})
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["warnings"] == [
        "INFEASIBLE_INFEASIBLE",
        "INFEASIBILITY_HINT_LOCKED_GROUP_WEIGHT_sector:TECH",
    ]


def test_unavailable_solver_library_reports_only_solver_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise solver.SolverUnavailable("no solver library")

    monkeypatch.setattr(solver, "solve_target_qp", unavailable)
    result, wire = run(
        _tech_fin({"A": "0.4", "C": "0.4"}), target_method="SOLVER", group_constraints={"colour:RED": "0.1"}
    )
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["warnings"] == ["SOLVER_ERROR"]
    assert wire["target"]["targets"] == []


@pytest.mark.parametrize(
    ("outcome", "warning"),
    [
        (("unbounded", None), "UNBOUNDED_UNBOUNDED"),
        (("user_limit", None), "SOLVER_NON_OPTIMAL_USER_LIMIT"),
        (("infeasible_inaccurate", None), "INFEASIBLE_INFEASIBLE_INACCURATE"),
        (RuntimeError("solver crashed"), "SOLVER_ERROR"),
    ],
)
def test_solver_failures_become_warnings(monkeypatch: pytest.MonkeyPatch, outcome: object, warning: str) -> None:
    def fake(*args: object, **kwargs: object) -> object:
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(solver, "solve_target_qp", fake)
    result, wire = run(build(prices={"A": "10"}, model={"A": "0.5"}), target_method="SOLVER")
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["warnings"] == [warning]


def test_solver_weights_are_floored_at_zero_and_quantized_half_even(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake(model_weights: list[float], **kwargs: object) -> tuple[str, list[float]]:
        seen.update(kwargs, model=model_weights)
        return "optimal_inaccurate", [0.12345, 0.00005, -1e-9]

    monkeypatch.setattr(solver, "solve_target_qp", fake)
    _, wire = run(
        build(prices={"A": "10", "B": "10", "C": "10"}, model={"A": "0.2", "B": "0.1", "C": "0.1"}),
        target_method="SOLVER", single_position_max_weight="0.3", cash_band_min_weight="0.05",
    )
    assert _weights(wire) == {"A": "0.1234", "B": "0.0000", "C": "0.0000"}
    assert seen == {"model": [0.2, 0.1, 0.1], "sum_lower": 0.0, "sum_upper": 0.95, "cap": 0.3, "groups": []}
