"""Settlement-aware cash ladder (spec 3.16, path D)."""

from __future__ import annotations

from rebalance.engine import CashBalance
from tests.factories.engine import D, build, rule, run, shelf_entry, trades


def _slow_to_fast(cash: list[CashBalance] | None = None) -> dict:
    return build(
        cash=cash if cash is not None else {"USD": "0"},
        positions={"SLOW": "20"},
        prices={"SLOW": "50", "FAST": "25"},
        model={"FAST": "1.0"},
        shelf={"SLOW": shelf_entry("SLOW", settlement_days=4), "FAST": shelf_entry("FAST", settlement_days=2)},
    )


def test_buy_settling_before_the_funding_sell_breaches_and_blocks() -> None:
    result, wire = run(_slow_to_fast(), enable_settlement_awareness=True, settlement_horizon_days=2)
    ladder = [(p["date_offset"], p["currency"], p["projected_balance"]) for p in wire["diagnostics"]["cash_ladder"]]
    assert ladder == [(0, "USD", "0"), (1, "USD", "0"), (2, "USD", "-1000"), (3, "USD", "-1000"), (4, "USD", "0")]
    assert wire["diagnostics"]["cash_ladder_breaches"] == [
        {"date_offset": 2, "currency": "USD", "projected_balance": "-1000", "allowed_floor": "0",
         "reason_code": "OVERDRAFT_ON_T_PLUS_2"},
        {"date_offset": 3, "currency": "USD", "projected_balance": "-1000", "allowed_floor": "0",
         "reason_code": "OVERDRAFT_ON_T_PLUS_3"},
    ]
    assert result.status == "BLOCKED"
    assert wire["diagnostics"]["warnings"] == ["OVERDRAFT_ON_T_PLUS_2"]
    assert wire["rule_results"] == [
        {
            "rule_id": "SETTLEMENT_CASH_LADDER",
            "severity": "HARD",
            "status": "FAIL",
            "measured": "1000",
            "threshold": {"min": "0"},
            "reason_code": "OVERDRAFT_ON_T_PLUS_2",
            "remediation_hint": "Adjust timing, funding, or overdraft settings.",
        }
    ]
    # The intents are still returned; the after state is the unchanged portfolio.
    assert trades(wire) == [("SLOW", "SELL", "20"), ("FAST", "BUY", "40")]
    assert wire["after_simulated"] == wire["before"]
    assert wire["reconciliation"] is None
    assert wire["explanation"]["summary"] == "BLOCKED"
    assert wire["universe"]["coverage"]["price_coverage_pct"] == "1"
    assert wire["gate_decision"]["reasons"][0]["reason_code"] == "HARD_RULE_FAIL:SETTLEMENT_CASH_LADDER"


def test_overdraft_allowance_absorbs_the_gap_and_is_reported() -> None:
    result, wire = run(
        _slow_to_fast(), enable_settlement_awareness=True, max_overdraft_by_ccy={"USD": "1000"}
    )
    assert wire["diagnostics"]["cash_ladder_breaches"] == []
    assert wire["diagnostics"]["warnings"] == ["SETTLEMENT_OVERDRAFT_UTILIZED"]
    assert result.status == "READY"


def test_settlement_awareness_off_ignores_timing() -> None:
    result, wire = run(_slow_to_fast())
    assert wire["diagnostics"]["cash_ladder"] == []
    assert result.status == "READY"


def test_settled_cash_seeds_day_zero() -> None:
    inputs = build(
        cash=[CashBalance("USD", D("1000"), settled=D("200"), pending=D("800"))],
        prices={"A": "10"},
        model={"A": "1.0"},
        shelf={"A": shelf_entry("A", settlement_days=1)},
    )
    result, wire = run(inputs, enable_settlement_awareness=True, settlement_horizon_days=1, fx_settlement_days=0)
    assert [p["projected_balance"] for p in wire["diagnostics"]["cash_ladder"]] == ["200", "-800"]
    assert result.status == "BLOCKED"


def test_ladder_covers_every_currency_touched_by_fx_legs() -> None:
    inputs = build(base="SGD", cash={"SGD": "1000"}, prices={"US": ("10", "USD")}, fx={"USD/SGD": "1.25"}, model={"US": "0.5"})
    result, wire = run(inputs, enable_settlement_awareness=True, settlement_horizon_days=2, fx_settlement_days=1)
    ladder = wire["diagnostics"]["cash_ladder"]
    assert sorted({p["currency"] for p in ladder}) == ["SGD", "USD"]
    usd = [p["projected_balance"] for p in ladder if p["currency"] == "USD"]
    # The funding FX delivers 400 x 1.01 = 404.00 USD on T+1; the 40 shares (400 USD) settle on T+2.
    assert usd == ["0", "404.00", "4.00"]
    assert result.status == "READY"
    assert rule(wire, "INSUFFICIENT_CASH")["status"] == "PASS"
