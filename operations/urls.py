"""Mounted under `rebalance/` (dpm_async/urls.py). Exact paths, no trailing slashes; the
`by-correlation/` route is registered before `{operation_id}` so it is never taken for an id."""

from __future__ import annotations

from django.urls import path

from operations.views import (
    OperationByCorrelationView,
    OperationCancelView,
    OperationDetailView,
    OperationExecuteView,
    OperationListView,
    OperationScenarioResultView,
    OperationSummaryView,
    RebalanceAnalysisAsyncView,
)

urlpatterns = [
    path("analyze/async", RebalanceAnalysisAsyncView.as_view(), name="rebalance-analyze-async"),
    path("operations", OperationListView.as_view(), name="operation-list"),
    path(
        "operations/by-correlation/<str:correlation_id>",
        OperationByCorrelationView.as_view(),
        name="operation-by-correlation",
    ),
    path("operations/<str:operation_id>", OperationDetailView.as_view(), name="operation-detail"),
    path("operations/<str:operation_id>/execute", OperationExecuteView.as_view(), name="operation-execute"),
    path("operations/<str:operation_id>/cancel", OperationCancelView.as_view(), name="operation-cancel"),
    path("operations/<str:operation_id>/summary", OperationSummaryView.as_view(), name="operation-summary"),
    path(
        "operations/<str:operation_id>/results/<str:scenario_name>",
        OperationScenarioResultView.as_view(),
        name="operation-scenario-result",
    ),
]
