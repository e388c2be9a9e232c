"""Verification results, chain heads and schedule changes in the admin: read-only, like the rest
of the trail; django-celery-beat's admin replaced by one behind ``audit.change_schedule``."""

from django.contrib import admin
from django.utils.html import format_html_join

from audit.models import AuditVerification, ChainHead, ScheduleChange
from workspace.admin import schedule
from workspace.admin.site import AuditTrailAdmin
from workspace.display import json_display

schedule.register(admin.site)


@admin.register(AuditVerification)
class AuditVerificationAdmin(AuditTrailAdmin):
    list_display = (
        "started_at",
        "ok",
        "rows_checked",
        "heads_checked",
        "problems",
        "first_problem",
        "duration_display",
        "trigger",
    )
    list_filter = ("ok", "trigger", "started_at")
    readonly_fields = ("duration_display",)

    @admin.display(description="duration (s)")
    def duration_display(self, verification: AuditVerification) -> str:
        return f"{verification.duration_s:.2f}"


@admin.register(ChainHead)
class ChainHeadAdmin(AuditTrailAdmin):
    list_display = ("recorded_at", "chain", "row_id", "hash", "signed", "recorded_by")
    list_filter = ("chain", "recorded_at")
    search_fields = ("=row_id", "hash__exact")
    search_hint = "Searches match a row number or a whole hash."

    @admin.display(boolean=True, description="signed")
    def signed(self, head: ChainHead) -> bool:
        return bool(head.signature)


@admin.register(ScheduleChange)
class ScheduleChangeAdmin(AuditTrailAdmin):
    """Who changed the beat schedule, what, and what it was before and after (view-only for
    everyone: the rows are written by :mod:`audit.schedule`)."""

    list_display = ("created_at", "actor", "action", "object_type", "object_name", "changes")
    list_filter = ("action", "object_type", "created_at")
    search_fields = ("object_name", "actor__exact")
    fields = (
        "created_at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "object_name",
        "changes",
        "before_display",
        "after_display",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields
    before_display = json_display("before")
    after_display = json_display("after")

    @admin.display(description="changes")
    def changes(self, change: ScheduleChange) -> str:
        """The fields that differ, "name: before → after", one per line."""
        if change.action == ScheduleChange.Action.RUN:
            return "run requested"
        if change.action == ScheduleChange.Action.DELETE:
            return "deleted"
        before, after = change.before or {}, change.after or {}
        names = sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
        if not names:
            return "none"
        return format_html_join(
            "",
            "<div>{}: {} &rarr; {}</div>",
            ((n, _shown(before.get(n)), _shown(after.get(n))) for n in names),
        )


def _shown(value) -> str:
    return "-" if value in (None, "") else str(value)
