"""The workspace's routes, under ``admin/`` (:mod:`brokerops.urls` includes them by name, so the
ground floor imports no app): the order timeline, the evidence pack, the end-of-day report, the
login (landing compliance on the breaks list), then the admin site itself."""

from django.contrib import admin
from django.urls import path

from workspace.eod_report import eod_report_view
from workspace.evidence import evidence_view
from workspace.landing import login_view
from workspace.views import order_timeline_view

urlpatterns = [
    path(
        "timeline/<path:client_order_id>/",
        admin.site.admin_view(order_timeline_view),
        name="order_timeline",
    ),
    path("evidence/", admin.site.admin_view(evidence_view), name="evidence_pack"),
    path("eod-report/", admin.site.admin_view(eod_report_view), name="eod_report"),
    # The admin's login, landing compliance on the open breaks list (workspace.landing).
    path("login/", login_view, name="workspace_login"),
    path("", admin.site.urls),
]
