"""The stored results of SUCCEEDED operations: how they are read, whole or in parts.

A result is stored in parts (docs/operations.md, "Storage"): the envelope on the operation's row
(`result_envelope`: everything but `results`, a few KB) and one `OperationScenarioResult` row per
scenario holding a zstd frame of that scenario's `RebalanceResult` text. The whole
`BatchRebalanceResult` is rebuilt from them as a sequence of pieces (dpm_async/encoding.py): the
envelope's head, each scenario's name and stored frame, its tail. The frames are fetched one row
per query as the answer is sent, so serving a 470 MB result holds one scenario's frame at a time,
on PostgreSQL and SQLite alike.

These are also the reads the support console builds on: each scenario's verdict (status, failure
reason, comparison metric) from the operation's row alone, and the full result as a stream.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from django.db.models import TextField
from django.db.models.functions import Cast, Length, Substr

from dpm_async.encoding import IDENTITY, Frame, Piece, body_encode, frame_text
from operations.errors import ScenarioResultNotFound
from operations.models import Operation, OperationScenarioResult
from rebalance.batch import ScenarioStatus
from rebalance.engine.wire_types import ComparisonMetric, RuleResult
from rebalance.services import batch_envelope_head, batch_result_pieces

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ResultEnvelope:
    """A SUCCEEDED operation's envelope, parsed, and the exact text of its two halves."""

    fields: dict[str, Any]
    head: bytes
    tail: bytes

    @property
    def comparison_metrics(self) -> dict[str, ComparisonMetric]:
        metrics: dict[str, ComparisonMetric] = self.fields["comparison_metrics"]
        return metrics

    @property
    def failed_scenarios(self) -> dict[str, str]:
        failed: dict[str, str] = self.fields["failed_scenarios"]
        return failed

    @property
    def warnings(self) -> list[str]:
        warnings: list[str] = self.fields["warnings"]
        return warnings


def operation_result_envelope(operation: Operation) -> ResultEnvelope | None:
    """The envelope of a SUCCEEDED operation (None otherwise), from its row alone.

    The stored text is `head + "," + tail` of the full result's envelope, head being
    `{"batch_run_id":…,"run_at_utc":…,"base_snapshot_ids":{…}` as the batch runner writes it:
    re-encoding those three fields gives its exact length back (checked)."""
    text = operation.result_envelope
    if text is None:
        return None
    fields = orjson.loads(text)
    head = batch_envelope_head(fields["batch_run_id"], fields["run_at_utc"], fields["base_snapshot_ids"])
    if not text.startswith(head + b","):
        raise ValueError(f"the stored envelope of operation {operation.id} does not start with its head")
    return ResultEnvelope(fields, head, text[len(head) + 1:])


@dataclass(frozen=True, slots=True)
class ScenarioVerdict:
    """What became of one scenario: its status and, when it FAILED, why; else its comparison metric."""

    name: str
    status: ScenarioStatus
    failed_reason: str | None
    comparison_metric: ComparisonMetric | None


def operation_scenario_verdicts(operation: Operation) -> list[ScenarioVerdict]:
    """Every scenario finished so far, in run order, with its verdict; no result row is read.

    While the operation runs (or once it failed) the statuses are its progress so far; once it
    SUCCEEDED the envelope adds each failure's reason and each result's comparison metric."""
    envelope = operation_result_envelope(operation)
    metrics = envelope.comparison_metrics if envelope else {}
    failed = envelope.failed_scenarios if envelope else {}
    return [
        ScenarioVerdict(name, status, failed.get(name), metrics.get(name))
        for name, status in sorted((operation.scenario_statuses or {}).items())
    ]


def _body_of(result_id: int) -> bytes:
    body = OperationScenarioResult.objects.filter(pk=result_id).values_list("body", flat=True).first()
    if body is None:
        # Purged (expired) while its answer was being sent: the answer cannot be completed, and
        # the server ends the connection short of the announced length.
        logger.error("scenario result %s disappeared while it was being served", result_id)
        raise LookupError(f"scenario result {result_id} is gone")
    return bytes(body)


def operation_result_pieces(operation: Operation) -> Iterator[Piece]:
    """The operation's `BatchRebalanceResult` as pieces: text, and each scenario's stored frame,
    fetched only when its turn comes. One query lists the scenarios (names, sizes, no bodies)."""
    envelope = operation_result_envelope(operation)
    if envelope is None:
        raise ValueError(f"operation {operation.id} has no result")
    rows = (
        OperationScenarioResult.objects.filter(operation_id=operation.id)
        .order_by("position")
        .annotate(stored_size=Length("body"))
        .values_list("pk", "name", "size", "stored_size")
    )
    frames = [
        (name, Frame(functools.partial(_body_of, pk), size, stored_size)) for pk, name, size, stored_size in rows
    ]
    return batch_result_pieces(envelope.head, frames, envelope.tail)


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    """One stored scenario result: a zstd frame of its `RebalanceResult` text."""

    name: str
    status: str
    frame: Frame

    def text(self) -> bytes:
        return frame_text(self.frame.load())


def operation_scenario_result(operation: Operation, scenario_name: str) -> ScenarioResult:
    """The stored result of `scenario_name` in a SUCCEEDED operation, one row read by the unique
    (operation, name) index. ScenarioResultNotFound (404) for a name with no result: not a
    scenario of the batch, or one that failed (its reason is in the envelope)."""
    row = (
        OperationScenarioResult.objects.filter(operation_id=operation.id, name=scenario_name)
        .values_list("name", "status", "size", "body")
        .first()
    )
    if row is None:
        verdict = next((v for v in operation_scenario_verdicts(operation) if v.name == scenario_name), None)
        raise ScenarioResultNotFound(operation.id, scenario_name, verdict.failed_reason if verdict else None)
    name, status, size, body = row
    data = bytes(body)
    return ScenarioResult(name, status, Frame(data, size, len(data)))


# The rule results sit between `after_simulated` and `explanation` in every scenario's text (the
# key order of RebalanceResult). Found by their keys at the top level: inside a JSON string a quote
# is escaped, so `,"rule_results":` cannot occur there.
_RULE_RESULTS_KEY = b',"rule_results":'
_EXPLANATION_KEY = b',"explanation":'


@dataclass(frozen=True, slots=True)
class ScenarioRules:
    """One stored scenario's rule results (the support console's verdict table)."""

    name: str
    status: str
    rule_results: list[RuleResult]


def _rule_results_of(text: bytes) -> list[RuleResult]:
    start = text.rfind(_RULE_RESULTS_KEY)
    end = text.find(_EXPLANATION_KEY, start)
    if start < 0 or end < 0:
        raise ValueError("a stored scenario result has no rule_results")
    rules: list[RuleResult] = orjson.loads(text[start + len(_RULE_RESULTS_KEY):end])
    return rules


def operation_rule_results(operation: Operation) -> Iterator[ScenarioRules]:
    """Each stored scenario's rule results, in run order, one scenario's row read at a time.

    A scenario's text is up to ~4 MB (2,000 positions); only its `rule_results` are parsed, so the
    detail page of a 20-scenario, 70 MB result costs 20 small reads and decompressions, and holds
    one scenario's text at a time. Failed scenarios have no row (their reason is in the envelope).
    """
    rows = (
        OperationScenarioResult.objects.filter(operation_id=operation.id)
        .order_by("position").values_list("pk", "name", "status")
    )
    for pk, name, status in list(rows):
        yield ScenarioRules(name, status, _rule_results_of(frame_text(_body_of(pk))))


def operation_result_size(operation: Operation) -> int | None:
    """The length of the whole result text (what an identity download sends); None without one."""
    if operation.result_envelope is None:
        return None
    return body_encode(operation_result_pieces(operation), IDENTITY).length


def operation_request_chunks(operation_id: str, *, chunk_chars: int = 1 << 20) -> Iterator[bytes]:
    """The stored request's text, `chunk_chars` characters per query: a download of a request of
    tens of MB never holds more than one chunk in the web process (the database cuts the text)."""
    text = Cast("request", TextField())
    offset = 1
    while True:
        chunk = (
            Operation.objects.filter(pk=operation_id)
            .annotate(chunk=Substr(text, offset, chunk_chars)).values_list("chunk", flat=True).first()
        )
        if not chunk:
            return
        yield chunk.encode("utf-8")
        if len(chunk) < chunk_chars:
            return
        offset += chunk_chars


def operation_request_length(operation_id: str) -> int:
    """How many characters the stored request has (read by the database, not loaded here)."""
    length = (
        Operation.objects.filter(pk=operation_id)
        .annotate(chars=Length(Cast("request", TextField()))).values_list("chars", flat=True).first()
    )
    return int(length or 0)
