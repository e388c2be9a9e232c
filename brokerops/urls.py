"""URL routes: the admin is the product's user interface (the audit trail); the probes."""

from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

from brokerops.health_views import healthz, readyz
from brokerops.metrics_views import metrics
from orders.views import order_timeline_view

admin.site.site_header = "brokerops audit trail"
admin.site.site_title = "brokerops"
admin.site.index_title = "Reconciliation runs, mismatches and order attempts"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path(
        "admin/timeline/<path:client_order_id>/",
        admin.site.admin_view(order_timeline_view),
        name="order_timeline",
    ),
    path("admin/", admin.site.urls),
    # Probes (docs/design.md section 13): no login, no session.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Prometheus (section 13): METRICS_TOKEN bearer token, or loopback only when unset.
    path("metrics", metrics, name="metrics"),
]
