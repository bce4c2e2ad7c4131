"""Quadratic-programming step of the SOLVER target method (spec/engine.md section 3.6).

The engine hands over one variable per tradeable instrument and asks for the projection of the
model weights onto the polyhedron given by non-negativity, the invested-weight band, the optional
single-position cap and the (possibly overlapping) group limits::

    minimise   sum_i (w_i - m_i)^2
    subject to w_i >= 0
               sum_lower <= sum_i w_i <= sum_upper
               w_i <= cap                                   (when cap is not None)
               sum_{i in indices} w_i <= limit              (for each group)

How it is solved
----------------
1. Pre-checks settle the plainly infeasible problems without a solver call - an empty sum band,
   a negative cap / group limit / upper band, a cap whose total capacity ``cap x n`` is below the
   lower band (golden ``scenario_12_solver_infeasible``) - and take out exactly the variables
   that are forced to 0 (cap 0, upper band 0, group limit 0), which would otherwise leave the
   feasible set without interior.
2. The rest goes to Clarabel (interior point, sparse) with tolerances 1e-10. Its status is
   mapped to the cvxpy words (``_STATUS_WORDS``).
3. Polish. An interior-point answer is only accurate to about the square root of its tolerance
   (~1e-5) where a constraint is weakly active - the common case of model weights that sum
   exactly to the upper band, or a model weight equal to the cap. So the active set is read off
   the iterate, the equality-constrained projection on it is solved exactly (variables on a bound
   are fixed; the active coupling rows give a small dense k x k system) and the result is
   accepted only if it passes a complete KKT check (primal feasibility, multiplier signs;
   stationarity and complementarity hold by construction) to 1e-10 of the problem scale. A wrong
   guess is corrected by primal-dual active-set steps; three initial guesses are tried. If none
   certifies, the clipped interior-point answer is returned.
4. Marginal problems. When Clarabel stops without a verdict (``insufficient_progress``,
   ``numerical_error``, ``max_iterations``...) or reports infeasibility, a phase-1 LP measures the
   smallest uniform relaxation ``t`` of the band and group rows that makes the problem feasible.
   ``t > 1e-9 x scale`` -> ``"infeasible"``; otherwise the problem is feasible up to round-off and
   the QP is solved on rows relaxed by ``t + 1e-9 x scale`` -> ``"optimal_inaccurate"``. The same
   1e-9 threshold is used by the pre-checks, so the verdict does not depend on which path found it
   (e.g. a cap of 0.3 with 3 variables and a band of exactly 0.9 is feasible although 0.3*3 <
   0.9 in binary floating point).

Weights are normally exact to round-off; they are then rounded to 12 decimal places so that an
exact short decimal answer (0.4, 0.12345) comes out as that decimal - the engine quantizes them to
4 places HALF_EVEN. Variables on a bound are exactly ``0.0`` / ``cap``.

Interpretation notes: a group's index list is a set (duplicated indices count once); indices must
be integers in ``range(n)``; an empty group only requires ``limit >= 0``; infinite bounds / caps /
limits mean "no constraint"; NaN inputs raise ``ValueError``. With zero variables the answer is
``("optimal", [])`` when the empty portfolio satisfies the band (``sum_lower <= 0``) and
``"infeasible"`` otherwise.

numpy, scipy and clarabel are imported lazily, so importing this module is cheap; when they are
missing :class:`SolverUnavailable` is raised at call time.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["SolverUnavailable", "solve_target_qp"]


class SolverUnavailable(RuntimeError):
    """The QP solver library (clarabel, numpy, scipy) cannot be imported."""


# Clarabel SolverStatus name -> cvxpy-style status word. Anything else: snake_case of its name
# (MaxIterations -> "max_iterations", InsufficientProgress -> "insufficient_progress", ...).
_STATUS_WORDS = {
    "Solved": "optimal",
    "AlmostSolved": "optimal_inaccurate",
    "PrimalInfeasible": "infeasible",
    "AlmostPrimalInfeasible": "infeasible_inaccurate",
    "DualInfeasible": "unbounded",
    "AlmostDualInfeasible": "unbounded_inaccurate",
}

OPTIMAL = "optimal"
OPTIMAL_INACCURATE = "optimal_inaccurate"
INFEASIBLE = "infeasible"
SOLVER_ERROR = "solver_error"

# Interior-point tolerances (gap abs/rel, feasibility); converge reliably on these problems.
_IPM_TOL = 1e-10
_IPM_MAX_ITER = 200
# A problem is infeasible when no relaxation of its rows by <= _FEAS_TOL x scale makes it
# feasible; rows this close to contradictory are treated as feasible.
_FEAS_TOL = 1e-9
# Tolerance of the KKT certificate of a polished point (times the problem scale).
_KKT_TOL = 1e-10
# A polished point of a *solved* problem must lie this close to the interior-point answer (times
# the scale). Only a guard against a defect in the certificate: the interior-point answer itself
# can be ~1e-5 off where constraints are weakly active.
_AGREE_TOL = 1e-3
_MAX_POLISH_STEPS = 30
# Returned weights are rounded to this many decimal places (see _Problem.finish).
_DECIMALS = 12


def _snake_case(name: str) -> str:
    out: list[str] = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and (not name[i - 1].isupper() or
                                       (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _status_word(status: object) -> str:
    name = str(status).rsplit(".", 1)[-1]
    return _STATUS_WORDS.get(name) or _snake_case(name)


def _as_float(value: object, what: str) -> float:
    x = float(value)  # type: ignore[arg-type]
    if math.isnan(x):
        raise ValueError(f"{what} is NaN")
    return x


def solve_target_qp(model_weights: Sequence[float], *, sum_lower: float, sum_upper: float,
                    cap: float | None,
                    groups: Sequence[tuple[Sequence[int], float]]) -> tuple[str, list[float] | None]:
    """minimise sum_i (w_i - m_i)^2  s.t.  w_i >= 0;  sum_lower <= sum_i w_i <= sum_upper;
    w_i <= cap (when cap is not None);  for each (indices, limit) in groups: sum_{i in indices} w_i <= limit.
    Returns (status, weights): status is a cvxpy-style lower-case word — "optimal",
    "optimal_inaccurate", "infeasible", "infeasible_inaccurate", "unbounded",
    "unbounded_inaccurate", or another lower-case word for other outcomes (e.g. "solver_error",
    "max_iterations"); weights (len == len(model_weights)) only for optimal / optimal_inaccurate, else None."""
    # ---- normalise and validate the input --------------------------------------------------
    m_list = [_as_float(x, "model weight") for x in model_weights]
    if any(math.isinf(x) for x in m_list):
        raise ValueError("model weights must be finite")
    n = len(m_list)
    lo = _as_float(sum_lower, "sum_lower")
    hi = _as_float(sum_upper, "sum_upper")
    cap_f: float | None = None if cap is None else _as_float(cap, "cap")
    if cap_f == math.inf:
        cap_f = None
    norm_groups: list[tuple[tuple[int, ...], float]] = []
    for indices, limit in groups:
        lim = _as_float(limit, "group limit")
        members: set[int] = set()
        for raw in indices:
            i = operator.index(raw)
            if not 0 <= i < n:
                raise ValueError(f"group index {i} out of range for {n} variables")
            members.add(i)
        if lim != math.inf:
            norm_groups.append((tuple(sorted(members)), lim))
    if lo == math.inf or hi == -math.inf:
        return INFEASIBLE, None

    finite = [abs(v) for v in (*m_list, lo, hi, cap_f or 0.0, *(g[1] for g in norm_groups))
              if math.isfinite(v)]
    scale = max(1.0, max(finite, default=0.0))
    feas_tol = _FEAS_TOL * scale

    # ---- pre-checks (w >= 0 makes every sum non-negative) -----------------------------------
    if lo > hi + feas_tol or hi < -feas_tol:
        return INFEASIBLE, None
    if cap_f is not None and cap_f < -feas_tol:
        return INFEASIBLE, None
    if any(lim < -feas_tol for _, lim in norm_groups):
        return INFEASIBLE, None
    # contradictions within the tolerance are treated as touching bounds
    hi = max(hi, 0.0)
    lo = min(lo, hi)
    if cap_f is not None:
        cap_f = max(cap_f, 0.0)
    norm_groups = [(idx, max(lim, 0.0)) for idx, lim in norm_groups]

    # ---- variables forced to 0 (cap 0, upper band 0, group limit 0) are taken out exactly ------
    if cap_f == 0 or hi == 0:
        forced_zero = set(range(n))
    else:
        forced_zero = {i for idx, lim in norm_groups if lim == 0 for i in idx}
    keep = [i for i in range(n) if i not in forced_zero]
    n_kept = len(keep)
    capacity = 0.0 if n_kept == 0 else math.inf if cap_f is None else cap_f * n_kept
    if lo > capacity + feas_tol:
        return INFEASIBLE, None
    lo = min(lo, capacity)
    if n_kept == 0:
        return OPTIMAL, [0.0] * n
    position = {i: j for j, i in enumerate(keep)}
    reduced_groups = []
    for idx, lim in norm_groups:
        members_kept = tuple(position[i] for i in idx if i in position)
        if members_kept:  # an empty group only needs 0 <= limit, checked above
            reduced_groups.append((members_kept, lim))

    try:
        import clarabel
        import numpy as np
        import scipy.sparse as sp
    except ImportError as exc:
        raise SolverUnavailable(f"QP solver library not available: {exc}") from exc

    problem = _Problem(np, sp, clarabel, [m_list[i] for i in keep], lo, hi, cap_f,
                       reduced_groups, scale)
    word, reduced = _solve(problem, feas_tol)
    if reduced is None:
        return word, None
    weights = [0.0] * n
    for j, i in enumerate(keep):
        weights[i] = reduced[j]
    return word, weights


def _solve(problem: _Problem, feas_tol: float) -> tuple[str, list[float] | None]:
    word, x, s, z = problem.run_qp()
    if word in (OPTIMAL, OPTIMAL_INACCURATE):
        polished = problem.polish(x, s, z, agree_with=x)
        return word, polished if polished is not None else problem.finish(x)
    if word in ("unbounded", "unbounded_inaccurate"):
        return word, None  # cannot happen: the objective is strictly convex
    if word != INFEASIBLE and x is not None:
        polished = problem.polish(x, s, z, agree_with=None)  # a certificate is a proof anyway
        if polished is not None:
            return OPTIMAL_INACCURATE, polished
    # No verdict, or infeasible: measure the infeasibility with the phase-1 LP.
    t_low, t_high = problem.run_phase1()
    if t_low is None:
        return word, None
    if t_low > feas_tol:
        return INFEASIBLE, None
    if t_high is None or t_high > 10 * feas_tol:
        return word, None
    relaxed = problem.relaxed(t_high + feas_tol)
    word2, x, s, z = relaxed.run_qp()
    if word2 in (OPTIMAL, OPTIMAL_INACCURATE):
        polished = relaxed.polish(x, s, z, agree_with=x)
        return OPTIMAL_INACCURATE, polished if polished is not None else relaxed.finish(x)
    return word, None


class _Problem:
    """Arrays of one (reduced) QP instance, its Clarabel formulations and the exact polish.

    Coupling rows ``C`` (0/1 entries): row 0 is the sum row when the band is not vacuous, then one
    row per group; row r is constrained to ``row_lo[r] <= C_r w <= row_hi[r]``. Variable bounds
    ``0 <= w <= cap`` are kept apart."""

    def __init__(self, np: Any, sp: Any, clarabel: Any, m_list: list[float], lo: float, hi: float,
                 cap: float | None, groups: list[tuple[tuple[int, ...], float]], scale: float,
                 relax: float = 0.0) -> None:
        self.np, self.sp, self.clarabel = np, sp, clarabel
        self.args: tuple[list[float], float, float, float | None, list[tuple[tuple[int, ...], float]], float] = (
            m_list, lo, hi, cap, groups, scale
        )
        n = len(m_list)
        self.n = n
        self.m = np.asarray(m_list, dtype=float)
        self.cap = cap
        self.scale = scale
        self.tol = _KKT_TOL * scale
        rows: list[Sequence[int]] = []
        row_lo: list[float] = []
        row_hi: list[float] = []
        if lo > 0 or hi < math.inf:
            rows.append(range(n))
            row_lo.append(lo - relax if lo > 0 else -math.inf)  # lo <= 0 is implied by w >= 0
            row_hi.append(hi + relax)
        for idx, lim in groups:
            rows.append(idx)
            row_lo.append(-math.inf)
            row_hi.append(lim + relax)
        self.k = k = len(rows)
        indptr = [0]
        indices: list[int] = []
        for r in rows:
            indices.extend(r)
            indptr.append(len(indices))
        self.C = sp.csr_matrix((np.ones(len(indices)), np.asarray(indices, dtype=np.int64),
                                np.asarray(indptr, dtype=np.int64)), shape=(k, n))
        self.CT = self.C.T.tocsr()
        self.row_lo = np.asarray(row_lo, dtype=float)
        self.row_hi = np.asarray(row_hi, dtype=float)
        self.eq_rows = [r for r in range(k) if row_lo[r] == row_hi[r]]
        self.hi_rows = [r for r in range(k) if row_hi[r] < math.inf and row_lo[r] != row_hi[r]]
        self.lo_rows = [r for r in range(k) if row_lo[r] > -math.inf and row_lo[r] != row_hi[r]]

    def relaxed(self, amount: float) -> _Problem:
        m_list, lo, hi, cap, groups, scale = self.args
        return _Problem(self.np, self.sp, self.clarabel, m_list, lo, hi, cap, groups, scale, relax=amount)

    # ---- Clarabel -----------------------------------------------------------------------------
    def _settings(self) -> Any:
        settings = self.clarabel.DefaultSettings()
        settings.verbose = False
        settings.tol_gap_abs = _IPM_TOL
        settings.tol_gap_rel = _IPM_TOL
        settings.tol_feas = _IPM_TOL
        settings.max_iter = _IPM_MAX_ITER
        return settings

    def _constraints(self, extra_col: bool) -> tuple[Any, Any, list[Any]]:
        """Clarabel rows ``A [w; extra] + s = b`` in the order: equality rows (zero cone), then
        -w <= 0, w <= cap, C_hi w <= hi, -C_lo w <= -lo (non-negative cone). With
        ``extra_col`` (phase 1) a column -1 is added on the coupling rows and the equality rows
        become a pair of inequalities."""
        np, sp, n, C = self.np, self.sp, self.n, self.C
        eye = sp.identity(n, format="csr")
        if extra_col:
            eq_blocks = [C[self.eq_rows], -C[self.eq_rows]]
            eq_rhs = [self.row_hi[self.eq_rows], -self.row_hi[self.eq_rows]]
            blocks = [(-eye, False)]
            rhs = [np.zeros(n)]
        else:
            blocks = [(C[self.eq_rows], False), (-eye, False)]
            rhs = [self.row_hi[self.eq_rows], np.zeros(n)]
            eq_blocks, eq_rhs = [], []
        if self.cap is not None:
            blocks.append((eye, False))
            rhs.append(np.full(n, self.cap))
        blocks += [(blk, True) for blk in eq_blocks]
        rhs += eq_rhs
        blocks += [(C[self.hi_rows], True), (-C[self.lo_rows], True)]
        rhs += [self.row_hi[self.hi_rows], -self.row_lo[self.lo_rows]]
        if extra_col:
            cols = []
            for blk, coupled in blocks:
                col = -np.ones((blk.shape[0], 1)) if coupled else np.zeros((blk.shape[0], 1))
                cols.append(sp.hstack([blk, sp.csr_matrix(col)], format="csr"))
            t_row = sp.csr_matrix(([-1.0], ([0], [n])), shape=(1, n + 1))
            A = sp.vstack(cols + [t_row], format="csc")
            b = np.concatenate(rhs + [np.zeros(1)])
            cones = [self.clarabel.NonnegativeConeT(A.shape[0])]
        else:
            A = sp.vstack([blk for blk, _ in blocks], format="csc")
            b = np.concatenate(rhs)
            cones = []
            if self.eq_rows:
                cones.append(self.clarabel.ZeroConeT(len(self.eq_rows)))
            cones.append(self.clarabel.NonnegativeConeT(A.shape[0] - len(self.eq_rows)))
        A.eliminate_zeros()
        return A, b, cones

    def run_qp(self) -> tuple[str, Any, Any, Any]:
        """Solve the QP with Clarabel. Returns (status word, x, s, z); x is None when unusable."""
        np, sp, n = self.np, self.sp, self.n
        try:
            A, b, cones = self._constraints(extra_col=False)
            P = sp.identity(n, format="csc")
            solution = self.clarabel.DefaultSolver(P, -self.m, A, b, cones,
                                                   self._settings()).solve()
            word = _status_word(solution.status)
            x = np.asarray(solution.x, dtype=float)
            s = np.asarray(solution.s, dtype=float)
            z = np.asarray(solution.z, dtype=float)
        except Exception:  # noqa: BLE001 - a failure inside the solver is a solver error
            return SOLVER_ERROR, None, None, None
        if x.shape != (n,) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(s))
                                    and np.all(np.isfinite(z))):
            return word, None, None, None
        return word, x, s, z

    def run_phase1(self) -> tuple[float | None, float | None]:
        """Phase-1 LP: min t s.t. 0 <= w <= cap, every coupling row relaxed by t, t >= 0.
        Returns (lower bound on t*, measured violation of the LP's point), (None, None) when the
        LP itself fails."""
        np, sp, n = self.np, self.sp, self.n
        try:
            A, b, cones = self._constraints(extra_col=True)
            q = np.zeros(n + 1)
            q[n] = 1.0
            P = sp.csc_matrix((n + 1, n + 1))
            solution = self.clarabel.DefaultSolver(P, q, A, b, cones, self._settings()).solve()
            if _status_word(solution.status) not in (OPTIMAL, OPTIMAL_INACCURATE):
                return None, None
            w = np.clip(np.asarray(solution.x, dtype=float)[:n], 0.0,
                        np.inf if self.cap is None else self.cap)
            t_low = float(solution.obj_val_dual)
        except Exception:  # noqa: BLE001
            return None, None
        cw = self.C @ w
        viol = np.concatenate([[0.0], cw - self.row_hi, self.row_lo - cw])
        t_high = float(np.max(viol[np.isfinite(viol)]))
        if not math.isfinite(t_low):
            return None, None
        return t_low, t_high

    def finish(self, x: Any) -> list[float]:
        """Clip into [0, cap] and round to 12 decimal places, so that an answer that is an exact
        short decimal (0.4, 0.12345) comes out as that decimal rather than 0.39999999999999997;
        the engine's 4-dp HALF_EVEN quantization then rounds ties as exact arithmetic would."""
        np = self.np
        upper = self.cap if self.cap is not None else np.inf
        return [round(float(v), _DECIMALS) + 0.0 for v in np.clip(x, 0.0, upper)]

    # ---- exact polish -------------------------------------------------------------------------
    def _split_duals(self, s: Any, z: Any) -> tuple[Any, Any, Any]:
        """Slacks and duals of the QP rows: (var lower, var cap, per coupling row dict)."""
        n = self.n
        pos = len(self.eq_rows)
        low = (s[pos:pos + n], z[pos:pos + n])
        pos += n
        cap = None
        if self.cap is not None:
            cap = (s[pos:pos + n], z[pos:pos + n])
            pos += n
        rows: dict[int, list[tuple[int, Any, Any]]] = {}
        for side, rr in ((1, self.hi_rows), (-1, self.lo_rows)):
            for j, r in enumerate(rr):
                rows.setdefault(r, []).append((side, s[pos + j], z[pos + j]))
            pos += len(rr)
        return low, cap, rows

    def _mu_hint(self, z: Any) -> Any:
        """Interior-point multipliers of the coupling rows, convention w = m - C^T mu."""
        np = self.np
        mu = np.zeros(self.k)
        mu[self.eq_rows] = z[:len(self.eq_rows)]
        _, _, rows = self._split_duals(np.zeros_like(z), z)
        for r, entries in rows.items():
            for side, _, zv in entries:
                mu[r] += side * zv
        return mu

    def _guess_dual(self, x: Any, s: Any, z: Any) -> tuple[Any, Any]:
        """Active when the dual exceeds the slack (the interior-point view)."""
        np = self.np
        var_state = np.zeros(self.n, dtype=np.int8)
        (s_low, z_low), cap, rows = self._split_duals(s, z)
        at_low = z_low > s_low
        var_state[at_low] = -1
        if cap is not None:
            s_cap, z_cap = cap
            var_state[(z_cap > s_cap) & ~(at_low & (z_low >= z_cap))] = 1
        row_state = np.zeros(self.k, dtype=np.int8)
        row_state[self.eq_rows] = 2
        for r, entries in rows.items():
            best = 0.0
            for side, sv, zv in entries:
                if zv > sv and zv > best:
                    row_state[r], best = side, zv
        return var_state, row_state

    def _guess_primal(self, x: Any, delta: float) -> tuple[Any, Any]:
        """Active when the constraint's slack at x is at most delta."""
        np = self.np
        var_state = np.zeros(self.n, dtype=np.int8)
        var_state[x <= delta] = -1
        if self.cap is not None:
            var_state[(x >= self.cap - delta) & (x > delta)] = 1
        cx = self.C @ x
        row_state = np.zeros(self.k, dtype=np.int8)
        row_state[cx >= self.row_hi - delta] = 1
        row_state[(cx <= self.row_lo + delta) & (row_state == 0)] = -1
        row_state[self.eq_rows] = 2
        return var_state, row_state

    def _project(self, var_state: Any, row_state: Any, mu_hint: Any) -> tuple[Any, Any, Any] | None:
        """Exact projection of m onto {w_i = bound for fixed i; C_r w = target_r for active r}.

        Returns (w, mu, row_state) with w = m - C^T mu on the free variables, or None. Active
        rows that cannot all be met are dropped, least active first (by the hint). When the
        active rows restricted to the free variables are linearly dependent (a degenerate vertex,
        e.g. a group whose members all sit on their bounds) the multipliers are not unique; the
        one closest to ``mu_hint`` (the interior-point duals, inside the optimal dual face) is
        taken, as the sign checks need a good one."""
        np = self.np
        w0 = self.m.copy()
        w0[var_state == -1] = 0.0
        if self.cap is not None:
            w0[var_state == 1] = self.cap
        free = var_state == 0
        free_idx = np.flatnonzero(free)
        fixed_part = np.where(free, 0.0, w0)
        row_state = row_state.copy()
        while True:
            w = w0.copy()
            mu = np.zeros(self.k)
            active = np.flatnonzero(row_state != 0)
            if not active.size:
                return w, mu, row_state
            target = np.where(row_state[active] == -1, self.row_lo[active], self.row_hi[active])
            CK = self.C[active]
            CKF = CK[:, free_idx]
            rhs = CKF @ self.m[free] - (target - CK @ fixed_part)
            G = (CKF @ CKF.T).toarray()  # small k x k with integer entries
            muK, _, rank, _ = np.linalg.lstsq(G, rhs, rcond=None)
            w[free] = self.m[free] - CKF.T @ muK
            if np.all(np.isfinite(w)) and np.all(np.abs(CK @ w - target) <= self.tol):
                if rank < active.size:
                    hint = mu_hint[active]
                    muK = hint + np.linalg.lstsq(G, G @ (muK - hint), rcond=None)[0]
                mu[active] = muK
                return w, mu, row_state
            droppable = [j for j in range(active.size) if row_state[active[j]] != 2]
            if not droppable:
                return None
            j = min(droppable, key=lambda j: row_state[active[j]] * mu_hint[active[j]])
            row_state[active[j]] = 0

    def _pdas(self, var_state: Any, row_state: Any, mu_hint: Any) -> Any | None:
        """Primal-dual active-set iterations from a guess; the certified w or None."""
        np, tol = self.np, self.tol
        cap = self.cap
        seen: set[bytes] = set()
        for _ in range(_MAX_POLISH_STEPS):
            projected = self._project(var_state, row_state, mu_hint)
            if projected is None:
                return None
            w, mu, row_state = projected
            key = var_state.tobytes() + row_state.tobytes()
            if key in seen:
                return None
            seen.add(key)
            g = self.m - self.CT @ mu  # w_i = g_i on the free variables
            # bound multipliers: nu_i = -g_i >= 0 at 0, rho_i = g_i - cap >= 0 at cap
            bad_low = (var_state == -1) & (g > tol)
            free = var_state == 0
            viol_low = free & (w < -tol)
            if cap is not None:
                bad_cap = (var_state == 1) & (g < cap - tol)
                viol_cap = free & (w > cap + tol)
            else:
                bad_cap = viol_cap = np.zeros(self.n, dtype=bool)
            cw = self.C @ w
            bad_row = ((row_state == 1) & (mu < -tol)) | ((row_state == -1) & (mu > tol))
            inactive = row_state == 0
            viol_hi = inactive & (cw > self.row_hi + tol)
            viol_lo = inactive & (cw < self.row_lo - tol)
            if not (bad_low.any() or bad_cap.any() or viol_low.any() or viol_cap.any()
                    or bad_row.any() or viol_hi.any() or viol_lo.any()):
                return w
            var_state = var_state.copy()
            row_state = row_state.copy()
            var_state[bad_low | bad_cap] = 0
            var_state[viol_low] = -1
            var_state[viol_cap] = 1
            row_state[bad_row] = 0
            row_state[viol_hi] = 1
            row_state[viol_lo] = -1
        return None

    def polish(self, x: Any, s: Any, z: Any, agree_with: Any = None) -> list[float] | None:
        """Exact solution certified by the KKT conditions, or None."""
        np = self.np
        mu_hint = self._mu_hint(z)
        xc = np.clip(x, 0.0, np.inf if self.cap is None else self.cap)
        guesses: tuple[Callable[[], tuple[Any, Any]], ...] = (
            lambda: self._guess_dual(x, s, z),
            lambda: self._guess_primal(xc, 1e-6 * self.scale),
            lambda: self._guess_primal(xc, 1e-9 * self.scale),
        )
        for guess in guesses:
            w = self._pdas(*guess(), mu_hint)
            if w is None:
                continue
            if agree_with is not None and \
                    np.max(np.abs(w - agree_with), initial=0.0) > _AGREE_TOL * self.scale:
                continue
            return self.finish(w)
        return None
