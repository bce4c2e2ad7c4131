"""What a batch costs, checked when it arrives (docs/deployment.md, "Request cost").

A batch's memory grows with the instruments its position lines name and with its scenarios: each
scenario prices, sizes and explains every instrument. `batch_cells` is that product; above
DPM_MAX_BATCH_CELLS the batch is refused with 413 `BATCH_TOO_LARGE` before the engine runs, so one
request's peak memory stays within the bound docs/deployment.md states.
"""

from __future__ import annotations

from django.conf import settings

from dpm_async.problems import BATCH_TOO_LARGE, Problem
from rebalance.batch import BatchRebalanceRequest


class BatchTooLarge(Problem):
    status_code = 413
    default_code = BATCH_TOO_LARGE
    default_detail = "The batch costs more than the configured limit."


def batch_cells(batch: BatchRebalanceRequest) -> int:
    """Distinct instruments across positions, model targets and shelf entries, times scenarios."""
    instruments = {position.instrument_id for position in batch.portfolio_snapshot.positions}
    instruments.update(target.instrument_id for target in batch.model_portfolio.targets)
    instruments.update(entry.instrument_id for entry in batch.shelf_entries)
    return len(instruments) * len(batch.scenarios)


def batch_cost_check(batch: BatchRebalanceRequest) -> None:
    """Raises BatchTooLarge when the batch costs more than DPM_MAX_BATCH_CELLS."""
    cells, allowed = batch_cells(batch), settings.DPM_MAX_BATCH_CELLS
    if cells > allowed:
        raise BatchTooLarge(
            f"The batch has {cells} cells (instruments x scenarios); at most {allowed} are allowed. "
            "Split it into smaller batches.",
            extra={"batch_cells": cells, "max_batch_cells": allowed},
        )
