from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dpm_async.health import HealthLiveView, HealthReadyView
from dpm_async.metrics import MetricsView

urlpatterns = [
    path("rebalance/", include("rebalance.urls")),
    path("rebalance/", include("operations.urls")),
    path("health/live", HealthLiveView.as_view(), name="health-live"),
    path("health/ready", HealthReadyView.as_view(), name="health-ready"),
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("admin/", admin.site.urls),
]

handler400 = "dpm_async.problems.bad_request"
handler403 = "dpm_async.problems.permission_denied"
handler404 = "dpm_async.problems.not_found"
handler500 = "dpm_async.problems.server_error"
