"""Target generation (spec 3.4 to 3.8): heuristic, solver, trace and method comparison.

Both methods mutate a per-scenario copy of the eligible-target map `E` and return a target status.
Deliberate difference from the reference (docs/engine.md, item 1): locked holdings are never scaled
or capped by the heuristic; their weight counts as fixed in the single-position cap and in group
constraints, and a locked holding that alone exceeds the single-position cap sends the run to
PENDING_REVIEW instead of producing a SELL of a frozen asset.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from .models import EngineOptions
from .prepared import PreparedInputs
from .results import (
    BLOCKED,
    PENDING_REVIEW,
    READY,
    GroupConstraintEvent,
    TargetInstrument,
    TargetMethodComparison,
)
from .universe import ZERO_WEIGHT, Universe
from .wire_types import RunStatus, TargetMethod

HEURISTIC: Final = "HEURISTIC"
SOLVER: Final = "SOLVER"

ZERO = Decimal(0)
ONE = Decimal(1)
NORMALISATION_TRIGGER = Decimal("1.0001")
GROUP_TOLERANCE = Decimal("0.0001")
CAP_REMAINDER_TOLERANCE = Decimal("0.001")
SOLVER_QUANTUM = Decimal("0.0001")

TAG_CAPPED = ("CAPPED_BY_MAX_WEIGHT",)
TAG_RECIPIENT = ("REDISTRIBUTED_RECIPIENT",)
TAG_IMPLICIT_SELL = ("IMPLICIT_SELL_TO_ZERO",)
TAG_LOCKED = ("LOCKED_POSITION",)
NO_TAGS: tuple[str, ...] = ()


@dataclass(slots=True)
class TargetOutcome:
    """Target trace and target-stage status of one method run."""

    trace: list[TargetInstrument]
    status: RunStatus


def generate_targets(
    method: TargetMethod,
    prepared: PreparedInputs,
    universe: Universe,
    options: EngineOptions,
    total_value: Decimal,
    warnings: list[str],
    group_events: list[GroupConstraintEvent],
) -> TargetOutcome:
    """Run one target method on a fresh copy of E and build its trace (empty when BLOCKED)."""
    eligible = dict(universe.eligible)
    if method == SOLVER:
        status = _solver_targets(eligible, prepared, universe, options, warnings)
    else:
        status = _heuristic_targets(eligible, prepared, universe, options, warnings, group_events)
    if status == BLOCKED:
        return TargetOutcome([], BLOCKED)
    return TargetOutcome(build_trace(eligible, prepared, universe.buy_set, total_value), status)


# --------------------------------------------------------------------------------------- heuristic


def _redistribute_sell_only(eligible: dict[str, Decimal], buy_set: frozenset[str], excess: Decimal) -> bool:
    """Spread SELL_ONLY model weight over buyable targets pro rata; False when there is no recipient."""
    if not excess > 0:
        return True
    recipients = [iid for iid in eligible if iid in buy_set]
    recipient_total = sum((eligible[iid] for iid in recipients), ZERO)
    if not recipient_total > 0:
        return False  # the excess stays as cash; the caller flags PENDING_REVIEW
    for iid in recipients:
        weight = eligible[iid]
        # Proportion first, as the reference does in the cap: excess x (w / S), not (excess x w) / S
        # (docs/engine.md, "Text of numbers").
        eligible[iid] = weight + excess * (weight / recipient_total)
    return True


def _heuristic_targets(
    eligible: dict[str, Decimal],
    prepared: PreparedInputs,
    universe: Universe,
    options: EngineOptions,
    warnings: list[str],
    group_events: list[GroupConstraintEvent],
) -> RunStatus:
    buy_set = universe.buy_set
    locked = universe.locked
    status: RunStatus = READY

    # 1. Sell-only redistribution.
    if not _redistribute_sell_only(eligible, buy_set, universe.sell_only_excess):
        status = PENDING_REVIEW

    # 2. Group constraints.
    if options.group_constraints:
        status = _apply_group_constraints(eligible, prepared, universe, options, warnings, group_events, status)
        if status == BLOCKED:
            return BLOCKED

    # 3. Normalisation: scale the buyable weights into what the non-buyable ones leave.
    if sum(eligible.values(), ZERO) > NORMALISATION_TRIGGER:
        locked_total, buy_total = _split_totals(eligible, buy_set)
        available = max(ZERO, ONE - locked_total)
        if locked_total > ONE:
            status = PENDING_REVIEW
        if buy_total > available:
            if buy_total > 0:
                _scale_buyable(eligible, buy_set, available / buy_total)
            status = PENDING_REVIEW

    # 4. Single-position cap with front-loaded redistribution (reference behaviour, kept).
    cap = options.single_position_max_weight
    if cap is not None:
        excess = ZERO
        for iid, weight in eligible.items():
            if iid in locked:
                # Item 1: a frozen holding is never capped (it cannot be traded); a human reviews it.
                if weight > cap:
                    status = PENDING_REVIEW
                continue
            excess += max(ZERO, weight - cap)
            eligible[iid] = min(weight, cap)
        if excess > 0:
            candidates = [iid for iid, weight in eligible.items() if iid in buy_set and weight < cap]
            candidate_total = sum((eligible[iid] for iid in candidates), ZERO)
            if candidate_total > 0:
                remainder = excess
                for iid in candidates:
                    weight = eligible[iid]
                    # The share is taken of the *remaining* excess against the original total. The
                    # candidate's proportion w / K is rounded first, then multiplied by the remainder:
                    # (rem x w) / K differs from it in the 28th digit about once in a hundred.
                    added = min(remainder * (weight / candidate_total), cap - weight)
                    eligible[iid] = weight + added
                    remainder -= added
                if remainder > CAP_REMAINDER_TOLERANCE:
                    status = PENDING_REVIEW
            else:
                status = PENDING_REVIEW

    # 5. Minimum cash buffer.
    buffer = options.min_cash_buffer_pct
    if buffer > 0:
        locked_total, buy_total = _split_totals(eligible, buy_set)
        allowed = max(ZERO, ONE - buffer - locked_total)
        if buy_total > allowed:
            if buy_total > 0:
                _scale_buyable(eligible, buy_set, allowed / buy_total)
            status = PENDING_REVIEW
    return status


def _split_totals(eligible: dict[str, Decimal], buy_set: frozenset[str]) -> tuple[Decimal, Decimal]:
    """(sum of non-buyable weights, sum of buyable weights), both summed in E order."""
    other = ZERO
    buyable = ZERO
    for iid, weight in eligible.items():
        if iid in buy_set:
            buyable += weight
        else:
            other += weight
    return other, buyable


def _scale_buyable(eligible: dict[str, Decimal], buy_set: frozenset[str], factor: Decimal) -> None:
    for iid, weight in eligible.items():
        if iid in buy_set:
            eligible[iid] = weight * factor


def _group_members(
    eligible: dict[str, Decimal], prepared: PreparedInputs, attr_key: str, attr_value: str
) -> list[str]:
    shelf = prepared.shelf
    members = []
    for iid in eligible:
        entry = shelf.get(iid)
        if entry is not None and entry.attributes.get(attr_key) == attr_value:
            members.append(iid)
    return members


def _apply_group_constraints(
    eligible: dict[str, Decimal],
    prepared: PreparedInputs,
    universe: Universe,
    options: EngineOptions,
    warnings: list[str],
    events: list[GroupConstraintEvent],
    status: RunStatus,
) -> RunStatus:
    """Single pass over the constraints in key order (spec 3.5); returns the new status."""
    buy_set = universe.buy_set
    locked = universe.locked
    constraints = options.group_constraints
    for key in sorted(constraints):
        max_weight = constraints[key]
        attr_key, _, attr_value = key.partition(":")
        if attr_key not in prepared.attribute_keys:
            warnings.append(f"UNKNOWN_CONSTRAINT_ATTRIBUTE_{attr_key}")
            continue
        members = _group_members(eligible, prepared, attr_key, attr_value)
        if not members:
            continue
        group_weight = sum((eligible[iid] for iid in members), ZERO)
        if group_weight <= max_weight + GROUP_TOLERANCE:
            continue
        frozen = [iid for iid in members if iid in locked]
        if not frozen:
            factor = max_weight / group_weight
            for iid in members:
                eligible[iid] = eligible[iid] * factor
            released = group_weight - max_weight
        else:
            # Item 1: the locked weight L_g is fixed; only tradeable members shrink so that the
            # group ends at max_weight (or they go to zero when L_g alone reaches it).
            locked_weight = sum((eligible[iid] for iid in frozen), ZERO)
            free = [iid for iid in members if iid not in locked]
            free_before = sum((eligible[iid] for iid in free), ZERO)
            if locked_weight > max_weight:
                status = PENDING_REVIEW  # frozen holdings alone breach the group: human review
            room = max_weight - locked_weight
            if room > 0 and free_before > 0:
                factor = room / free_before
                for iid in free:
                    eligible[iid] = eligible[iid] * factor
                released = free_before - room
            else:
                for iid in free:
                    eligible[iid] = ZERO_WEIGHT
                released = free_before
            if not released > 0:
                continue  # nothing tradeable was cut, so there is nothing to hand out
        member_set = set(members)
        recipients = [iid for iid in eligible if iid in buy_set and iid not in member_set]
        recipient_total = sum((eligible[iid] for iid in recipients), ZERO)
        if recipient_total > 0:
            added: dict[str, Decimal] = {}
            for iid in recipients:
                weight = eligible[iid]
                share = released * (weight / recipient_total)  # proportion first, as in the cap
                eligible[iid] = weight + share
                added[iid] = share
            warnings.append(f"CAPPED_BY_GROUP_LIMIT_{key}")
            events.append(GroupConstraintEvent(key, group_weight, max_weight, released, added, "CAPPED"))
        else:
            warnings.append(f"CAPPED_BY_GROUP_LIMIT_{key}")
            warnings.append("NO_ELIGIBLE_REDISTRIBUTION_DESTINATION")
            events.append(GroupConstraintEvent(key, group_weight, max_weight, released, {}, "BLOCKED"))
            return BLOCKED  # remaining constraints are not processed
    return status


# ------------------------------------------------------------------------------------------ solver


def _solver_targets(
    eligible: dict[str, Decimal],
    prepared: PreparedInputs,
    universe: Universe,
    options: EngineOptions,
    warnings: list[str],
) -> RunStatus:
    """Quadratic-programme targets (spec 3.6); the solver module is imported only here."""
    mark = len(warnings)
    try:
        from .solver import SolverUnavailable, solve_target_qp
    except ImportError:
        warnings.append("SOLVER_ERROR")
        return BLOCKED

    buy_set = universe.buy_set
    status: RunStatus = READY
    if not _redistribute_sell_only(eligible, buy_set, universe.sell_only_excess):
        status = PENDING_REVIEW
    cap = options.single_position_max_weight
    if cap is not None and any(eligible[iid] > cap for iid in universe.locked):
        status = PENDING_REVIEW  # item 1, same rule as the heuristic: frozen holding above the cap

    tradeable = [iid for iid in eligible if iid in buy_set]
    locked_total = sum((weight for iid, weight in eligible.items() if iid not in buy_set), ZERO)
    if not tradeable:
        return status
    index = {iid: position for position, iid in enumerate(tradeable)}

    groups: list[tuple[list[int], float]] = []
    locked_group_weights: list[tuple[str, Decimal, Decimal]] = []
    constraints = options.group_constraints
    for key in sorted(constraints):
        max_weight = constraints[key]
        attr_key, _, attr_value = key.partition(":")
        if attr_key not in prepared.attribute_keys:
            warnings.append(f"UNKNOWN_CONSTRAINT_ATTRIBUTE_{attr_key}")
            continue
        members = _group_members(eligible, prepared, attr_key, attr_value)
        member_indices = [index[iid] for iid in members if iid in index]
        group_locked = sum((eligible[iid] for iid in members if iid not in index), ZERO)
        if not member_indices and group_locked == 0:
            continue
        groups.append((member_indices, float(max_weight - group_locked)))
        locked_group_weights.append((key, group_locked, max_weight))

    lower = ONE - options.cash_band_max_weight - locked_total
    upper = ONE - options.cash_band_min_weight - locked_total
    model_weights = prepared.model_weights
    try:
        solver_status, weights = solve_target_qp(
            [float(model_weights[iid]) for iid in tradeable],
            sum_lower=float(lower),
            sum_upper=float(upper),
            cap=float(cap) if cap is not None else None,
            groups=groups,
        )
    except SolverUnavailable:
        # The reference checks the solver library before doing anything else: no other warning.
        del warnings[mark:]
        warnings.append("SOLVER_ERROR")
        return BLOCKED
    except Exception:  # noqa: BLE001 - any solver crash is a solver failure, reported as SOLVER_ERROR
        solver_status, weights = None, None

    if solver_status in ("optimal", "optimal_inaccurate") and weights is not None and len(weights) == len(tradeable):
        for iid, raw in zip(tradeable, weights, strict=True):
            eligible[iid] = max(Decimal(str(raw)), ZERO).quantize(SOLVER_QUANTUM, rounding=ROUND_HALF_EVEN)
        return status

    if not solver_status or solver_status in ("optimal", "optimal_inaccurate"):
        warnings.append("SOLVER_ERROR")
        return BLOCKED
    code = str(solver_status).upper()
    if solver_status in ("infeasible", "infeasible_inaccurate"):
        warnings.append(f"INFEASIBLE_{code}")
        if lower > upper:
            warnings.append("INFEASIBILITY_HINT_CASH_BAND_CONTRADICTION")
        if cap is not None and cap * len(tradeable) < lower:
            warnings.append("INFEASIBILITY_HINT_SINGLE_POSITION_CAPACITY")
        for key, group_locked, max_weight in locked_group_weights:
            if group_locked > max_weight:
                warnings.append(f"INFEASIBILITY_HINT_LOCKED_GROUP_WEIGHT_{key}")
    elif str(solver_status).startswith("unbounded"):
        warnings.append(f"UNBOUNDED_{code}")
    else:
        warnings.append(f"SOLVER_NON_OPTIMAL_{code}")
    return BLOCKED


# ------------------------------------------------------------------------------------------- trace


def build_trace(
    eligible: dict[str, Decimal], prepared: PreparedInputs, buy_set: frozenset[str], total_value: Decimal
) -> list[TargetInstrument]:
    """Model targets in request order, then the other entries of E in E order (spec 3.7)."""
    model_ids = prepared.model_ids
    trace: list[TargetInstrument] = []
    append = trace.append
    get = eligible.get
    tags: tuple[str, ...]
    for target in prepared.inputs.model.targets:
        model_weight = target.weight
        final = get(target.instrument_id, ZERO_WEIGHT)  # excluded targets: the reference's 0.0
        if model_weight > final:
            tags = TAG_CAPPED
        elif final > model_weight:
            tags = TAG_RECIPIENT
        else:
            tags = NO_TAGS
        append(TargetInstrument(target.instrument_id, model_weight, final, total_value * final, tags))
    for iid, final in eligible.items():
        if iid in model_ids:
            continue
        tags = TAG_IMPLICIT_SELL if final == 0 or iid in buy_set else TAG_LOCKED
        append(TargetInstrument(iid, ZERO_WEIGHT, final, total_value * final, tags))
    return trace


# -------------------------------------------------------------------------------------- comparison


def compare_methods(
    primary_method: TargetMethod,
    primary: TargetOutcome,
    prepared: PreparedInputs,
    universe: Universe,
    options: EngineOptions,
    total_value: Decimal,
    warnings: list[str],
) -> TargetMethodComparison:
    """Run the other method on a fresh E with scratch diagnostics and report the divergence (3.8)."""
    alternate_method: TargetMethod = HEURISTIC if primary_method == SOLVER else SOLVER
    scratch_warnings: list[str] = []
    alternate = generate_targets(alternate_method, prepared, universe, options, total_value, scratch_warnings, [])
    tolerance = options.compare_target_methods_tolerance
    primary_weights: dict[str, Decimal] = {}
    for entry in primary.trace:
        primary_weights.setdefault(entry.instrument_id, entry.final_weight)
    alternate_weights: dict[str, Decimal] = {}
    for entry in alternate.trace:
        alternate_weights.setdefault(entry.instrument_id, entry.final_weight)
    differing = sorted(
        iid
        for iid in primary_weights.keys() | alternate_weights.keys()
        if abs(primary_weights.get(iid, ZERO) - alternate_weights.get(iid, ZERO)) > tolerance
    )
    if primary.status != alternate.status:
        warnings.append("TARGET_METHOD_STATUS_DIVERGENCE")
    if differing:
        warnings.append("TARGET_METHOD_WEIGHT_DIVERGENCE")
    return TargetMethodComparison(
        primary_method=primary_method,
        primary_status=primary.status,
        alternate_method=alternate_method,
        alternate_status=alternate.status,
        tolerance=str(tolerance),
        differing_instruments=differing,
        alternate_warnings=sorted(set(scratch_warnings)),
    )
