"""Alerts in the admin: what was sent, to which channel, and how delivery went (read-only)."""

from django.contrib import admin

from alerts.models import Alert
from workspace.admin.site import NoEditHistoryMixin, ReadOnlyMixin, TimestampColumnsMixin


@admin.register(Alert)
class AlertAdmin(NoEditHistoryMixin, TimestampColumnsMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = (
        "last_seen_at",
        "kind",
        "subject",
        "times_seen",
        "notifications",
        "email_status",
        "webhook_status",
        "resolved_at",
    )
    list_filter = (
        "kind",
        "email_status",
        "webhook_status",
        ("resolved_at", admin.EmptyFieldListFilter),
    )
    search_fields = ("key__exact", "subject")
    date_hierarchy = "last_seen_at"
    ordering = ("-last_seen_at", "-id")
    readonly_fields = [f.name for f in Alert._meta.fields]
