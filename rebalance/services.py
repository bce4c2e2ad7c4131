"""Batch what-if analysis (spec/engine.md section 5): the one function that runs a batch.

The synchronous view, INLINE execution, `…/execute` and the worker task all call
`rebalance_analyze_batch`, so a finished operation's result is byte-for-byte the shape the
synchronous endpoint returns.

The result is produced as encoded JSON, scenario by scenario: each scenario's result is converted
and encoded as soon as it is computed and its Python objects are freed, so a 20-scenario batch of
2000-line portfolios (~70 MB of JSON) never holds more than one scenario in object form. The
caller chooses what is kept of each scenario's text (`keep`): the text itself, or a compressed
frame of it (a worker keeps ~6 MB instead of ~70 MB).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from dpm_async.renderers import json_dumps
from rebalance.batch import BaseSnapshotIds, BatchRebalanceRequest, ScenarioStatus
from rebalance.engine import prepare_inputs, result_to_wire, run_rebalance, scenario_comparison_metric
from rebalance.engine.wire_types import ComparisonMetric
from rebalance.metrics import SCENARIOS_RUN
from rebalance.options import OptionsInvalid, engine_options_parse

logger = logging.getLogger(__name__)

PARTIAL_BATCH_FAILURE = "PARTIAL_BATCH_FAILURE"
INVALID_OPTIONS = "INVALID_OPTIONS"
SCENARIO_EXECUTION_ERROR = "SCENARIO_EXECUTION_ERROR"
SCENARIO_FAILED: ScenarioStatus = "FAILED"


def batch_run_id_generate() -> str:
    return f"batch_{secrets.token_hex(4)}"


@dataclass(frozen=True, slots=True)
class ScenarioText:
    """One scenario's `RebalanceResult`: its JSON text as `keep` kept it (`body`), its length, its status."""

    name: str
    status: ScenarioStatus
    body: bytes
    size: int


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Where a batch is when a scenario starts: `current` is about to run; `statuses` (name ->
    READY, PENDING_REVIEW, BLOCKED or FAILED) are the scenarios finished so far, in run order."""

    total: int
    current: str
    statuses: dict[str, ScenarioStatus]

    @property
    def done(self) -> int:
        return len(self.statuses)

    @property
    def failed(self) -> int:
        return sum(1 for status in self.statuses.values() if status == SCENARIO_FAILED)


@dataclass(slots=True)
class BatchOutcome:
    """A finished batch: the envelope's parts and each scenario's kept text, in run order.

    `json()` (identity bodies only) is the `BatchRebalanceResult` the synchronous endpoint answers;
    `head()`, each scenario and `tail()` are its pieces, so it can be streamed and stored by part.
    """

    batch_run_id: str
    run_at_utc: str
    base_snapshot_ids: BaseSnapshotIds
    scenarios: list[ScenarioText] = field(default_factory=list)
    comparison_metrics: dict[str, ComparisonMetric] = field(default_factory=dict)
    failed_scenarios: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def statuses(self) -> dict[str, ScenarioStatus]:
        """Every scenario's status, in run order (code-point order of the names)."""
        statuses: dict[str, ScenarioStatus] = {s.name: s.status for s in self.scenarios}
        statuses.update({name: SCENARIO_FAILED for name in self.failed_scenarios})
        return dict(sorted(statuses.items()))

    def envelope(self) -> bytes:
        """The `BatchRebalanceSummary`: the result without `results`, as JSON text."""
        return self.head() + b"," + self.tail()

    def head(self) -> bytes:
        """`{"batch_run_id":…,"run_at_utc":…,"base_snapshot_ids":{…}` (the object left open)."""
        return batch_envelope_head(self.batch_run_id, self.run_at_utc, self.base_snapshot_ids)

    def tail(self) -> bytes:
        """`"comparison_metrics":…,"failed_scenarios":…,"warnings":[…]}` (closing the object)."""
        return json_dumps(
            {
                "comparison_metrics": self.comparison_metrics,
                "failed_scenarios": self.failed_scenarios,
                "warnings": self.warnings,
            }
        )[1:]

    def json(self) -> bytes:
        """The whole `BatchRebalanceResult` (when `keep` kept the text itself)."""
        return b"".join(batch_result_pieces(self.head(), ((s.name, s.body) for s in self.scenarios), self.tail()))


def batch_envelope_head(batch_run_id: str, run_at_utc: str, base_snapshot_ids: BaseSnapshotIds) -> bytes:
    return orjson.dumps(
        {"batch_run_id": batch_run_id, "run_at_utc": run_at_utc, "base_snapshot_ids": base_snapshot_ids}
    )[:-1]


def batch_result_pieces[T](head: bytes, scenarios: Iterable[tuple[str, T]], tail: bytes) -> Iterator[bytes | T]:
    """The `BatchRebalanceResult` document in order: `head`, `"results":{`, each scenario's name and
    body (`T`: its text, or a compressed frame of it), `},`, `tail`."""
    yield head + b',"results":{'
    for index, (name, body) in enumerate(scenarios):
        yield (b"," if index else b"") + orjson.dumps(name) + b":"
        yield body
    yield b"},"
    yield tail


def _identity(text: bytes) -> bytes:
    return text


def rebalance_analyze_batch(
    batch: BatchRebalanceRequest,
    *,
    correlation_id: str | None,
    before_scenario: Callable[[BatchProgress], None] | None = None,
    keep: Callable[[bytes], bytes] = _identity,
) -> BatchOutcome:
    """Runs every scenario of `batch` and returns its outcome (`.json()` is the encoded
    `BatchRebalanceResult`).

    `correlation_id` is the caller's id (None when the request carried none): scenario correlation
    ids are `<correlation_id>:<name>`, else `<batch_run_id>:<name>`. `before_scenario(progress)` is
    called before each scenario; it may raise to stop the batch (cancellation of a running
    operation), and that exception propagates. `keep(text)` is what is held of each scenario's
    JSON text until the end (e.g. a compressed frame of it).

    A scenario never fails the batch: invalid options become `INVALID_OPTIONS: <message>`, any
    exception while running it `SCENARIO_EXECUTION_ERROR: <exception class>`.
    """
    batch_run_id = batch_run_id_generate()
    prepared = prepare_inputs(batch.inputs)
    base_currency = batch.portfolio_snapshot.base_currency
    prefix = correlation_id or batch_run_id

    outcome = BatchOutcome(batch_run_id, "", batch.base_snapshot_ids())
    statuses: dict[str, ScenarioStatus] = {}
    names = sorted(batch.scenarios)  # code-point order (`-` < digits < `_` < letters), as the reference
    for name in names:
        if before_scenario is not None:
            before_scenario(BatchProgress(len(names), name, dict(statuses)))
        SCENARIOS_RUN.inc()
        try:
            options = engine_options_parse(batch.scenarios[name].options)
        except OptionsInvalid as invalid:
            outcome.failed_scenarios[name] = f"{INVALID_OPTIONS}: {invalid.message}"
            statuses[name] = SCENARIO_FAILED
            continue
        try:
            result = run_rebalance(
                prepared,
                options,
                request_hash=f"{batch_run_id}:{name}",
                correlation_id=f"{prefix}:{name}",
            )
            wire = result_to_wire(result)
            metric = scenario_comparison_metric(result, base_currency)
            text = orjson.dumps(wire)
        except Exception as error:  # scenario isolation: one scenario's fault never fails the batch
            logger.exception("scenario %s of %s failed", name, batch_run_id)
            outcome.failed_scenarios[name] = f"{SCENARIO_EXECUTION_ERROR}: {type(error).__name__}"
            statuses[name] = SCENARIO_FAILED
            continue
        del result, wire
        outcome.scenarios.append(ScenarioText(name, metric["status"], keep(text), len(text)))
        outcome.comparison_metrics[name] = metric
        statuses[name] = metric["status"]
        del text

    outcome.run_at_utc = datetime.now(UTC).isoformat()
    if outcome.failed_scenarios:
        outcome.warnings.append(PARTIAL_BATCH_FAILURE)
    return outcome
