"""Verification results and chain heads in the admin: read-only, like the rest of the trail."""

from django.contrib import admin

from brokerops.admin import AuditTrailAdmin

from .models import AuditVerification, ChainHead


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

    @admin.display(boolean=True, description="signed")
    def signed(self, head: ChainHead) -> bool:
        return bool(head.signature)
