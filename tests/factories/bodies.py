"""Request bodies: a small batch that runs in milliseconds, and a big one that runs for seconds."""

from __future__ import annotations

from typing import Any


def batch_body(**scenarios: dict[str, Any]) -> dict[str, Any]:
    """A small USD portfolio (10,000 USD: 40 AAA at 50 and 8,000 cash); runs in milliseconds."""
    return {
        "portfolio_snapshot": {
            "portfolio_id": "pf_ops",
            "base_currency": "USD",
            "positions": [{"instrument_id": "AAA", "quantity": "40"}],
            "cash_balances": [{"currency": "USD", "amount": "8000.00"}],
        },
        "market_data_snapshot": {
            "prices": [
                {"instrument_id": "AAA", "price": "50.00", "currency": "USD"},
                {"instrument_id": "BBB", "price": "25.00", "currency": "USD"},
            ],
            "fx_rates": [],
        },
        "model_portfolio": {
            "targets": [
                {"instrument_id": "AAA", "weight": "0.5"},
                {"instrument_id": "BBB", "weight": "0.3"},
            ]
        },
        "shelf_entries": [
            {"instrument_id": "AAA", "status": "APPROVED", "asset_class": "EQUITY"},
            {"instrument_id": "BBB", "status": "APPROVED", "asset_class": "FIXED_INCOME"},
        ],
        "scenarios": scenarios or {"baseline": {"options": {}}},
    }


def small_batch() -> dict[str, Any]:
    """Two lines, one scenario: milliseconds of engine time."""
    return batch_body()


def big_batch(lines: int = 3000, scenarios: int = 20) -> dict[str, Any]:
    """`lines` held USD positions, a model over an overlapping set, `scenarios` option variants.

    3000 x 20 runs for ~3 s on the project's 2-core machine (longer with workers beside it), so a
    worker can be killed, stopped or cancelled while it is in the middle of it.
    """
    held = [f"INS{i:06d}" for i in range(lines)]
    targeted = [f"INS{i:06d}" for i in range(lines // 2, lines + lines // 2)]
    universe = sorted(set(held) | set(targeted))
    weight = f"{0.97 / len(targeted):.7f}"
    return {
        "portfolio_snapshot": {
            "portfolio_id": f"pf_big_{lines}",
            "base_currency": "USD",
            "positions": [{"instrument_id": i, "quantity": str(100 + n % 50)} for n, i in enumerate(held)],
            "cash_balances": [{"currency": "USD", "amount": "250000.00"}],
        },
        "market_data_snapshot": {
            "prices": [{"instrument_id": i, "price": f"{10 + n % 490}.25", "currency": "USD"}
                       for n, i in enumerate(universe)],
            "fx_rates": [],
        },
        "model_portfolio": {"targets": [{"instrument_id": i, "weight": weight} for i in targeted]},
        "shelf_entries": [{"instrument_id": i, "status": "APPROVED", "asset_class": "EQUITY"} for i in universe],
        "scenarios": {
            f"s{n:02d}": {"options": {"min_cash_buffer_pct": f"0.{n:03d}", "suppress_dust_trades": n % 2 == 0}}
            for n in range(scenarios)
        },
    }


def lots_batch_body() -> dict[str, Any]:
    """A small CHF portfolio with one foreign holding carrying two tax lots, every optional field used
    somewhere; two scenarios, one with a group constraint."""
    return {
        "portfolio_snapshot": {
            "portfolio_id": "pf_alpine",
            "base_currency": "CHF",
            "positions": [
                {"instrument_id": "NESN", "quantity": "100.0"},
                {
                    "instrument_id": "MSFT",
                    "quantity": "30",
                    "market_value": {"amount": "12000.00", "currency": "USD"},
                    "lots": [
                        {
                            "lot_id": "m1",
                            "quantity": "10",
                            "unit_cost": {"amount": "250.00", "currency": "USD"},
                            "purchase_date": "2021-06-01",
                        },
                        {
                            "lot_id": "m2",
                            "quantity": "20",
                            "unit_cost": {"amount": "310.50", "currency": "USD"},
                            "purchase_date": "2023-02-14",
                        },
                    ],
                },
            ],
            "cash_balances": [
                {"currency": "CHF", "amount": "5000.00", "settled": "4000.00"},
                {"currency": "USD", "amount": "120.5"},
            ],
        },
        "market_data_snapshot": {
            "prices": [
                {"instrument_id": "NESN", "price": "96.10", "currency": "CHF"},
                {"instrument_id": "MSFT", "price": "402.25", "currency": "USD"},
                {"instrument_id": "VWRL", "price": "118.40", "currency": "CHF"},
            ],
            "fx_rates": [{"pair": "USD/CHF", "rate": "0.8790"}],
        },
        "model_portfolio": {
            "targets": [
                {"instrument_id": "NESN", "weight": "0.30"},
                {"instrument_id": "VWRL", "weight": "0.65"},
            ]
        },
        "shelf_entries": [
            {
                "instrument_id": "NESN",
                "status": "APPROVED",
                "asset_class": "EQUITY",
                "attributes": {"sector": "STAPLES", "region": "CH"},
            },
            {
                "instrument_id": "MSFT",
                "status": "SELL_ONLY",
                "settlement_days": 1,
                "min_notional": {"amount": "500", "currency": "USD"},
            },
            {
                "instrument_id": "VWRL",
                "status": "APPROVED",
                "asset_class": "FUND",
                "liquidity_tier": "L1",
                "issuer_id": "VANGUARD",
            },
        ],
        "scenarios": {
            "with-cap": {
                "description": "Staples capped",
                "options": {"group_constraints": {"sector:STAPLES": {"max_weight": "0.2"}}},
            },
            "baseline": {},
        },
    }


def support_batch() -> dict[str, Any]:
    """20 scenarios of the small portfolio whose AAA holding carries a trusted market value ten times
    its price: `trusted` values by it, sells more than is held and is BLOCKED (NO_SHORTING);
    `invalid` FAILS on its options; the other 18 are READY."""
    scenarios: dict[str, dict[str, Any]] = {
        f"s{n:02d}": {"options": {"min_cash_buffer_pct": f"0.0{n % 10}"}} for n in range(18)
    }
    scenarios["trusted"] = {"options": {"valuation_mode": "TRUST_SNAPSHOT"}}
    scenarios["invalid"] = {"options": {"max_turnover_pct": "1.5"}}
    body = batch_body(**scenarios)
    body["portfolio_snapshot"]["positions"][0]["market_value"] = {"amount": "20000.00", "currency": "USD"}
    return body
