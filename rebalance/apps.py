from django.apps import AppConfig


class RebalanceConfig(AppConfig):
    name = "rebalance"
    verbose_name = "Rebalance analysis"
