"""Reconciliation runs and mismatches in the admin: searchable, filterable, read-only."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from audit.models import AccessRecord
from brokerops.intent.models import LocalSignal, stored_document_id
from brokerops.intent.schema import audit_signal_id
from orders.models import OrderAttempt
from reconciliation.models import Mismatch, MismatchSignal, ReconciliationRun, RunEvent
from reconciliation.records import JOINED_SIGNAL_KINDS
from reconciliation.reruns import reconciliation_request_rerun
from workspace.access import only_visible
from workspace.admin.site import (
    AccountScopedMixin,
    AuditTrailAdmin,
    AuditTrailInline,
    viewer_accounts,
)
from workspace.display import (
    SymbolSearchMixin,
    decimal_display,
    json_display,
    timestamp_display,
)
from workspace.filters import AccountListFilter
from workspace.timeline import signal_client_order_id, timeline_url

# Exact lookups on indexed columns, so a search over millions of rows uses the indexes.
EXACT_SEARCH = (
    "client_order_id__exact",
    "signal_id__exact",
    "alpaca_order_id__exact",
    "symbol__exact",
)
#: Mismatches found per signal id by a search at most (the newest; the list pages them).
_SIGNAL_SEARCH_LIMIT = 10_000


#: A mismatch as one row of a list: under its run, and in the list of all mismatches.
MISMATCH_COLUMNS = (
    "kind",
    "severity",
    "symbol",
    "signal_id",
    "client_order_id",
    "expected_qty_display",
    "actual_qty_display",
    "action_display",
)


class MismatchColumns:
    """The computed columns of a mismatch (its querysets carry ``with_final_action``)."""

    expected_qty_display = decimal_display("expected_qty", "expected qty")
    actual_qty_display = decimal_display("actual_qty", "actual qty")

    @admin.display(description="action", ordering="final_action")
    def action_display(self, mismatch: Mismatch) -> str:
        """What the mismatch ended with (its repair's outcome), never the "repair started" it
        was stored with before the repair, unless the run stopped in between."""
        return mismatch.outcome_label


class MismatchInline(MismatchColumns, AuditTrailInline):
    model = Mismatch
    fields = MISMATCH_COLUMNS
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).with_final_action().select_related("run")


class RunEventInline(AuditTrailInline):
    """What happened to the run, in order (repair outcomes show on their mismatches)."""

    model = RunEvent
    fields = ("created_at", "kind", "status", "message", "actor")
    readonly_fields = fields
    ordering = ("created_at", "id")
    show_change_link = False

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).exclude(kind=RunEvent.Kind.REPAIR_OUTCOME)


class FinalActionFilter(admin.ChoicesFieldListFilter):
    """The Action filter reads what the mismatch ended with (``final_action``: the repair's
    outcome event, else the stored action), as the Action column does; same parameter
    (``action__exact``), so existing links keep working."""

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.lookup_val is None:
            return queryset
        return queryset.ended_as(*self.lookup_val)


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(AccountScopedMixin, AuditTrailAdmin):
    access_what = AccessRecord.What.RUN
    list_display = (
        "id",
        "account",
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
    list_filter = (("account", AccountListFilter), "status", "trigger", "dry_run", "started_at")
    date_hierarchy = "started_at"
    search_fields = ("=id", "requested_by_username", "account__exact")
    search_hint = "Searches match a run number, a username or a whole account name."
    fields = (
        "account",
        "trigger",
        "requested_by_username",
        "rerun_of",
        "dry_run",
        "status",
        "started_at",
        "finished_at",
        "duration_display",
        "worker",
        "positions_seen",
        "orders_seen",
        "signals_seen",
        "mismatches_found",
        "repairs_applied",
        "api_calls",
        "error",
        "summary_display",
    )
    readonly_fields = fields
    summary_display = json_display("summary", "summary (timings, mismatches by kind)")
    inlines = (RunEventInline, MismatchInline)
    actions = ("rerun",)
    change_form_template = "admin/reconciliation/reconciliationrun/change_form.html"

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("reconciliation.trigger_reconciliation")

    @admin.action(description="Rerun reconciliation", permissions=["trigger"])
    def rerun(self, request: HttpRequest, queryset) -> HttpResponseRedirect:
        latest = queryset.order_by("-started_at").first()
        run = reconciliation_request_rerun(
            run_id=latest.pk if latest else None, user_id=request.user.pk
        )
        return self._queued_run_page(request, run)

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
        run = get_object_or_404(self.get_queryset(request), pk=run_id)
        rerun = reconciliation_request_rerun(run_id=run.pk, user_id=request.user.pk)
        return self._queued_run_page(request, rerun)

    def _queued_run_page(self, request: HttpRequest, run: ReconciliationRun):
        """The operator lands on the new run's page (queued until a worker runs it)."""
        self.message_user(
            request,
            f"Run #{run.pk} requested: queued until a worker runs it (reload to follow it).",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(
            reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
        )

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_trigger"] = self.has_trigger_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    @admin.display(description="duration (s)")
    def duration_display(self, run: ReconciliationRun) -> str:
        return "-" if run.duration_s is None else f"{run.duration_s:.2f}"


@admin.register(Mismatch)
class MismatchAdmin(AccountScopedMixin, MismatchColumns, SymbolSearchMixin, AuditTrailAdmin):
    list_display = ("created_at", "account", *MISMATCH_COLUMNS, "run", "timeline")
    list_filter = (
        ("account", AccountListFilter),
        "kind",
        "severity",
        ("action", FinalActionFilter),
        "created_at",
    )
    list_select_related = ("run",)
    # Symbols: SymbolSearchMixin; signal ids: also each signal of the relation (below).
    search_fields = (*(f for f in EXACT_SEARCH if not f.startswith("symbol")), "account__exact")
    fields = (
        "account",
        "run",
        "kind",
        "severity",
        "symbol",
        "signals_display",
        "client_order_id_display",
        "alpaca_order_id",
        "expected_qty_display",
        "actual_qty_display",
        "action_display",
        "outcome_at",
        "outcome_message",
        "detail",
        "created_at",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Also the mismatches naming the term as one of their signals: their ids first, by an
        exact look-up on the relation's index, so the list's query stays index scans."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            ids = list(
                MismatchSignal.objects.filter(signal_id=audit_signal_id(term))
                .order_by("-mismatch_id")
                .values_list("mismatch_id", flat=True)[:_SIGNAL_SEARCH_LIMIT]
            )
            if ids:
                results = results | queryset.filter(Q(pk__in=ids))
        return results, may_have_duplicates

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).with_final_action()

    @admin.display(description="outcome recorded at")
    def outcome_at(self, mismatch: Mismatch) -> str:
        outcome = getattr(mismatch, "outcome", None)
        return timestamp_display(outcome.created_at) if outcome is not None else "-"

    @admin.display(description="outcome message")
    def outcome_message(self, mismatch: Mismatch) -> str:
        outcome = getattr(mismatch, "outcome", None)
        return outcome.message if outcome is not None and outcome.message else "-"

    @admin.display(description="timeline")
    def timeline(self, mismatch: Mismatch) -> str:
        client_order_id = _mismatch_client_order_id(mismatch)
        if not client_order_id:
            return "-"
        signal_id = "" if mismatch.client_order_id else mismatch.signal_id
        return format_html(
            '<a class="timeline-link" href="{}">timeline</a>',
            timeline_url(client_order_id, signal_id=signal_id),
        )

    @admin.display(description="client order id")
    def client_order_id_display(self, mismatch: Mismatch) -> str:
        if not mismatch.client_order_id:
            return "-"
        attempt = (
            only_visible(OrderAttempt.objects.all(), viewer_accounts(mismatch))
            .filter(client_order_id=mismatch.client_order_id)
            .only("pk")
            .first()
        )
        attempt_link = (
            format_html(
                ' &middot; <a href="{}">attempt</a>',
                reverse("admin:orders_orderattempt_change", args=[attempt.pk]),
            )
            if attempt is not None
            else ""
        )
        return format_html(
            '{}{} &middot; <a class="timeline-link" href="{}">timeline</a>',
            mismatch.client_order_id,
            attempt_link,
            timeline_url(mismatch.client_order_id),
        )

    @admin.display(description="signals")
    def signals_display(self, mismatch: Mismatch) -> str:
        """One row per signal the mismatch is about, each linked to its document (local store)
        and its order's timeline."""
        signal_ids = list(mismatch.signals.values_list("signal_id", flat=True)[:1000])
        if not signal_ids and mismatch.signal_id:
            signal_ids = [mismatch.signal_id]  # a row written before the relation existed
        if not signal_ids:
            return "-"
        documents = dict(
            LocalSignal.objects.filter(
                document_id__in=[stored_document_id(s) for s in signal_ids]
            ).values_list("document_id", "pk")
        )
        rows = []
        for signal_id in signal_ids:
            pk = documents.get(stored_document_id(signal_id))
            document = (
                format_html(
                    '<a href="{}">document</a>',
                    reverse("admin:intent_localsignal_change", args=[pk]),
                )
                if pk is not None
                else "not in the local store"
            )
            rows.append(
                (
                    signal_id,
                    document,
                    timeline_url(signal_client_order_id(signal_id), signal_id=signal_id),
                )
            )
        return format_html_join(
            "",
            '<div class="mismatch-signal"><span class="signal-id">{}</span> &middot; {} '
            '&middot; <a class="timeline-link" href="{}">timeline</a></div>',
            rows,
        )


def _mismatch_client_order_id(mismatch: Mismatch) -> str:
    """The order a mismatch's timeline is about: its client_order_id, else its one signal's."""
    if mismatch.client_order_id:
        return mismatch.client_order_id
    if mismatch.signal_id and (
        mismatch.kind not in JOINED_SIGNAL_KINDS or "," not in mismatch.signal_id
    ):
        return signal_client_order_id(mismatch.signal_id)
    return ""
