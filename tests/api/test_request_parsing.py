"""Request validation (rebalance/parsing.py, rebalance/schemas.py, rebalance/messages.py) and scenario
options (rebalance/options.py): parsing into engine inputs, field-path errors, option messages."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

import pytest

from dpm_async.decimals import DECIMAL_MESSAGE
from dpm_async.problems import RequestInvalid
from rebalance.batch import BatchRebalanceRequest
from rebalance.engine import models as em
from rebalance.options import OptionsInvalid, engine_options_parse
from rebalance.parsing import batch_request_parse
from tests.factories.bodies import lots_batch_body as body


def options_of(batch: BatchRebalanceRequest) -> dict[str, Any]:
    return {name: scenario.options for name, scenario in batch.scenarios.items()}


def errors_of(data: Any) -> list[dict[str, str]]:
    with pytest.raises(RequestInvalid) as raised:
        batch_request_parse(data)
    return raised.value.errors


def error_for(data: Any, field: str) -> str:
    errors = errors_of(data)
    messages = [e["message"] for e in errors if e["field"] == field]
    assert messages, f"no error on {field}: {errors}"
    return messages[0]


# ------------------------------------------------------------------------------------------------
# A valid body becomes the engine's inputs
# ------------------------------------------------------------------------------------------------


def test_minimal_body_parses_to_engine_objects() -> None:
    batch = batch_request_parse(body())

    assert batch.inputs == em.RebalanceInputs(
        portfolio=em.PortfolioSnapshot(
            portfolio_id="pf_alpine",
            base_currency="CHF",
            positions=[
                em.Position("NESN", Decimal("100.0")),
                em.Position(
                    "MSFT",
                    Decimal("30"),
                    em.Money(Decimal("12000.00"), "USD"),
                    [
                        em.TaxLot("m1", Decimal("10"), em.Money(Decimal("250.00"), "USD"), "2021-06-01"),
                        em.TaxLot("m2", Decimal("20"), em.Money(Decimal("310.50"), "USD"), "2023-02-14"),
                    ],
                ),
            ],
            cash_balances=[
                em.CashBalance("CHF", Decimal("5000.00"), Decimal("4000.00"), None),
                em.CashBalance("USD", Decimal("120.5")),
            ],
            snapshot_id=None,
        ),
        market_data=em.MarketDataSnapshot(
            prices=[
                em.Price("NESN", Decimal("96.10"), "CHF"),
                em.Price("MSFT", Decimal("402.25"), "USD"),
                em.Price("VWRL", Decimal("118.40"), "CHF"),
            ],
            fx_rates=[em.FxRate("USD/CHF", Decimal("0.8790"))],
        ),
        model=em.ModelPortfolio(
            [em.ModelTarget("NESN", Decimal("0.30")), em.ModelTarget("VWRL", Decimal("0.65"))]
        ),
        shelf=[
            em.ShelfEntry("NESN", "APPROVED", "EQUITY", attributes={"sector": "STAPLES", "region": "CH"}),
            em.ShelfEntry(
                "MSFT",
                "SELL_ONLY",
                "UNKNOWN",
                settlement_days=1,
                min_notional=em.Money(Decimal("500"), "USD"),
            ),
            em.ShelfEntry("VWRL", "APPROVED", "FUND", issuer_id="VANGUARD", liquidity_tier="L1"),
        ],
    )
    assert type(batch.inputs.portfolio.positions[0]) is em.Position
    # Scenarios in code-point order, options untouched (validated per scenario later).
    assert list(batch.scenarios) == ["baseline", "with-cap"]
    assert options_of(batch) == {
        "baseline": {},
        "with-cap": {"group_constraints": {"sector:STAPLES": {"max_weight": "0.2"}}},
    }
    assert {name: scenario.description for name, scenario in batch.scenarios.items()} == {
        "baseline": None, "with-cap": "Staples capped"
    }
    assert batch.base_snapshot_ids() == {"portfolio_snapshot_id": "pf_alpine", "market_data_snapshot_id": "md"}


def test_decimal_scale_is_kept_and_json_numbers_never_pass_through_float() -> None:
    raw = (
        json.dumps(body())
        .replace('"quantity": "100.0"', '"quantity": 100.0')
        .replace('"weight": "0.30"', '"weight": 0.1')
    )
    batch = batch_request_parse(json.loads(raw, parse_float=Decimal))

    quantity = batch.inputs.portfolio.positions[0].quantity
    assert quantity == Decimal("100.0") and str(quantity) == "100.0"
    assert str(batch.inputs.model.targets[0].weight) == "0.1"
    assert str(batch.inputs.market_data.prices[0].price) == "96.10"


def test_integers_are_accepted_for_decimals() -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][0]["quantity"] = 100
    assert batch_request_parse(data).inputs.portfolio.positions[0].quantity == Decimal(100)


def test_snapshot_ids_are_used_when_given() -> None:
    data = body()
    data["portfolio_snapshot"]["snapshot_id"] = "ps_2026_04_30"
    data["market_data_snapshot"]["snapshot_id"] = "md_2026_04_30"
    batch = batch_request_parse(data)
    assert batch.base_snapshot_ids() == {
        "portfolio_snapshot_id": "ps_2026_04_30", "market_data_snapshot_id": "md_2026_04_30"
    }


def test_unknown_keys_and_a_stray_top_level_options_are_ignored() -> None:
    data = body()
    data["options"] = {"target_method": "NOT_CHECKED_HERE"}
    data["portfolio_snapshot"]["positions"][0]["colour"] = "blue"
    data["shelf_entries"][0]["extra"] = {"nested": [1, 2]}
    assert batch_request_parse(data).inputs == batch_request_parse(body()).inputs


def test_optional_lists_default_to_empty() -> None:
    data = body()
    del data["portfolio_snapshot"]["positions"], data["portfolio_snapshot"]["cash_balances"]
    del data["market_data_snapshot"]["prices"], data["market_data_snapshot"]["fx_rates"]
    batch = batch_request_parse(data)
    assert batch.inputs.portfolio.positions == [] and batch.inputs.portfolio.cash_balances == []
    assert batch.inputs.market_data == em.MarketDataSnapshot()


def test_lots_within_tolerance_are_accepted() -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][1]["lots"][1]["quantity"] = "20.0001"
    batch_request_parse(data)


def test_twenty_scenarios_are_accepted() -> None:
    data = body()
    data["scenarios"] = {f"s{i:02d}": {"options": {}} for i in range(20)}
    assert len(batch_request_parse(data).scenarios) == 20


# ------------------------------------------------------------------------------------------------
# Errors: field paths and messages
# ------------------------------------------------------------------------------------------------


def test_body_that_is_not_an_object_is_one_error_without_field() -> None:
    assert errors_of([1, 2]) == [{"field": "", "message": "must be a JSON object"}]
    assert errors_of("text") == [{"field": "", "message": "must be a JSON object"}]


def test_missing_fields() -> None:
    data = body()
    del data["shelf_entries"]
    del data["portfolio_snapshot"]["positions"][1]["lots"][0]["purchase_date"]
    del data["model_portfolio"]["targets"]
    assert errors_of(data) == [
        {"field": "portfolio_snapshot.positions[1].lots[0].purchase_date", "message": "is required"},
        {"field": "model_portfolio.targets", "message": "is required"},
        {"field": "shelf_entries", "message": "is required"},
    ]


def test_wrong_types() -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][0]["instrument_id"] = 42  # no coercion into strings
    data["portfolio_snapshot"]["cash_balances"] = {"CHF": "1"}
    data["market_data_snapshot"]["prices"][0] = "NESN"
    data["model_portfolio"]["targets"][0]["weight"] = True  # a bool is not a decimal
    data["shelf_entries"][1]["settlement_days"] = "soon"
    assert errors_of(data) == [
        {"field": "portfolio_snapshot.positions[0].instrument_id", "message": "must be a string"},
        {"field": "portfolio_snapshot.cash_balances", "message": "must be a list"},
        {"field": "market_data_snapshot.prices[0]", "message": "must be a JSON object"},
        {"field": "model_portfolio.targets[0].weight", "message": DECIMAL_MESSAGE},
        {"field": "shelf_entries[1].settlement_days", "message": "must be an integer"},
    ]


def test_enums_and_integer_bounds() -> None:
    data = body()
    data["shelf_entries"][0]["status"] = "approved"
    data["shelf_entries"][1]["liquidity_tier"] = "L6"
    data["shelf_entries"][2]["settlement_days"] = 11
    assert errors_of(data) == [
        {
            "field": "shelf_entries[0].status",
            "message": "must be one of 'APPROVED', 'RESTRICTED', 'BANNED', 'SUSPENDED' or 'SELL_ONLY'",
        },
        {
            "field": "shelf_entries[1].liquidity_tier",
            "message": "must be one of 'L1', 'L2', 'L3', 'L4' or 'L5'",
        },
        {"field": "shelf_entries[2].settlement_days", "message": "must be less than or equal to 10"},
    ]


def test_strings_must_be_non_empty_bounded_and_free_of_control_characters() -> None:
    data = body()
    data["portfolio_snapshot"]["portfolio_id"] = ""
    data["portfolio_snapshot"]["base_currency"] = "SWISS-FRANC-CURRENCY"
    data["market_data_snapshot"]["prices"][0]["instrument_id"] = "NE\x00SN"
    data["shelf_entries"][0]["attributes"] = {"sector": 7}
    assert errors_of(data) == [
        {"field": "portfolio_snapshot.portfolio_id", "message": "must not be empty"},
        {"field": "portfolio_snapshot.base_currency", "message": "must be at most 16 characters"},
        {
            "field": "market_data_snapshot.prices[0].instrument_id",
            "message": "must not contain control characters",
        },
        {"field": "shelf_entries[0].attributes.sector", "message": "must be a string"},
    ]


def test_free_form_currency_strings_are_kept() -> None:
    data = body()
    data["portfolio_snapshot"]["cash_balances"][1]["currency"] = "usd-onshore"
    assert batch_request_parse(data).inputs.portfolio.cash_balances[1].currency == "usd-onshore"


def test_zero_price_and_negative_fx_rate_are_refused() -> None:
    data = body()
    data["market_data_snapshot"]["prices"][2]["price"] = "0.00"
    data["market_data_snapshot"]["fx_rates"][0]["rate"] = "-0.88"
    assert errors_of(data) == [
        {"field": "market_data_snapshot.prices[2].price", "message": "must be greater than 0"},
        {"field": "market_data_snapshot.fx_rates[0].rate", "message": "must be greater than 0"},
    ]


@pytest.mark.parametrize("pair", ["USDCHF", "USD/", "/CHF", "USD/CHF/EUR", ""])
def test_fx_pair_must_have_two_parts(pair: str) -> None:
    data = body()
    data["market_data_snapshot"]["fx_rates"][0]["pair"] = pair
    assert error_for(data, "market_data_snapshot.fx_rates[0].pair") == (
        "must be a currency pair 'BASE/QUOTE' with two non-empty parts, e.g. 'EUR/USD'"
    )


def test_negative_lot_quantity_is_refused() -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][1]["lots"][0]["quantity"] = "-1"
    message = error_for(data, "portfolio_snapshot.positions[1].lots[0].quantity")
    assert message == "must be greater than or equal to 0"


def test_duplicates_in_every_list_name_the_first_index() -> None:
    data = body()
    ps, md = data["portfolio_snapshot"], data["market_data_snapshot"]
    ps["positions"].append({"instrument_id": "NESN", "quantity": "1"})
    ps["cash_balances"].append({"currency": "CHF", "amount": "1"})
    ps["positions"][1]["lots"][1]["lot_id"] = "m1"
    md["prices"].append({"instrument_id": "MSFT", "price": "1", "currency": "USD"})
    md["fx_rates"].append({"pair": "USD/CHF", "rate": "0.9"})
    data["model_portfolio"]["targets"].append({"instrument_id": "VWRL", "weight": "0"})
    data["shelf_entries"].append({"instrument_id": "NESN", "status": "BANNED"})
    assert errors_of(data) == [
        {
            "field": "portfolio_snapshot.positions[2].instrument_id",
            "message": "duplicate instrument_id, first given at portfolio_snapshot.positions[0]",
        },
        {
            "field": "portfolio_snapshot.positions[1].lots[1].lot_id",
            "message": "duplicate lot_id, first given at portfolio_snapshot.positions[1].lots[0]",
        },
        {
            "field": "portfolio_snapshot.cash_balances[2].currency",
            "message": "duplicate currency, first given at portfolio_snapshot.cash_balances[0]",
        },
        {
            "field": "market_data_snapshot.prices[3].instrument_id",
            "message": "duplicate instrument_id, first given at market_data_snapshot.prices[1]",
        },
        {
            "field": "market_data_snapshot.fx_rates[1].pair",
            "message": "duplicate pair, first given at market_data_snapshot.fx_rates[0]",
        },
        {
            "field": "model_portfolio.targets[2].instrument_id",
            "message": "duplicate instrument_id, first given at model_portfolio.targets[1]",
        },
        {
            "field": "shelf_entries[3].instrument_id",
            "message": "duplicate instrument_id, first given at shelf_entries[0]",
        },
    ]


def test_lot_sum_mismatch() -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][1]["lots"][1]["quantity"] = "19"
    assert errors_of(data) == [
        {
            "field": "portfolio_snapshot.positions[1].lots",
            "message": "lot quantities add up to 29, which differs from the position quantity 30 by more than 0.0001",
        },
    ]


@pytest.mark.parametrize(
    "value",
    [
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "-inf",
        "1e999999999",
        "1e-999999",
        "1" * 10_000,
        "1E+18",
        "-1000000000000000000",
        "1" * 41 + ".5",
        "0." + "0" * 40 + "1",
        " 1.0",
        "1_000",
        "",
        "abc",
        Decimal("NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("0E-999999"),
        Decimal("1." + "0" * 10_000),
        Decimal("1E+30"),
        10**40,
        None,
        [],
        {},
        False,
    ],
)
def test_non_finite_huge_tiny_or_malformed_decimals_are_refused(value: Any) -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][0]["quantity"] = value
    assert errors_of(data) == [
        {"field": "portfolio_snapshot.positions[0].quantity", "message": DECIMAL_MESSAGE}
    ]


@pytest.mark.parametrize(
    "value",
    [
        "999999999999999999.9",
        "-0.0000000000000000000000000000000000000001",
        "1e17",
        "+5",
        ".5",
        "0E-40",
        "12345678901234567.89012345678901234567890",
    ],
)
def test_decimals_at_the_edge_of_the_bounds_are_accepted(value: str) -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][0]["quantity"] = value
    assert batch_request_parse(data).inputs.portfolio.positions[0].quantity == Decimal(value)


def test_hostile_numbers_are_refused_quickly() -> None:
    data = body()
    data["portfolio_snapshot"]["positions"][0]["quantity"] = "9" * 1_000_000
    data["market_data_snapshot"]["prices"][0]["price"] = Decimal("1e999999999")
    data["model_portfolio"]["targets"][1]["weight"] = Decimal("1." + "0" * 1_000_000)
    data["shelf_entries"][1]["min_notional"]["amount"] = Decimal("0E-999999999")
    started = time.perf_counter()
    errors = errors_of(data)
    assert time.perf_counter() - started < 0.5
    assert errors == [
        {"field": "portfolio_snapshot.positions[0].quantity", "message": DECIMAL_MESSAGE},
        {"field": "market_data_snapshot.prices[0].price", "message": DECIMAL_MESSAGE},
        {"field": "model_portfolio.targets[1].weight", "message": DECIMAL_MESSAGE},
        {"field": "shelf_entries[1].min_notional.amount", "message": DECIMAL_MESSAGE},
    ]


def test_scenario_count_bounds() -> None:
    data = body()
    data["scenarios"] = {}
    assert errors_of(data) == [{"field": "scenarios", "message": "at least one scenario is required"}]
    data["scenarios"] = {f"s{i:02d}": {} for i in range(21)}
    assert errors_of(data) == [{"field": "scenarios", "message": "scenario count exceeds maximum of 20"}]


@pytest.mark.parametrize("name", ["Baseline", "with space", "x" * 65, "", "é", "a.b", "line\n"])
def test_bad_scenario_names(name: str) -> None:
    data = body()
    data["scenarios"][name] = {}
    errors = errors_of(data)
    assert len(errors) == 1
    assert errors[0]["message"] == r"scenario names must match regex [a-z0-9_\-]{1,64}"
    assert errors[0]["field"].startswith("scenarios")


def test_a_hostile_scenario_name_cannot_break_the_field_path() -> None:
    data = body()
    data["scenarios"]['evil"].x\n' + "y" * 10_000] = {}
    (error,) = errors_of(data)
    # The first 64 characters, JSON-escaped and marked as truncated.
    assert error["field"] == 'scenarios["evil\\"].x\\n' + "y" * 55 + '..."]'
    assert "\n" not in error["field"]


def test_scenario_and_options_shapes() -> None:
    data = body()
    data["scenarios"] = {
        "a-list": {"options": ["target_method", "SOLVER"]},
        "b-null": {"options": None},
        "c-number": 5,
        "d-description": {"description": 17},
    }
    assert errors_of(data) == [
        {"field": "scenarios.a-list.options", "message": "must be a JSON object"},
        {"field": "scenarios.b-null.options", "message": "must be a JSON object"},
        {"field": "scenarios.c-number", "message": "must be a JSON object"},
        {"field": "scenarios.d-description.description", "message": "must be a string"},
    ]


def test_option_content_is_not_validated_at_request_level() -> None:
    data = body()
    data["scenarios"]["bad-options"] = {"options": {"target_method": "MAGIC", "max_turnover_pct": "7"}}
    assert batch_request_parse(data).scenarios["bad-options"].options == {
        "max_turnover_pct": "7",
        "target_method": "MAGIC",
    }


def test_options_too_deep_or_not_json_safe() -> None:
    data = body()
    deep: Any = []
    for _ in range(40):
        deep = [deep]
    data["scenarios"]["baseline"] = {"options": {"nested": deep}}
    data["scenarios"]["with-cap"] = {"options": {"label": "ok\ud800"}}
    errors = errors_of(data)
    assert errors[0]["field"].startswith("scenarios.baseline.options.nested[0]")
    assert errors[0]["message"] == "must not be nested deeper than 32 levels"
    assert errors[1] == {"field": "scenarios.with-cap.options.label", "message": "must be valid Unicode text"}


def test_list_sizes_are_bounded() -> None:
    data = body()
    data["portfolio_snapshot"]["positions"] = [{"instrument_id": "X", "quantity": "1"}] * 10_001
    data["market_data_snapshot"]["fx_rates"] = [{"pair": "A/B", "rate": "1"}] * 1_001
    assert errors_of(data) == [
        {"field": "portfolio_snapshot.positions", "message": "at most 10000 positions"},
        {"field": "market_data_snapshot.fx_rates", "message": "at most 1000 FX rates"},
    ]


def test_errors_from_every_section_are_reported_together() -> None:
    data = body()
    del data["portfolio_snapshot"]["base_currency"]
    data["market_data_snapshot"]["prices"].append({"instrument_id": "NESN", "price": "1", "currency": "CHF"})
    data["scenarios"]["Not-Valid"] = {}
    assert errors_of(data) == [
        {"field": "portfolio_snapshot.base_currency", "message": "is required"},
        {
            "field": "market_data_snapshot.prices[3].instrument_id",
            "message": "duplicate instrument_id, first given at market_data_snapshot.prices[0]",
        },
        {"field": "scenarios.Not-Valid", "message": r"scenario names must match regex [a-z0-9_\-]{1,64}"},
    ]


def test_error_list_is_capped_and_the_detail_says_so() -> None:
    data = body()
    data["market_data_snapshot"]["prices"] = [{}] * 20_000
    started = time.perf_counter()
    with pytest.raises(RequestInvalid) as raised:
        batch_request_parse(data)
    assert time.perf_counter() - started < 2.0
    assert len(raised.value.errors) == 100
    assert raised.value.errors[0] == {
        "field": "market_data_snapshot.prices[0].instrument_id",
        "message": "is required",
    }
    assert raised.value.detail == "The request body is invalid: 60000 errors, the first 100 are listed."
    assert raised.value.extra == {"errors": raised.value.errors}


# ------------------------------------------------------------------------------------------------
# Scenario options (engine_options_parse)
# ------------------------------------------------------------------------------------------------


def test_empty_options_are_the_engine_defaults() -> None:
    assert engine_options_parse({}) == em.EngineOptions()


def test_options_convert_to_the_engine_dataclass() -> None:
    options = engine_options_parse(
        {
            "target_method": "SOLVER",
            "min_trade_notional": {"amount": "250.00", "currency": "CHF"},
            "group_constraints": {
                "sector:TECH": {"max_weight": "0.15"},
                "region:US": {"max_weight": Decimal("0.5")},
            },
            "max_overdraft_by_ccy": {"CHF": "1000"},
            "settlement_horizon_days": "3",
            "enable_workflow_gates": 0,
            "allow_restricted": "yes",
            "unknown_option": {"anything": True},
            # advisory-only options are validated, then dropped
            "drift_top_contributors_limit": 20,
            "suitability_thresholds": {"issuer_max_weight": "0.3"},
        }
    )
    assert options == em.EngineOptions(
        target_method="SOLVER",
        min_trade_notional=em.Money(Decimal("250.00"), "CHF"),
        group_constraints={"sector:TECH": Decimal("0.15"), "region:US": Decimal("0.5")},
        max_overdraft_by_ccy={"CHF": Decimal("1000")},
        settlement_horizon_days=3,
        enable_workflow_gates=False,
        allow_restricted=True,
    )


def test_head_spellings_of_the_consent_options_are_accepted() -> None:
    options = engine_options_parse(
        {"workflow_requires_mandate_approval": True, "mandate_approval_already_obtained": "true"}
    )
    assert options.workflow_requires_client_consent is True
    assert options.client_consent_already_obtained is True
    both = engine_options_parse(
        {"workflow_requires_client_consent": False, "workflow_requires_mandate_approval": True}
    )
    assert both.workflow_requires_client_consent is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"group_constraints": {"invalid-key": {"max_weight": "0.25"}}},
            "Value error, group_constraints keys must use format '<attribute_key>:<attribute_value>'",
        ),
        (
            {"group_constraints": {"a:b:c": {"max_weight": "0.25"}}},
            "Value error, group_constraints keys must use format '<attribute_key>:<attribute_value>'",
        ),
        (
            {"group_constraints": {"sector:": {"max_weight": "0.25"}}},
            "Value error, group_constraints keys must use format '<attribute_key>:<attribute_value>'",
        ),
        ({"max_turnover_pct": "1.5"}, "Value error, max_turnover_pct must be between 0 and 1 inclusive"),
        ({"max_turnover_pct": "-0.01"}, "Value error, max_turnover_pct must be between 0 and 1 inclusive"),
        (
            {"max_overdraft_by_ccy": {"CHF": "-1"}},
            "Value error, max_overdraft_by_ccy values must be non-negative",
        ),
        (
            {"max_overdraft_by_ccy": {"": "1"}},
            "Value error, max_overdraft_by_ccy keys must be non-empty currency codes",
        ),
        (
            {"group_constraints": {"sector:TECH": {"max_weight": "1.01"}}},
            "Value error, max_weight must be between 0 and 1 inclusive",
        ),
        ({"target_method": "OPTIMAL"}, "Input should be 'HEURISTIC' or 'SOLVER'"),
        ({"valuation_mode": "MARK"}, "Input should be 'CALCULATED' or 'TRUST_SNAPSHOT'"),
        ({"settlement_horizon_days": 11}, "Input should be less than or equal to 10"),
        ({"fx_settlement_days": -1}, "Input should be greater than or equal to 0"),
        ({"fx_buffer_pct": "one percent"}, "Input should be a valid decimal"),
        ({"cash_band_min_weight": "NaN"}, "Input should be a finite number"),
        ({"max_realized_capital_gains": "-5"}, "Input should be greater than or equal to 0"),
        ({"compare_target_methods": "perhaps"}, "Input should be a valid boolean, unable to interpret input"),
        ({"min_trade_notional": 100}, "Input should be a valid dictionary or instance of Money"),
        ({"min_trade_notional": {"amount": "100"}}, "Field required"),
        ({"drift_top_contributors_limit": 21}, "Input should be less than or equal to 20"),
        ({"drift_unmodeled_exposure_threshold": "1.2"}, "Input should be less than or equal to 1"),
        ({"funding_mode": "MANUAL"}, "Input should be 'AUTO_FX'"),
        ({"fx_funding_source_currency": "ANY"}, "Input should be 'BASE_ONLY' or 'ANY_CASH'"),
        (
            {"suitability_thresholds": {"data_quality_issue_severity": "SEVERE"}},
            "Input should be 'LOW', 'MEDIUM' or 'HIGH'",
        ),
        (
            {"suitability_thresholds": {"single_position_max_weight": "2"}},
            "Input should be less than or equal to 1",
        ),
        ([], "Input should be a valid dictionary or instance of EngineOptions"),
    ],
)
def test_option_errors_use_the_reference_wording(options: Any, message: str) -> None:
    with pytest.raises(OptionsInvalid) as raised:
        engine_options_parse(options)
    assert raised.value.message == message
    assert str(raised.value) == message


def test_the_first_error_follows_field_order_not_key_order() -> None:
    with pytest.raises(OptionsInvalid) as raised:
        engine_options_parse({"settlement_horizon_days": 99, "target_method": "OPTIMAL"})
    assert raised.value.message == "Input should be 'HEURISTIC' or 'SOLVER'"


def test_absurd_option_magnitudes_are_refused() -> None:
    with pytest.raises(OptionsInvalid) as raised:
        engine_options_parse({"fx_buffer_pct": "1e999999999"})
    assert raised.value.message == f"Value error, fx_buffer_pct {DECIMAL_MESSAGE}"
