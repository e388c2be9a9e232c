"""Reconciliation runs and mismatches in the admin: searchable, filterable, read-only."""

from django.contrib import admin

from brokerops.admin import AuditTrailAdmin, AuditTrailInline

from .models import Mismatch, ReconciliationRun

# Exact lookups on indexed columns, so a search over millions of rows uses the indexes.
EXACT_SEARCH = (
    "client_order_id__exact",
    "signal_id__exact",
    "alpaca_order_id__exact",
    "symbol__exact",
)


class MismatchInline(AuditTrailInline):
    model = Mismatch
    fields = (
        "kind",
        "severity",
        "symbol",
        "signal_id",
        "client_order_id",
        "expected_qty",
        "actual_qty",
        "action",
    )
    readonly_fields = fields


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(AuditTrailAdmin):
    list_display = (
        "id",
        "started_at",
        "status",
        "trigger",
        "dry_run",
        "requested_by_username",
        "positions_seen",
        "orders_seen",
        "signals_seen",
        "mismatches_found",
        "repairs_applied",
        "api_calls",
        "duration_display",
    )
    list_filter = ("status", "trigger", "dry_run", "started_at")
    date_hierarchy = "started_at"
    search_fields = ("=id", "requested_by_username")
    readonly_fields = ("duration_display",)
    inlines = (MismatchInline,)

    @admin.display(description="duration (s)")
    def duration_display(self, run: ReconciliationRun) -> str:
        return "-" if run.duration_s is None else f"{run.duration_s:.2f}"


@admin.register(Mismatch)
class MismatchAdmin(AuditTrailAdmin):
    list_display = (
        "created_at",
        "kind",
        "severity",
        "symbol",
        "signal_id",
        "client_order_id",
        "expected_qty",
        "actual_qty",
        "action",
        "run",
    )
    list_filter = ("kind", "severity", "action", "created_at")
    list_select_related = ("run",)
    date_hierarchy = "created_at"
    search_fields = EXACT_SEARCH
