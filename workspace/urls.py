"""The workspace's routes, under ``admin/`` (:mod:`brokerops.urls` includes them by name, so the
ground floor imports no app): the order timeline, then the admin site itself."""

from django.contrib import admin
from django.urls import path

from workspace.views import order_timeline_view

urlpatterns = [
    path(
        "timeline/<path:client_order_id>/",
        admin.site.admin_view(order_timeline_view),
        name="order_timeline",
    ),
    path("", admin.site.urls),
]
