"""URL routes: the admin is the product's user interface (the audit trail); the probes."""

from django.urls import include, path
from django.views.generic import RedirectView

from brokerops.health_views import healthz, readyz
from brokerops.metrics_views import metrics

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    # The compliance workspace (the admin site and the order timeline), named rather than
    # imported: the ground floor imports no app (docs/design.md section 1).
    path("admin/", include("workspace.urls")),
    # Probes (docs/design.md section 13): no login, no session.
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    # Prometheus (section 13): METRICS_TOKEN bearer token, or loopback only when unset.
    path("metrics", metrics, name="metrics"),
]

# 403 and 404 inside the admin with a way back (docs/compliance.md), named, not imported.
handler403 = "workspace.views.permission_denied"
handler404 = "workspace.views.page_not_found"
