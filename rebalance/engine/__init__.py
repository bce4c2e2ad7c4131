"""The DPM rebalance engine: a pure function from typed inputs to typed results.

Usage, once per batch and then once per scenario::

    prepared = prepare_inputs(inputs)                    # indexes + shared before-state cache
    result = run_rebalance(prepared, options, request_hash=..., correlation_id=...)
    body = result_to_wire(result)                        # JSON-ready dict, spec section 2
    metric = scenario_comparison_metric(result, base)    # batch comparison metric, spec 5.2

No Django, DRF or pydantic here (tests/engine/test_engine_is_pure.py walks the imports); the QP
solver module is imported lazily, only by SOLVER target generation.
"""

from __future__ import annotations

from .models import (
    CashBalance,
    EngineOptions,
    FxRate,
    MarketDataSnapshot,
    ModelPortfolio,
    ModelTarget,
    Money,
    PortfolioSnapshot,
    Position,
    Price,
    RebalanceInputs,
    ShelfEntry,
    TaxLot,
)
from .pipeline import run_rebalance
from .prepared import PreparedInputs, prepare_inputs
from .results import BLOCKED, PENDING_REVIEW, READY, RebalanceResult
from .wire import result_to_wire, scenario_comparison_metric

__all__ = [
    "BLOCKED",
    "PENDING_REVIEW",
    "READY",
    "CashBalance",
    "EngineOptions",
    "FxRate",
    "MarketDataSnapshot",
    "ModelPortfolio",
    "ModelTarget",
    "Money",
    "PortfolioSnapshot",
    "Position",
    "PreparedInputs",
    "Price",
    "RebalanceInputs",
    "RebalanceResult",
    "ShelfEntry",
    "TaxLot",
    "prepare_inputs",
    "result_to_wire",
    "run_rebalance",
    "scenario_comparison_metric",
]
