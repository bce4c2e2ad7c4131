from __future__ import annotations

from django.urls import path

from rebalance.views import RebalanceAnalysisView

urlpatterns = [
    path("analyze", RebalanceAnalysisView.as_view(), name="rebalance-analyze"),
]
