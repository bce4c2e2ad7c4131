"""Request bodies for the worker tests: a big batch that runs for seconds, and a tiny one."""

from __future__ import annotations

from typing import Any

from tests.operations.factories import batch_body


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
