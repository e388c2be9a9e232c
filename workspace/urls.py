"""The workspace's routes, under ``admin/`` (:mod:`brokerops.urls` includes them by name, so the
ground floor imports no app): the order timeline, the evidence pack, then the admin site itself."""

from django.contrib import admin
from django.urls import path

from workspace.evidence import evidence_view
from workspace.views import order_timeline_view

urlpatterns = [
    path(
        "timeline/<path:client_order_id>/",
        admin.site.admin_view(order_timeline_view),
        name="order_timeline",
    ),
    path("evidence/", admin.site.admin_view(evidence_view), name="evidence_pack"),
    path("", admin.site.urls),
]
