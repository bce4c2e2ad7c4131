"""The what-if batch on the wire (spec/engine.md sections 1.4 and 2.10): the request and the envelope.

`BatchRebalanceRequest` is what `batch_request_parse` returns: the engine's input snapshots, shared
by every scenario, plus each scenario's options (validated per scenario when the batch runs).
`BatchRebalanceResult` is the envelope `rebalance_analyze_batch` writes around the scenarios'
results. Like the engine's shapes, these are the one declaration of their part of the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from dpm_async.shapes import Meta
from rebalance.engine.models import (
    MAX_SHELF_ENTRIES,
    MarketDataSnapshot,
    ModelPortfolio,
    PortfolioSnapshot,
    RebalanceInputs,
    ShelfEntry,
)
from rebalance.engine.shapes import DescriptionStr, ScenarioName
from rebalance.engine.wire_types import ComparisonMetric, RebalanceResult

MAX_SCENARIOS = 20
# How deeply a scenario's options object may nest.
MAX_OPTIONS_DEPTH = 32


@dataclass(slots=True)
class Scenario:
    """One what-if scenario: a set of engine options over the shared snapshots."""

    description: DescriptionStr | None = None
    options: Annotated[
        dict[str, Any],
        Meta(
            description="EngineOptions (spec 1.3); every field optional, unknown keys ignored. The content is "
            "validated per scenario when the batch runs: invalid options put the scenario in "
            "`failed_scenarios` as `INVALID_OPTIONS: <message>` instead of failing the request.",
            example={"target_method": "HEURISTIC", "max_turnover_pct": "0.25"},
        ),
    ] = field(default_factory=dict)


@dataclass(slots=True)
class BatchRebalanceRequest:
    """Body of `POST /rebalance/analyze` and `/rebalance/analyze/async` (spec 1.4).

    The snapshots, model and shelf are shared by every scenario; each scenario only brings its
    engine options. Decimals are JSON strings (preferred: they keep their scale, `"100.0"`) or JSON
    numbers. A stray top-level `options` key is ignored (there are no batch-level options).
    """

    portfolio_snapshot: PortfolioSnapshot
    market_data_snapshot: MarketDataSnapshot
    model_portfolio: ModelPortfolio
    shelf_entries: Annotated[list[ShelfEntry], Meta(max_length=MAX_SHELF_ENTRIES, unique="instrument_id")]
    # Validated in code-point order of the names (the order they run in).
    scenarios: Annotated[
        dict[ScenarioName, Scenario],
        Meta(description="Scenario name (`^[a-z0-9_-]{1,64}$`) -> scenario; 1 to 20 entries.",
             min_length=1, max_length=MAX_SCENARIOS),
    ]

    @property
    def inputs(self) -> RebalanceInputs:
        """The engine's inputs: the four snapshots every scenario shares."""
        return RebalanceInputs(
            portfolio=self.portfolio_snapshot,
            market_data=self.market_data_snapshot,
            model=self.model_portfolio,
            shelf=self.shelf_entries,
        )

    def base_snapshot_ids(self) -> BaseSnapshotIds:
        return {
            "portfolio_snapshot_id": self.portfolio_snapshot.snapshot_id or self.portfolio_snapshot.portfolio_id,
            "market_data_snapshot_id": self.market_data_snapshot.snapshot_id or "md",
        }


class BaseSnapshotIds(TypedDict):
    portfolio_snapshot_id: Annotated[str, Meta(description="The portfolio's snapshot_id, else its portfolio_id.")]
    market_data_snapshot_id: Annotated[str, Meta(description="The market data's snapshot_id, else `md`.")]


# A scenario's outcome in a batch: its result's status, or FAILED when it could not run (it is then in
# `failed_scenarios`, with the reason).
type ScenarioStatus = Literal["READY", "PENDING_REVIEW", "BLOCKED", "FAILED"]
SCENARIO_STATUSES: tuple[ScenarioStatus, ...] = ("READY", "PENDING_REVIEW", "BLOCKED", "FAILED")


class BatchRebalanceResult(TypedDict):
    """Result of a what-if batch (spec 2.10): one RebalanceResult per successful scenario.

    `results` and `comparison_metrics` have the same keys (the scenarios that ran, in code-point
    order); a scenario with invalid options or a fault is in `failed_scenarios` instead, and then
    `warnings` is `["PARTIAL_BATCH_FAILURE"]`. Decimals are JSON strings.
    """

    batch_run_id: Annotated[str, Meta(example="batch_7d41c2aa")]
    run_at_utc: Annotated[str, Meta(format="date-time", example="2026-03-31T18:02:11.482913+00:00")]
    base_snapshot_ids: BaseSnapshotIds
    results: dict[ScenarioName, RebalanceResult]
    comparison_metrics: dict[ScenarioName, ComparisonMetric]
    failed_scenarios: Annotated[
        dict[ScenarioName, str],
        Meta(description="Scenario -> `INVALID_OPTIONS: <message>` or `SCENARIO_EXECUTION_ERROR: <type>`."),
    ]
    warnings: list[str]


class BatchRebalanceSummary(TypedDict):
    """A what-if batch's result without `results` (`GET /rebalance/operations/{id}/summary`): the
    envelope, byte for byte as it is in the full `BatchRebalanceResult`. Each scenario's result is
    at `GET /rebalance/operations/{id}/results/{scenario_name}`."""

    batch_run_id: Annotated[str, Meta(example="batch_7d41c2aa")]
    run_at_utc: Annotated[str, Meta(format="date-time", example="2026-03-31T18:02:11.482913+00:00")]
    base_snapshot_ids: BaseSnapshotIds
    comparison_metrics: dict[ScenarioName, ComparisonMetric]
    failed_scenarios: Annotated[
        dict[ScenarioName, str],
        Meta(description="Scenario -> `INVALID_OPTIONS: <message>` or `SCENARIO_EXECUTION_ERROR: <type>`."),
    ]
    warnings: list[str]
