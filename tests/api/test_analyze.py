"""POST /rebalance/analyze: the synchronous what-if batch over HTTP."""

from __future__ import annotations

import copy
import json
import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from tests.factories.bodies import batch_body

URL = "/rebalance/analyze"


def post(client, body: Any, **headers: str):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", headers=headers)


def parse(response) -> Any:
    return json.loads(response.content, parse_float=Decimal)


def test_analyze_returns_batch_result_with_trades(client):
    response = post(client, batch_body())
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = parse(response)
    assert list(body) == [
        "batch_run_id", "run_at_utc", "base_snapshot_ids", "results", "comparison_metrics",
        "failed_scenarios", "warnings",
    ]
    assert re.fullmatch(r"batch_[0-9a-f]{8}", body["batch_run_id"])
    assert body["base_snapshot_ids"] == {"portfolio_snapshot_id": "pf_ops", "market_data_snapshot_id": "md"}
    assert body["failed_scenarios"] == {} and body["warnings"] == []
    result = body["results"]["baseline"]
    assert result["status"] == "READY"
    # TV = 40 x 50.00 + 8000.00 = 10000; AAA 0.5 -> 5000 held 2000 -> BUY 60; BBB 0.3 -> BUY 120.
    trades = [(i["instrument_id"], i["side"], i["quantity"], i["notional"]["amount"]) for i in result["intents"]]
    assert trades == [("AAA", "BUY", "60", "3000.00"), ("BBB", "BUY", "120", "3000.00")]
    assert result["correlation_id"] == f"{body['batch_run_id']}:baseline"
    assert result["lineage"]["request_hash"] == f"{body['batch_run_id']}:baseline"
    assert body["comparison_metrics"] == {
        "baseline": {
            "status": "READY",
            "security_intent_count": 2,
            "gross_turnover_notional_base": {"amount": "6000.000", "currency": "USD"},
        }
    }


def test_analyze_decimals_are_strings_and_keep_their_scale(client):
    result = parse(post(client, batch_body()))["results"]["baseline"]
    after = result["after_simulated"]
    assert after["total_value"] == {"amount": "10000.000", "currency": "USD"}
    assert [p["weight"] for p in after["positions"]] == ["0.5000", "0.3000"]
    assert result["target"]["targets"][0]["final_weight"] == "0.5"


def test_json_numbers_never_pass_through_a_float(client):
    body = batch_body()
    raw = json.dumps(body).replace('"0.3"', "0.3").replace('"25.00"', "25.00")
    result = parse(post(client, raw))["results"]["baseline"]
    assert result["target"]["targets"][1]["final_weight"] == "0.3"
    assert result["intents"][1]["notional"]["amount"] == "3000.00"


def test_scenarios_run_in_name_order_and_invalid_options_fail_alone(client):
    body = batch_body(
        zeta={"options": {"max_turnover_pct": "1.5"}},
        alpha={"options": {"group_constraints": {"sector": {"max_weight": "0.2"}}}},
        mid={"options": {"settlement_horizon_days": 11}},
        ok={"options": {}},
    )
    response = post(client, body)
    assert response.status_code == 200
    payload = parse(response)
    assert list(payload["results"]) == ["ok"]
    assert list(payload["comparison_metrics"]) == ["ok"]
    assert payload["failed_scenarios"] == {
        "alpha": "INVALID_OPTIONS: Value error, group_constraints keys must use format "
                 "'<attribute_key>:<attribute_value>'",
        "mid": "INVALID_OPTIONS: Input should be less than or equal to 10",
        "zeta": "INVALID_OPTIONS: Value error, max_turnover_pct must be between 0 and 1 inclusive",
    }
    assert payload["warnings"] == ["PARTIAL_BATCH_FAILURE"]


def test_a_scenario_that_raises_is_isolated(client, monkeypatch):
    from rebalance import services

    real = services.run_rebalance

    def flaky(prepared, options, **kwargs):
        if kwargs["correlation_id"].endswith(":boom"):
            raise ZeroDivisionError("simulated fault")
        return real(prepared, options, **kwargs)

    monkeypatch.setattr(services, "run_rebalance", flaky)
    payload = parse(post(client, batch_body(boom={"options": {}}, fine={"options": {}})))
    assert payload["failed_scenarios"] == {"boom": "SCENARIO_EXECUTION_ERROR: ZeroDivisionError"}
    assert list(payload["results"]) == ["fine"]
    assert payload["warnings"] == ["PARTIAL_BATCH_FAILURE"]


def test_correlation_id_is_echoed_and_prefixes_scenario_ids(client):
    response = post(client, batch_body(), **{"X-Correlation-Id": "orch-42.run_7"})
    assert response["X-Correlation-Id"] == "orch-42.run_7"
    assert parse(response)["results"]["baseline"]["correlation_id"] == "orch-42.run_7:baseline"


def test_correlation_id_is_generated_when_absent(client):
    response = post(client, batch_body())
    assert re.fullmatch(r"corr_[0-9a-f]{32}", response["X-Correlation-Id"])


def test_invalid_correlation_id_is_a_problem(client):
    response = post(client, batch_body(), **{"X-Correlation-Id": "bad id\twith spaces"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = parse(response)
    assert body["code"] == "INVALID_CORRELATION_ID"
    assert body["correlation_id"] == response["X-Correlation-Id"]
    assert re.fullmatch(r"corr_[0-9a-f]{32}", body["correlation_id"])


def assert_problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == "application/problem+json"
    body = parse(response)
    assert body["status"] == status and body["code"] == code
    assert body["correlation_id"] == response["X-Correlation-Id"]
    assert set(body) >= {"type", "title", "status", "detail", "code", "correlation_id"}
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    return {e["field"] for e in body["errors"]}


def test_malformed_json_is_a_400_problem(client):
    body = assert_problem(post(client, b'{"portfolio_snapshot": '), 400, "MALFORMED_JSON")
    assert body["errors"][0]["message"].startswith("Expecting value")


@pytest.mark.parametrize("raw", [b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}'])
def test_non_finite_literals_are_refused(client, raw):
    assert_problem(post(client, raw), 400, "MALFORMED_JSON")


def test_invalid_utf8_is_refused(client):
    assert_problem(post(client, b'{"a": "\xff\xfe"}'), 400, "MALFORMED_JSON")


def test_wrong_content_type_is_415(client):
    response = client.post(URL, data="portfolio=1", content_type="text/plain")
    assert_problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_missing_fields_and_wrong_types_name_each_field(client):
    body = batch_body()
    del body["model_portfolio"]
    body["portfolio_snapshot"]["positions"][0]["quantity"] = {"not": "a number"}
    problem = assert_problem(post(client, body), 400, "VALIDATION_ERROR")
    assert error_fields(problem) == {"model_portfolio", "portfolio_snapshot.positions[0].quantity"}


def test_zero_and_negative_prices_and_rates_are_refused(client):
    body = batch_body()
    body["market_data_snapshot"]["prices"][1]["price"] = "0"
    body["market_data_snapshot"]["fx_rates"] = [{"pair": "EUR/USD", "rate": "-1.1"}]
    problem = assert_problem(post(client, body), 400, "VALIDATION_ERROR")
    assert error_fields(problem) == {"market_data_snapshot.prices[1].price", "market_data_snapshot.fx_rates[0].rate"}


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b["portfolio_snapshot"]["positions"].append({"instrument_id": "AAA", "quantity": "1"}),
         "portfolio_snapshot.positions[1].instrument_id"),
        (lambda b: b["market_data_snapshot"]["prices"].append({"instrument_id": "AAA", "price": "1", "currency": "USD"}),
         "market_data_snapshot.prices[2].instrument_id"),
        (lambda b: b["model_portfolio"]["targets"].append({"instrument_id": "BBB", "weight": "0.1"}),
         "model_portfolio.targets[2].instrument_id"),
        (lambda b: b["shelf_entries"].append({"instrument_id": "AAA", "status": "BANNED"}),
         "shelf_entries[2].instrument_id"),
    ],
)
def test_duplicate_instruments_are_refused(client, mutate, field):
    body = batch_body()
    mutate(body)
    problem = assert_problem(post(client, body), 400, "VALIDATION_ERROR")
    assert field in error_fields(problem)


def test_lots_must_sum_to_the_position(client):
    body = batch_body()
    body["portfolio_snapshot"]["positions"][0]["lots"] = [
        {"lot_id": "L1", "quantity": "30", "unit_cost": {"amount": "45", "currency": "USD"}, "purchase_date": "2024-01-02"},
    ]
    problem = assert_problem(post(client, body), 400, "VALIDATION_ERROR")
    assert "portfolio_snapshot.positions[0].lots" in error_fields(problem)


def test_bad_scenario_names_and_counts(client):
    problem = assert_problem(post(client, batch_body(**{"Bad Name": {"options": {}}})), 400, "VALIDATION_ERROR")
    assert any(e["field"].startswith("scenarios") for e in problem["errors"])
    empty = batch_body()
    empty["scenarios"] = {}
    assert_problem(post(client, empty), 400, "VALIDATION_ERROR")
    twenty = batch_body(**{f"s{i:02d}": {"options": {}} for i in range(20)})
    assert post(client, twenty).status_code == 200
    twenty_one = batch_body(**{f"s{i:02d}": {"options": {}} for i in range(21)})
    problem = assert_problem(post(client, twenty_one), 400, "VALIDATION_ERROR")
    assert problem["errors"][0]["message"] == "scenario count exceeds maximum of 20"


@pytest.mark.parametrize("value", ["1e999999999", "NaN", "Infinity", "9" * 10_000, "-1E+30"])
def test_non_finite_and_absurd_numbers_are_refused(client, value):
    body = batch_body()
    body["portfolio_snapshot"]["cash_balances"][0]["amount"] = value
    problem = assert_problem(post(client, body), 400, "VALIDATION_ERROR")
    assert error_fields(problem) == {"portfolio_snapshot.cash_balances[0].amount"}


def test_absurd_json_number_literal_is_refused(client):
    raw = json.dumps(batch_body()).replace('"8000.00"', "1e999999999")
    assert post(client, raw).status_code == 400


@override_settings(DPM_MAX_REQUEST_BYTES=2048)
def test_body_over_the_limit_is_413(client):
    body = batch_body()
    body["model_portfolio"]["targets"] += [{"instrument_id": f"X{i}", "weight": "0"} for i in range(100)]
    assert_problem(post(client, body), 413, "REQUEST_TOO_LARGE")


def test_get_is_not_allowed(client):
    assert_problem(client.get(URL), 405, "METHOD_NOT_ALLOWED")


def test_unknown_path_is_a_404_problem(client):
    response = client.get("/rebalance/nothing-here")
    assert_problem(response, 404, "NOT_FOUND")


def test_inputs_are_not_mutated_between_scenarios(client):
    body = batch_body(a={"options": {}}, b={"options": {}})
    payload = parse(post(client, copy.deepcopy(body)))
    first, second = payload["results"]["a"], payload["results"]["b"]
    for key in ("intents", "after_simulated", "before", "rule_results"):
        assert first[key] == second[key]
    assert first["target"]["targets"] == second["target"]["targets"]


def test_an_early_blocked_scenario_answers_without_the_comparison_key(client):
    # A shelf that knows none of the instruments blocks before targets are built: the reference
    # leaves `target_method_comparison` out there, and the document says the key may be absent.
    body = batch_body()
    body["shelf_entries"] = [{"instrument_id": "ZZZ", "status": "APPROVED"}]
    response = post(client, body)
    assert response.status_code == 200
    result = parse(response)["results"]["baseline"]
    assert result["status"] == "BLOCKED"
    assert result["explanation"] == {"summary": "Blocked"}
