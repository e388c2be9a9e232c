"""Reconciliation runs and mismatches in the admin: searchable, filterable, read-only."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse

from brokerops.admin import AuditTrailAdmin, AuditTrailInline

from .models import Mismatch, ReconciliationRun, RunEvent
from .services import reconciliation_request_rerun

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
        "outcome_display",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).select_related("outcome")

    @admin.display(description="outcome")
    def outcome_display(self, mismatch: Mismatch) -> str:
        return _outcome(mismatch)


class RunEventInline(AuditTrailInline):
    """What happened to the run, in order (repair outcomes show on their mismatches)."""

    model = RunEvent
    fields = ("created_at", "kind", "status", "message", "actor")
    readonly_fields = fields
    ordering = ("created_at", "id")
    show_change_link = False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).exclude(kind=RunEvent.Kind.REPAIR_OUTCOME)


def _outcome(mismatch: Mismatch) -> str:
    outcome = getattr(mismatch, "outcome", None)
    if outcome is None:
        return "-" if mismatch.action != Mismatch.Action.REPAIR_STARTED else "none recorded"
    return outcome.get_action_display()


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
    inlines = (RunEventInline, MismatchInline)
    actions = ("rerun",)
    change_form_template = "admin/reconciliation/reconciliationrun/change_form.html"

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.trigger_reconciliation")

    @admin.action(description="Rerun reconciliation", permissions=["trigger"])
    def rerun(self, request: HttpRequest, queryset) -> None:
        latest = queryset.order_by("-started_at").first()
        reconciliation_request_rerun(run_id=latest.pk if latest else None, user_id=request.user.pk)
        self.message_user(request, "Reconciliation rerun requested.", messages.SUCCESS)

    def get_urls(self):
        return [
            path(
                "<int:run_id>/rerun/",
                self.admin_site.admin_view(self.rerun_view),
                name="reconciliation_reconciliationrun_rerun",
            ),
            *super().get_urls(),
        ]

    def rerun_view(self, request: HttpRequest, run_id: int):
        """The "Rerun" button on a run's page (POST only, operators only)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_trigger_permission(request):
            raise PermissionDenied
        run = get_object_or_404(ReconciliationRun, pk=run_id)
        reconciliation_request_rerun(run_id=run.pk, user_id=request.user.pk)
        self.message_user(request, f"Rerun of run #{run.pk} requested.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:reconciliation_reconciliationrun_changelist"))

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_trigger"] = self.has_trigger_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

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
        "outcome_display",
        "run",
    )
    list_filter = ("kind", "severity", "action", "created_at")
    list_select_related = ("run", "outcome")
    search_fields = EXACT_SEARCH

    @admin.display(description="outcome")
    def outcome_display(self, mismatch: Mismatch) -> str:
        return _outcome(mismatch)
