"""The SOLVER target method's quadratic program (rebalance/engine/solver.py, spec 3.6).

Closed-form projections, infeasibility classification, degenerate inputs, a 3000-variable problem
checked through its KKT conditions, and comparisons with independent methods (bisection on the
Lagrange multiplier of the capped simplex, scipy's SLSQP). Plain pytest; no Django.
"""

from __future__ import annotations

import importlib.util
import random
import subprocess
import sys
import time
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize, nnls

from rebalance.engine import solver as S
from rebalance.engine.solver import SolverUnavailable, solve_target_qp

SOLVER_FILE = Path(S.__file__)


def qp(m, lo=0.0, hi=1.0, cap=None, groups=()):
    return solve_target_qp(m, sum_lower=lo, sum_upper=hi, cap=cap, groups=list(groups))


def assert_weights(result, expected, tol=1e-12):
    status, w = result
    assert status == "optimal", result
    assert w is not None and len(w) == len(expected)
    for got, want in zip(w, expected, strict=True):
        assert abs(got - float(want)) <= tol, (w, expected)


def quantize(x: float) -> Decimal:
    """What the engine does with each weight."""
    return max(Decimal(str(x)), Decimal(0)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)


# ------------------------------------------------------------------------- independent references


def kkt_residual(m, w, lo, hi, cap, groups, tol=1e-9):
    """Feasibility asserted; returns the residual of m - w = sum lambda_j a_j over the active
    constraints with lambda >= 0 (NNLS), which is 0 exactly at the optimum. Small problems."""
    m = np.asarray(m, dtype=float)
    w = np.asarray(w, dtype=float)
    n = len(m)
    sets = [sorted(set(idx)) for idx, _ in groups]
    assert np.all(w >= -tol)
    assert lo - tol <= w.sum() <= hi + tol
    if cap is not None:
        assert np.all(w <= cap + tol)
    for idx, (_, lim) in zip(sets, groups, strict=True):
        assert w[idx].sum() <= lim + tol
    columns = []
    for i in range(n):
        if w[i] <= tol:
            columns.append(-np.eye(n)[i])
        if cap is not None and w[i] >= cap - tol:
            columns.append(np.eye(n)[i])
    if abs(w.sum() - hi) <= tol:
        columns.append(np.ones(n))
    if abs(w.sum() - lo) <= tol:
        columns.append(-np.ones(n))
    for idx, (_, lim) in zip(sets, groups, strict=True):
        if abs(w[idx].sum() - lim) <= tol:
            a = np.zeros(n)
            a[idx] = 1.0
            columns.append(a)
    r = m - w
    if not columns:
        return float(np.abs(r).max(initial=0.0))
    return float(nnls(np.array(columns).T, r)[1])


def capped_simplex_bisection(m, lo, hi, cap):
    """Exact projection without groups: w = clip(m - lam, 0, cap) with lam found by bisection."""
    m = np.asarray(m, dtype=float)
    upper = np.inf if cap is None else cap

    def total(lam):
        return float(np.clip(m - lam, 0.0, upper).sum())

    s0 = total(0.0)
    if lo <= s0 <= hi:
        return np.clip(m, 0.0, upper)
    target = hi if s0 > hi else lo
    a, b = (0.0, float(m.max())) if s0 > hi else (-lo - float(np.abs(m).max()) - 1.0, 0.0)
    for _ in range(200):  # total() is non-increasing in lam
        mid = (a + b) / 2
        if total(mid) > target:
            a = mid
        else:
            b = mid
    return np.clip(m - (a + b) / 2, 0.0, upper)


def slsqp(m, lo, hi, cap, groups):
    m = np.asarray(m, dtype=float)
    cons = [{"type": "ineq", "fun": lambda w: hi - w.sum()}, {"type": "ineq", "fun": lambda w: w.sum() - lo}]
    for idx, lim in groups:
        sel = sorted(set(idx))
        cons.append({"type": "ineq", "fun": lambda w, sel=sel, lim=lim: lim - w[sel].sum()})
    bounds = [(0.0, cap)] * len(m)
    start = np.clip(m, 0.0, np.inf if cap is None else cap)
    res = minimize(lambda w: float(((w - m) ** 2).sum()), start, jac=lambda w: 2 * (w - m),
                   method="SLSQP", bounds=bounds, constraints=cons,
                   options={"ftol": 1e-15, "maxiter": 1000})
    return res


# ---------------------------------------------------------------------------- closed-form answers


def test_no_binding_constraint_returns_model_weights():
    # the feasible solver golden at QP level: 0.6 / 0.4, cap 0.7, invested band [0, 1]
    status, w = qp([0.6, 0.4], lo=0.0, hi=1.0, cap=0.7)
    assert status == "optimal"
    assert w == [0.6, 0.4]
    assert [quantize(x) for x in w] == [Decimal("0.6000"), Decimal("0.4000")]


def test_sum_cap_binding_shifts_all_weights_equally():
    assert_weights(qp([0.5, 0.3, 0.4], hi=0.9), [Fraction(4, 10), Fraction(2, 10), Fraction(3, 10)])


def test_sum_floor_binding_shifts_all_weights_up():
    assert_weights(qp([0.2, 0.3], lo=0.7, hi=0.8), [Fraction(3, 10), Fraction(4, 10)])


def test_shift_stops_at_zero_for_small_weights():
    # excess 0.3 over [0.5, 0.4, 0.05]: 0.05 hits 0, the other two share the rest (0.125 each)
    assert_weights(qp([0.5, 0.4, 0.05], hi=0.65), [Fraction(3, 8), Fraction(11, 40), 0])


def test_single_cap_binding_redistributes_to_the_others():
    # 0.5 capped at 0.4, the released 0.1 shared equally by the other two
    assert_weights(qp([0.5, 0.3, 0.2], lo=1.0, hi=1.0, cap=0.4),
                   [Fraction(4, 10), Fraction(35, 100), Fraction(25, 100)])


def test_cap_redistribution_cascades():
    # the first share would push the second name over the cap as well
    assert_weights(qp([0.6, 0.35, 0.05], lo=1.0, hi=1.0, cap=0.4),
                   [Fraction(4, 10), Fraction(4, 10), Fraction(2, 10)])


def test_group_constraint_binding():
    # {0,1} <= 0.4 with a fully invested band: the group gives up 0.2, which goes to name 2
    assert_weights(qp([0.3, 0.3, 0.4], lo=1.0, hi=1.0, groups=[([0, 1], 0.4)]),
                   [Fraction(2, 10), Fraction(2, 10), Fraction(6, 10)])


def test_overlapping_groups():
    # {0,1} <= 0.4 and {1,2} <= 0.4 over equal weights: mu = 1/30 on each group
    assert_weights(qp([0.25] * 4, groups=[([0, 1], 0.4), ([1, 2], 0.4)]),
                   [Fraction(13, 60), Fraction(11, 60), Fraction(13, 60), Fraction(1, 4)])


def test_overlapping_groups_with_full_investment_and_cap():
    # unique feasible point: w0 = cap, w1 + w2 = 0.5, w0 + w1 <= 0.5
    assert_weights(qp([0.5, 0.3, 0.2], lo=0.9, hi=0.9, cap=0.4, groups=[([0, 1], 0.5), ([1, 2], 0.5)]),
                   [Fraction(4, 10), Fraction(1, 10), Fraction(4, 10)])


def test_weights_on_bounds_are_exact():
    # the first name sits exactly on the cap, the last exactly on 0; the others share the rest
    status, w = qp([0.9, 0.06, 0.04, -0.5], lo=1.0, hi=1.0, cap=0.35)
    assert status == "optimal"
    assert w[0] == 0.35 and w[3] == 0.0
    assert_weights((status, w), [Fraction(35, 100), Fraction(335, 1000), Fraction(315, 1000), 0])


@pytest.mark.parametrize(
    ("m", "kwargs", "expected"),
    [
        ([0.1, 0.2, 0.3, 0.4], {"hi": 0.7}, [Fraction(1, 40), Fraction(1, 8), Fraction(9, 40), Fraction(13, 40)]),
        ([1 / 3, 1 / 3, 1 / 3], {"cap": 0.3, "lo": 0.0, "hi": 1.0}, [Fraction(3, 10)] * 3),
        ([0.5, 0.5], {"lo": 1.0, "hi": 1.0, "groups": [([0], 0.2)]}, [Fraction(1, 5), Fraction(4, 5)]),
        ([0.7, 0.2, 0.1], {"lo": 0.95, "hi": 0.97, "cap": 0.45},
         [Fraction(45, 100), Fraction(3, 10), Fraction(2, 10)]),
        ([0.2, 0.2, 0.2, 0.2, 0.2], {"lo": 1.0, "hi": 1.0, "groups": [([0, 1, 2], 0.5), ([2, 3], 0.3)]},
         None),
    ],
)
def test_precision_on_exact_rational_answers(m, kwargs, expected):
    status, w = qp(m, **kwargs)
    assert status == "optimal"
    if expected is None:  # two binding overlapping groups plus the sum: checked through KKT
        assert kkt_residual(m, w, kwargs["lo"], kwargs["hi"], None, kwargs["groups"]) <= 1e-10
        return
    for got, want in zip(w, expected, strict=True):
        assert abs(Fraction(got) - want) <= Fraction(1, 10**8)
        assert abs(got - float(want)) <= 1e-12


def test_exact_decimal_ties_come_out_as_that_decimal():
    # the exact answer is 0.12345 each; the engine's HALF_EVEN then gives 0.1234 for both
    status, w = qp([0.12355, 0.12355], hi=0.2469)
    assert status == "optimal"
    assert [str(x) for x in w] == ["0.12345", "0.12345"]
    assert [quantize(x) for x in w] == [Decimal("0.1234")] * 2


# ------------------------------------------------------------------------------------ infeasible


def test_infeasible_by_cap_capacity():
    # the infeasible solver golden at QP level: one name, cap 0.4, invested exactly 0.5, group 0.3
    assert qp([1.0], lo=0.5, hi=0.5, cap=0.4, groups=[([0], 0.3)]) == ("infeasible", None)
    assert qp([0.3, 0.3, 0.4], lo=0.95, hi=1.0, cap=0.3) == ("infeasible", None)


def test_infeasible_by_contradictory_sum_band():
    assert qp([0.5, 0.5], lo=0.6, hi=0.5) == ("infeasible", None)
    assert qp([0.5, 0.5], lo=0.0, hi=-0.1) == ("infeasible", None)


def test_infeasible_group_limit_below_zero():
    assert qp([0.5, 0.5], groups=[([0], -0.1)]) == ("infeasible", None)
    # a group without tradeable members whose locked weight exceeds the limit
    assert qp([0.5, 0.5], groups=[([], -0.05)]) == ("infeasible", None)


def test_infeasible_negative_cap():
    assert qp([0.5, 0.5], cap=-0.1) == ("infeasible", None)


def test_infeasible_only_visible_to_the_solver():
    # two groups covering everything hold at most 0.8 but 0.9 must be invested
    result = qp([0.4, 0.1, 0.3, 0.2], lo=0.9, hi=1.0, groups=[([0, 1], 0.4), ([2, 3], 0.4)])
    assert result == ("infeasible", None)


@pytest.mark.parametrize("gap", [1e-6, 1e-5, 1e-3])
def test_barely_infeasible_is_still_classified_infeasible(gap):
    result = qp([0.4, 0.1, 0.3, 0.2], lo=1.0, hi=1.0, groups=[([0, 1], 0.5), ([2, 3], 0.5 - gap)])
    assert result == ("infeasible", None)


def test_barely_feasible_problems_are_solved():
    # exactly on the boundary: the feasible set is a single point / a face
    assert_weights(qp([0.4, 0.1, 0.3, 0.2], lo=1.0, hi=1.0, groups=[([0, 1], 0.5), ([2, 3], 0.5)]),
                   [0.4, 0.1, 0.3, 0.2])
    assert_weights(qp([0.25] * 4, lo=1.0, hi=1.0, cap=0.25), [0.25] * 4)
    # 0.3 * 3 < 0.9 in binary floating point, but the decimal problem is feasible
    assert_weights(qp([0.3, 0.3, 0.4], lo=0.9, hi=0.9, cap=0.3), [0.3, 0.3, 0.3])
    assert_weights(qp([0.1] * 10, lo=1.0, hi=1.0, cap=0.1), [0.1] * 10)


# ----------------------------------------------------------------------------- degenerate input


def test_zero_variables():
    assert qp([]) == ("optimal", [])
    assert qp([], lo=0.0, hi=0.0, cap=0.1, groups=[([], 0.2)]) == ("optimal", [])
    assert qp([], lo=0.5, hi=1.0) == ("infeasible", None)


def test_empty_groups_are_harmless():
    assert qp([0.6, 0.4], groups=[([], 0.0), ([], 0.3)]) == ("optimal", [0.6, 0.4])


def test_duplicated_group_indices_count_once():
    plain = qp([0.3, 0.3, 0.4], lo=1.0, hi=1.0, groups=[([0, 1], 0.4)])
    duplicated = qp([0.3, 0.3, 0.4], lo=1.0, hi=1.0, groups=[([0, 1, 1, 0, 1], 0.4)])
    assert plain == duplicated
    assert_weights(duplicated, [0.2, 0.2, 0.6])


def test_identical_and_nested_groups():
    groups = [([0, 1], 0.4), ([1, 0], 0.4), ([0, 1, 2], 0.9), ([0], 0.4)]
    status, w = qp([0.3, 0.3, 0.4], lo=0.9, hi=1.0, groups=groups)
    assert status == "optimal"
    assert kkt_residual([0.3, 0.3, 0.4], w, 0.9, 1.0, None, groups) <= 1e-12
    assert_weights((status, w), [0.2, 0.2, 0.5])


def test_zero_cap_zero_band_and_zero_group_limit():
    assert qp([0.5, 0.5], cap=0.0) == ("optimal", [0.0, 0.0])
    assert qp([0.5, 0.5], cap=0.0, lo=0.1) == ("infeasible", None)
    assert qp([0.5, 0.5], lo=0.0, hi=0.0) == ("optimal", [0.0, 0.0])
    # a zero limit pins its members to 0; the others take the whole band
    assert_weights(qp([0.5, 0.3, 0.2], lo=1.0, hi=1.0, cap=0.6, groups=[([0], 0.0)]), [0, 0.55, 0.45])
    assert qp([0.5, 0.3, 0.2], lo=1.0, hi=1.0, cap=0.4, groups=[([0], 0.0)]) == ("infeasible", None)
    assert qp([0.5, 0.5], lo=0.5, groups=[([0, 1], 0.0)]) == ("infeasible", None)


def test_negative_model_weights_and_no_constraints_at_all():
    assert_weights(qp([-0.2, 0.5, 0.4], lo=float("-inf"), hi=float("inf")), [0, 0.5, 0.4])
    assert_weights(qp([0.2, 0.7], lo=0.0, hi=1.0, cap=float("inf"), groups=[([0], float("inf"))]), [0.2, 0.7])


def test_invalid_input_raises():
    with pytest.raises(ValueError):
        qp([0.5], groups=[([1], 0.3)])
    with pytest.raises(ValueError):
        qp([0.5], groups=[([-1], 0.3)])
    with pytest.raises(ValueError):
        qp([float("nan")])
    with pytest.raises(ValueError):
        qp([0.5], cap=float("nan"))
    with pytest.raises(TypeError):
        qp([0.5], groups=[([0.0], 0.3)])


def test_status_words():
    clarabel = pytest.importorskip("clarabel")
    words = {name: S._status_word(getattr(clarabel.SolverStatus, name))
             for name in dir(clarabel.SolverStatus) if name[:1].isupper()}
    assert words["Solved"] == "optimal"
    assert words["AlmostSolved"] == "optimal_inaccurate"
    assert words["PrimalInfeasible"] == "infeasible"
    assert words["AlmostPrimalInfeasible"] == "infeasible_inaccurate"
    assert words["DualInfeasible"] == "unbounded"
    assert words["AlmostDualInfeasible"] == "unbounded_inaccurate"
    assert words["MaxIterations"] == "max_iterations"
    assert words["InsufficientProgress"] == "insufficient_progress"
    assert words["NumericalError"] == "numerical_error"
    assert all(word == word.lower() and " " not in word for word in words.values())


def test_solver_library_missing_raises_solver_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "clarabel", None)  # makes `import clarabel` fail
    with pytest.raises(SolverUnavailable):
        qp([0.6, 0.4], cap=0.7)
    assert issubclass(SolverUnavailable, RuntimeError)
    # answers that need no solver still come back
    assert qp([0.6, 0.4], lo=0.5, hi=0.4) == ("infeasible", None)


def test_importing_the_module_does_not_import_the_numeric_stack():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('solver_probe', {str(SOLVER_FILE)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "assert not {'numpy', 'scipy', 'clarabel'} & set(sys.modules), sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert importlib.util.find_spec("clarabel") is not None


def test_early_stopped_interior_point_is_polished_or_reported(monkeypatch):
    monkeypatch.setattr(S, "_IPM_MAX_ITER", 3)
    status, w = qp([0.5, 0.3, 0.2], lo=1.0, hi=1.0, cap=0.4, groups=[([1, 2], 0.65)])
    if status == "optimal_inaccurate":  # certified by the exact KKT check
        assert w == [0.4, 0.35, 0.25]
    else:
        assert status == "max_iterations" and w is None


# ------------------------------------------------------------------------------ large problems


def random_large_problem(n, seed):
    rng = np.random.default_rng(seed)
    m = np.round(rng.dirichlet(np.ones(n)), 6)
    cap = float(np.quantile(m, 0.8))
    sectors = rng.integers(0, 8, n)
    groups = []
    for sector in range(8):
        idx = [int(i) for i in np.flatnonzero(sectors == sector)]
        groups.append((idx, float(m[idx].sum()) * (0.9 if sector < 3 else 1.2)))
    for _ in range(3):  # overlapping groups
        idx = [int(i) for i in rng.choice(n, n // 5, replace=False)]
        groups.append((idx, float(m[idx].sum()) * 0.85))
    return [float(x) for x in m], cap, groups


def assert_kkt_sparse(m, w, lo, hi, cap, groups, tol=1e-9):
    """KKT check for large, non-degenerate problems: multipliers of the coupling rows from the
    free variables by least squares, then every sign and bound condition."""
    m = np.asarray(m)
    w = np.asarray(w)
    n = len(m)
    slack = 1e-12 * n  # the 12-decimal rounding of the output adds up over a row
    assert np.all(w >= 0) and np.all(w <= cap)
    total = w.sum()
    assert lo - slack <= total <= hi + slack
    rows, signs = [], []
    if abs(total - hi) <= tol:
        rows.append(np.ones(n))
        signs.append(1)
    elif abs(total - lo) <= tol:
        rows.append(np.ones(n))
        signs.append(-1)
    for idx, lim in groups:
        a = np.zeros(n)
        a[idx] = 1.0
        s = w[idx].sum()
        assert s <= lim + slack
        if abs(s - lim) <= tol:
            rows.append(a)
            signs.append(1)
    free = (w > tol) & (w < cap - tol)
    C = np.array(rows) if rows else np.zeros((0, n))
    if rows:
        mu = np.linalg.lstsq(C[:, free].T, (m - w)[free], rcond=None)[0]
    else:
        mu = np.zeros(0)
    ctmu = C.T @ mu if rows else np.zeros(n)
    assert np.abs((m - w - ctmu)[free]).max(initial=0.0) <= tol  # stationarity
    assert all(sign * value >= -tol for sign, value in zip(signs, mu, strict=True))  # multiplier signs
    at_zero = w <= tol
    at_cap = w >= cap - tol
    assert np.all(ctmu[at_zero] - m[at_zero] >= -tol)  # nu_i >= 0
    assert np.all(m[at_cap] - cap - ctmu[at_cap] >= -tol)  # rho_i >= 0
    return int(free.sum()), int(at_zero.sum()), int(at_cap.sum()), len(rows)


def test_three_thousand_variables_fast_and_optimal():
    m, cap, groups = random_large_problem(3000, 7)
    qp(m[:10], lo=0.9, hi=0.97, cap=0.5)  # warm the imports
    start = time.perf_counter()
    status, w = qp(m, lo=0.9, hi=0.97, cap=cap, groups=groups)
    elapsed = time.perf_counter() - start
    assert status == "optimal"
    assert elapsed < 1.0, elapsed
    free, at_zero, at_cap, active_rows = assert_kkt_sparse(m, w, 0.9, 0.97, cap, groups)
    assert free > 1000 and at_cap > 100 and active_rows >= 3  # the constraints really bind


def test_large_capped_simplex_matches_bisection():
    rng = np.random.default_rng(3)
    m = [float(x) for x in rng.dirichlet(np.ones(2500) * 0.5)]
    cap = 0.001
    status, w = qp(m, lo=0.97, hi=0.98, cap=cap)
    assert status == "optimal"
    ref = capped_simplex_bisection(m, 0.97, 0.98, cap)
    assert np.abs(np.asarray(w) - ref).max() <= 1e-10


# ------------------------------------------------------------------- independent cross-checks


@pytest.mark.parametrize("seed", range(40))
def test_capped_simplex_matches_bisection(seed):
    rnd = random.Random(seed)
    n = rnd.randint(1, 30)
    m = [round(rnd.random(), rnd.choice([2, 4, 8])) for _ in range(n)]
    total = sum(m) or 1.0
    if rnd.random() < 0.5:
        m = [round(x / total, 4) for x in m]
    cap = rnd.choice([None, 0.05, 0.1, 0.25, round(rnd.uniform(0.02, 0.6), 4), max(m)])
    lo = rnd.choice([0.0, 0.5, 0.95, 1.0])
    hi = rnd.choice([lo, 1.0, round(rnd.uniform(lo, 1.0), 4)])
    status, w = qp(m, lo=lo, hi=hi, cap=cap)
    if cap is not None and cap * n < lo - 1e-9:
        assert (status, w) == ("infeasible", None)
        return
    assert status == "optimal"
    ref = capped_simplex_bisection(m, lo, hi, cap)
    assert np.abs(np.asarray(w) - ref).max() <= 1e-9, (m, lo, hi, cap, w, ref)


@pytest.mark.parametrize("seed", range(40))
def test_small_problems_with_groups_match_slsqp(seed):
    rnd = random.Random(1000 + seed)
    n = rnd.randint(2, 8)
    m = [round(rnd.random(), 3) for _ in range(n)]
    total = sum(m) or 1.0
    m = [round(x / total, 4) for x in m]
    cap = rnd.choice([None, 0.3, 0.4, round(rnd.uniform(0.2, 0.6), 2)])
    lo = rnd.choice([0.0, 0.9, 0.95])
    hi = rnd.choice([1.0, max(lo, 0.97)])
    groups = []
    for _ in range(rnd.randint(1, 3)):
        idx = rnd.sample(range(n), rnd.randint(1, n))
        groups.append((idx, round(rnd.uniform(0.2, 0.7), 2)))
    status, w = qp(m, lo=lo, hi=hi, cap=cap, groups=groups)
    res = slsqp(m, lo, hi, cap, groups)
    if status == "infeasible":
        # SLSQP cannot find a feasible point either
        assert not res.success or max(
            [lo - res.x.sum(), res.x.sum() - hi]
            + [res.x[sorted(set(idx))].sum() - lim for idx, lim in groups]) > 1e-7
        return
    assert status == "optimal"
    assert kkt_residual(m, w, lo, hi, cap, groups) <= 1e-10
    assert res.success
    mm = np.asarray(m)
    f_ours = float(((np.asarray(w) - mm) ** 2).sum())
    f_ref = float(((res.x - mm) ** 2).sum())
    assert f_ours <= f_ref + 1e-12
    assert np.abs(np.asarray(w) - res.x).max() <= 1e-6
