from __future__ import annotations

from django.apps import AppConfig


class RebalanceConfig(AppConfig):
    name = "rebalance"
    verbose_name = "Rebalance analysis"

    def ready(self) -> None:
        # The OpenAPI document shows a whole request and result on their components.
        from rebalance import examples

        examples.examples_register()
