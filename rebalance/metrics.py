"""The rebalance domain's Prometheus metric (docs/deployment.md, "Monitoring")."""

from __future__ import annotations

from prometheus_client import Counter

SCENARIOS_RUN = Counter(
    "dpm_scenarios_run", "Scenarios started, by the synchronous endpoint and by operations alike.",
)
