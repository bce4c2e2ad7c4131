"""Examples for the OpenAPI document: a request, and the result it could give.

They are checked against the document itself (tests/api/test_openapi_contract.py), so they cannot
drift from the shapes.
"""

from __future__ import annotations

from typing import Any

from dpm_async.openapi import shape_example
from rebalance.batch import BatchRebalanceRequest, BatchRebalanceResult
from rebalance.engine.wire_types import (
    AllocationMetric,
    MoneyResult,
    PositionSummary,
    RebalanceResult,
    SimulatedState,
)

REQUEST_EXAMPLE: dict[str, Any] = {
    "portfolio_snapshot": {
        "snapshot_id": "ps_2026_03_31_eod",
        "portfolio_id": "pf_household_042",
        "base_currency": "CHF",
        "positions": [
            {"instrument_id": "CH0012032048", "quantity": "120"},
            {
                "instrument_id": "US0378331005",
                "quantity": "40",
                "lots": [
                    {
                        "lot_id": "lot_a",
                        "quantity": "25",
                        "unit_cost": {"amount": "142.10", "currency": "USD"},
                        "purchase_date": "2022-05-04",
                    },
                    {
                        "lot_id": "lot_b",
                        "quantity": "15",
                        "unit_cost": {"amount": "188.75", "currency": "USD"},
                        "purchase_date": "2024-01-19",
                    },
                ],
            },
        ],
        "cash_balances": [{"currency": "CHF", "amount": "15000.00"}, {"currency": "USD", "amount": "850.00"}],
    },
    "market_data_snapshot": {
        "snapshot_id": "md_2026_03_31",
        "prices": [
            {"instrument_id": "CH0012032048", "price": "265.40", "currency": "CHF"},
            {"instrument_id": "US0378331005", "price": "201.30", "currency": "USD"},
            {"instrument_id": "IE00B4L5Y983", "price": "98.12", "currency": "USD"},
        ],
        "fx_rates": [{"pair": "USD/CHF", "rate": "0.8812"}],
    },
    "model_portfolio": {
        "targets": [
            {"instrument_id": "CH0012032048", "weight": "0.35"},
            {"instrument_id": "US0378331005", "weight": "0.15"},
            {"instrument_id": "IE00B4L5Y983", "weight": "0.45"},
        ]
    },
    "shelf_entries": [
        {
            "instrument_id": "CH0012032048",
            "status": "APPROVED",
            "asset_class": "EQUITY",
            "attributes": {"sector": "HEALTH"},
        },
        {
            "instrument_id": "US0378331005",
            "status": "APPROVED",
            "asset_class": "EQUITY",
            "settlement_days": 1,
            "attributes": {"sector": "TECH"},
        },
        {
            "instrument_id": "IE00B4L5Y983",
            "status": "APPROVED",
            "asset_class": "FUND",
            "liquidity_tier": "L1",
            "attributes": {"sector": "DIVERSIFIED"},
        },
    ],
    "scenarios": {
        "baseline": {"description": "Engine defaults", "options": {}},
        "tech-cap": {
            "description": "TECH capped at 10% with a 20% turnover budget",
            "options": {
                "group_constraints": {"sector:TECH": {"max_weight": "0.10"}},
                "max_turnover_pct": "0.20",
            },
        },
    },
}


def _result_example() -> BatchRebalanceResult:
    def money(amount: str, currency: str = "CHF") -> MoneyResult:
        return {"amount": amount, "currency": currency}

    def state(
        cash: str, position_qty: str, position_value: str, weight: str, cash_weight: str
    ) -> SimulatedState:
        position: PositionSummary = {
            "instrument_id": "CH0012032048",
            "quantity": position_qty,
            "instrument_currency": "CHF",
            "asset_class": "EQUITY",
            "price": money("265.40"),
            "value_in_instrument_ccy": money(position_value),
            "value_in_base_ccy": money(position_value + "0"),
            "weight": weight,
        }
        metric: AllocationMetric = {"key": "CH0012032048", "weight": weight, "value": money(position_value + "0")}
        return {
            "total_value": money("47848.00"),
            "cash_balances": [{"currency": "CHF", "amount": cash, "settled": None, "pending": None}],
            "positions": [position],
            "allocation_by_asset_class": [
                {"key": "EQUITY", "weight": weight, "value": money(position_value + "0")},
                {"key": "CASH", "weight": cash_weight, "value": money(cash)},
            ],
            "allocation_by_instrument": [metric],
            "allocation": [metric],
            "allocation_by_attribute": {
                "sector": [{"key": "HEALTH", "weight": weight, "value": money(position_value + "0")}]
            },
        }

    result: RebalanceResult = {
        "rebalance_run_id": "rr_5b2e9c11",
        "correlation_id": "corr_3f6a8d0c2b7e4a91b5c1d9e0f2a4b6c8:baseline",
        "status": "READY",
        "before": state("15000.00", "120", "31848.00", "0.6656", "0.3135"),
        "universe": {
            "universe_id": "u_rr_5b2e9c11",
            "eligible_for_buy": ["CH0012032048"],
            "eligible_for_sell": ["CH0012032048"],
            "excluded": [],
            "coverage": {"price_coverage_pct": "1", "fx_coverage_pct": "1"},
        },
        "target": {
            "target_id": "t_rr_5b2e9c11",
            "strategy": {},
            "targets": [
                {
                    "instrument_id": "CH0012032048",
                    "model_weight": "0.95",
                    "final_weight": "0.95",
                    "final_value": money("45455.6000"),
                    "tags": [],
                }
            ],
        },
        "intents": [
            {
                "intent_type": "SECURITY_TRADE",
                "intent_id": "oi_1",
                "instrument_id": "CH0012032048",
                "side": "BUY",
                "quantity": "51",
                "notional": money("13535.40"),
                "notional_base": money("13535.400"),
                "dependencies": [],
                "rationale": {"code": "DRIFT_REBALANCE", "message": "Align"},
                "constraints_applied": [],
            }
        ],
        "after_simulated": state("1464.60", "171", "45383.40", "0.9485", "0.0306"),
        "reconciliation": {
            "before_total_value": money("47848.00"),
            "after_total_value": money("47848.00"),
            "delta": money("0.00"),
            "tolerance": money("24.424000"),
            "status": "OK",
        },
        "tax_impact": None,
        "rule_results": [
            {
                "rule_id": "CASH_BAND",
                "severity": "SOFT",
                "status": "PASS",
                "measured": "0.03060943",
                "threshold": {"min": "0.00", "max": "1.00"},
                "reason_code": "OK",
                "remediation_hint": None,
            }
        ],
        "explanation": {"summary": "READY", "target_method_comparison": None},
        "diagnostics": {
            "warnings": [],
            "suppressed_intents": [],
            "dropped_intents": [],
            "group_constraint_events": [],
            "tax_budget_constraint_events": [],
            "cash_ladder": [],
            "cash_ladder_breaches": [],
            "missing_fx_pairs": [],
            "funding_plan": [],
            "insufficient_cash": [],
            "data_quality": {"price_missing": [], "fx_missing": [], "shelf_missing": []},
        },
        "gate_decision": {
            "gate": "EXECUTION_READY",
            "recommended_next_step": "EXECUTE",
            "reasons": [],
            "summary": {
                "hard_fail_count": 0,
                "soft_fail_count": 0,
                "new_high_suitability_count": 0,
                "new_medium_suitability_count": 0,
            },
        },
        "lineage": {
            "portfolio_snapshot_id": "pf_household_042",
            "market_data_snapshot_id": "md",
            "request_hash": "batch_7d41c2aa:baseline",
            "idempotency_key": None,
            "engine_version": None,
        },
    }
    return {
        "batch_run_id": "batch_7d41c2aa",
        "run_at_utc": "2026-03-31T18:02:11.482913+00:00",
        "base_snapshot_ids": {
            "portfolio_snapshot_id": "ps_2026_03_31_eod",
            "market_data_snapshot_id": "md_2026_03_31",
        },
        "results": {"baseline": result},
        "comparison_metrics": {
            "baseline": {
                "status": "READY",
                "security_intent_count": 1,
                "gross_turnover_notional_base": money("13535.400"),
            }
        },
        "failed_scenarios": {
            "tech-cap": "INVALID_OPTIONS: Value error, group_constraints keys must use format '<attribute_key>:<attribute_value>'"
        },
        "warnings": ["PARTIAL_BATCH_FAILURE"],
    }


RESULT_EXAMPLE = _result_example()


def examples_register() -> None:
    """Shows the two examples on the request's and the result's components."""
    shape_example(BatchRebalanceRequest, REQUEST_EXAMPLE)
    shape_example(BatchRebalanceResult, RESULT_EXAMPLE)
