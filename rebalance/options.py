"""A scenario's options: the reference service's EngineOptions (spec 1.3), for its exact messages.

The batch validates each scenario's options when it runs that scenario, so that invalid options fail
the scenario (`INVALID_OPTIONS: <message>` in `failed_scenarios`), not the request. The models
below are the reference's, field for field, so the message is the reference's word for word: class
names matter (pydantic quotes them, as in `Input should be a valid dictionary or instance of
Money`) and field order decides which error is reported first. Options the engine reads are then
copied by name into the engine's `EngineOptions`; advisory-only options are validated and dropped.
"""

from __future__ import annotations

import dataclasses
import typing
from decimal import Decimal
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator, model_validator

from dpm_async.decimals import DECIMAL_MESSAGE, decimal_is_sane
from rebalance.engine import models as em


class OptionsInvalid(Exception):
    """A scenario's options failed validation; `message` is the first error's pydantic `msg`."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Money(BaseModel):
    amount: Decimal
    currency: str

class GroupConstraint(BaseModel):
    max_weight: Decimal

    @field_validator("max_weight")
    @classmethod
    def _max_weight_range(cls, value: Decimal) -> Decimal:
        if value < 0 or value > 1:
            raise ValueError("max_weight must be between 0 and 1 inclusive")
        return value

class SuitabilityThresholds(BaseModel):
    single_position_max_weight: Decimal = Field(default=Decimal("0.10"), ge=0, le=1)
    issuer_max_weight: Decimal = Field(default=Decimal("0.20"), ge=0, le=1)
    max_weight_by_liquidity_tier: dict[str, Decimal] = Field(
        default_factory=lambda: {"L4": Decimal("0.10"), "L5": Decimal("0.05")}
    )
    cash_band_min_weight: Decimal = Field(default=Decimal("0.01"), ge=0, le=1)
    cash_band_max_weight: Decimal = Field(default=Decimal("0.05"), ge=0, le=1)
    data_quality_issue_severity: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"

    @field_validator("max_weight_by_liquidity_tier")
    @classmethod
    def _tiers(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for tier, weight in value.items():
            if tier not in ("L1", "L2", "L3", "L4", "L5"):
                raise ValueError("max_weight_by_liquidity_tier keys must be one of L1, L2, L3, L4, L5")
            if weight < 0 or weight > 1:
                raise ValueError("max_weight_by_liquidity_tier values must be between 0 and 1 inclusive")
        return value

    @model_validator(mode="after")
    def _cash_band(self) -> Any:
        if self.cash_band_min_weight > self.cash_band_max_weight:
            raise ValueError("cash_band_min_weight must be less than or equal to cash_band_max_weight")
        return self

class EngineOptions(BaseModel):
    valuation_mode: Literal["CALCULATED", "TRUST_SNAPSHOT"] = "CALCULATED"
    target_method: Literal["HEURISTIC", "SOLVER"] = "HEURISTIC"
    compare_target_methods: bool = False
    compare_target_methods_tolerance: Decimal = Decimal("0.0001")
    cash_band_min_weight: Decimal = Decimal("0.00")
    cash_band_max_weight: Decimal = Decimal("1.00")
    single_position_max_weight: Decimal | None = None
    min_trade_notional: Money | None = None
    allow_restricted: bool = False
    suppress_dust_trades: bool = True
    dust_trade_threshold: Money | None = None
    fx_buffer_pct: Decimal = Decimal("0.01")
    block_on_missing_prices: bool = True
    block_on_missing_fx: bool = True
    min_cash_buffer_pct: Decimal = Decimal("0.0")
    max_turnover_pct: Decimal | None = None
    enable_tax_awareness: bool = False
    max_realized_capital_gains: Decimal | None = Field(default=None, ge=0)
    enable_settlement_awareness: bool = False
    enable_proposal_simulation: bool = False
    enable_workflow_gates: bool = True
    # HEAD renamed these two; both spellings are accepted, the reference's wins when both are given.
    workflow_requires_client_consent: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "workflow_requires_client_consent", "workflow_requires_mandate_approval"
        ),
    )
    client_consent_already_obtained: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "client_consent_already_obtained", "mandate_approval_already_obtained"
        ),
    )
    proposal_apply_cash_flows_first: bool = True
    proposal_block_negative_cash: bool = True
    link_buy_to_same_currency_sell_dependency: bool | None = None
    enable_drift_analytics: bool = True
    enable_suitability_scanner: bool = True
    suitability_thresholds: SuitabilityThresholds = Field(default_factory=SuitabilityThresholds)
    enable_instrument_drift: bool = True
    drift_top_contributors_limit: int = Field(default=5, ge=1, le=20)
    drift_unmodeled_exposure_threshold: Decimal = Field(default=Decimal("0.01"), ge=0, le=1)
    auto_funding: bool = True
    funding_mode: Literal["AUTO_FX"] = "AUTO_FX"
    fx_funding_source_currency: Literal["BASE_ONLY", "ANY_CASH"] = "ANY_CASH"
    fx_generation_policy: Literal["ONE_FX_PER_CCY"] = "ONE_FX_PER_CCY"
    settlement_horizon_days: int = Field(default=5, ge=0, le=10)
    fx_settlement_days: int = Field(default=2, ge=0, le=10)
    max_overdraft_by_ccy: dict[str, Decimal] = Field(default_factory=dict)
    group_constraints: dict[str, GroupConstraint] = Field(default_factory=dict)

    @field_validator("max_turnover_pct")
    @classmethod
    def _turnover_range(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and (value < 0 or value > 1):
            raise ValueError("max_turnover_pct must be between 0 and 1 inclusive")
        return value

    @field_validator("max_overdraft_by_ccy")
    @classmethod
    def _overdraft(cls, value: dict[str, Decimal]) -> dict[str, Decimal]:
        for currency, allowance in value.items():
            if not currency.strip():
                raise ValueError("max_overdraft_by_ccy keys must be non-empty currency codes")
            if allowance < 0:
                raise ValueError("max_overdraft_by_ccy values must be non-negative")
        return value

    @field_validator("group_constraints")
    @classmethod
    def _group_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            parts = key.split(":")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise ValueError(
                    "group_constraints keys must use format '<attribute_key>:<attribute_value>'"
                )
        return value


# The options the engine computes with as decimals: beyond the reference's checks, each must also
# keep the wire's decimal bounds (finite, 40 digits, exponent >= -40, below 1E+18).
_ENGINE_FIELDS = dataclasses.fields(em.EngineOptions)
_ENGINE_DECIMALS = tuple(
    name for name, hint in typing.get_type_hints(em.EngineOptions).items()
    if hint in (Decimal, Decimal | None)
)


def engine_options_parse(raw: Any) -> em.EngineOptions:
    """Validates one scenario's options as the reference's EngineOptions and converts them.

    Defaults apply, unknown keys are ignored, advisory-only options are validated but dropped.
    Raises `OptionsInvalid` with the message of the first error, exactly as the reference words
    it (the batch reports `INVALID_OPTIONS: <message>`).
    """
    try:
        options = EngineOptions.model_validate(raw)
    except ValidationError as error:
        raise OptionsInvalid(error.errors(include_url=False, include_input=False)[0]["msg"]) from None

    for name in _ENGINE_DECIMALS:
        value = getattr(options, name)
        if value is not None and not decimal_is_sane(value):
            raise OptionsInvalid(f"Value error, {name} {DECIMAL_MESSAGE}")
    if options.min_trade_notional is not None and not decimal_is_sane(options.min_trade_notional.amount):
        raise OptionsInvalid(f"Value error, min_trade_notional.amount {DECIMAL_MESSAGE}")
    for currency, allowance in options.max_overdraft_by_ccy.items():
        if not decimal_is_sane(allowance):
            raise OptionsInvalid(f"Value error, max_overdraft_by_ccy.{currency[:16]} {DECIMAL_MESSAGE}")

    values = {field.name: getattr(options, field.name) for field in _ENGINE_FIELDS}
    money = options.min_trade_notional
    values["min_trade_notional"] = None if money is None else em.Money(money.amount, money.currency)
    values["max_overdraft_by_ccy"] = dict(options.max_overdraft_by_ccy)
    values["group_constraints"] = {key: group.max_weight for key, group in options.group_constraints.items()}
    return em.EngineOptions(**values)
