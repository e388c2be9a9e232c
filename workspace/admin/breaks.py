"""Breaks in the admin (docs/design.md section 17): the open breaks list, compliance's landing
page, and each break's page telling its story with the actions the user may take.

Nothing about a break is edited through the admin's forms (superusers included): the actions are
POST forms to :meth:`BreakAdmin.act_view`, which checks the user may see the break and take the
action, then calls the service (:mod:`reconciliation.breaks`); a refusal is an error message.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import F, Q, QuerySet
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from audit.models import AccessRecord
from brokerops.intent.schema import audit_signal_id
from reconciliation.breaks import PROPOSABLE, BreakRefused
from reconciliation.models import Break, Mismatch, MismatchSignal
from workspace import breaks as words
from workspace.admin.filters_breaks import (
    AgeFilter,
    BreakStateFilter,
    DueFilter,
    OccurrencesFilter,
    OwnerFilter,
)
from workspace.admin.ledger import symbol_history
from workspace.admin.site import AccountScopedMixin, AuditTrailAdmin
from workspace.display import SymbolSearchMixin
from workspace.filters import AccountListFilter
from workspace.timeline import signal_client_order_id, timeline_url

#: The list and the page take the whole width (no apps sidebar): readable at 1024 px.
WIDE = {"is_nav_sidebar_enabled": False}
#: Breaks found per signal id by a search at most (through the mismatches naming it).
_SIGNAL_SEARCH_LIMIT = 1_000


@admin.register(Break)
class BreakAdmin(AccountScopedMixin, SymbolSearchMixin, AuditTrailAdmin):
    access_what = AccessRecord.What.BREAK  # a break's page viewed: on the access log
    list_display = (
        "id",
        "about",
        "state_short",
        "kind",
        "severity",
        "age",
        "due",
        "owner",
        "times_seen",
        "first_seen",
        "last_seen",
        "account",
    )
    list_display_links = ("id", "about")
    # Soonest due first, the index's order (``pk``, not ``id``: one sort arrow, on "due", keeps
    # the header narrow).
    ordering = ("due_at", "pk")
    list_filter = (
        BreakStateFilter,
        "kind",
        "severity",
        AgeFilter,
        DueFilter,
        OwnerFilter,
        OccurrencesFilter,
        "first_seen_at",
        "last_seen_at",
        ("account", AccountListFilter),
    )
    search_fields = ("=id", "client_order_id__exact", "account__exact")
    # Counted exactly up to here: how many breaks are live is the page's first question.
    count_cap = 100_000
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "state",
                    "account",
                    "kind",
                    "severity",
                    "symbol_display",
                    "signals_display",
                    "client_order_id_display",
                    "detail",
                )
            },
        ),
        (
            "Ownership and sign-off",
            {
                "fields": (
                    "owner_username",
                    "disposition",
                    "reason",
                    "proposed_by_username",
                    "approved_by_username",
                    "needs_review",
                )
            },
        ),
        (
            "Age and runs",
            {
                "fields": (
                    "age",
                    "due",
                    "occurrences",
                    "first_seen_at",
                    "last_seen_at",
                    "opened_at",
                    "due_at",
                    "closed_at",
                    "first_run",
                    "last_run",
                    "cleared_by_run",
                )
            },
        ),
    )
    readonly_fields = tuple(f for _, section in fieldsets for f in section["fields"])
    change_form_template = "admin/reconciliation/break/change_form.html"
    change_list_template = "admin/reconciliation/break/change_list.html"

    @admin.display(description="break")
    def about(self, brk: Break) -> str:
        return brk.symbol or brk.client_order_id or ", ".join(brk.signal_ids) or "-"

    # Short cells (the full label or timestamp on hover) keep twelve columns readable at 1024 px;
    # the export writes the seen dates as timestamps (their ordering names the column).

    @admin.display(description="state", ordering="state")
    def state_short(self, brk: Break) -> str:
        return format_html('<span title="{}">{}</span>', brk.get_state_display(), brk.state)

    @admin.display(description="owner", ordering="owner_username")
    def owner(self, brk: Break) -> str:
        return brk.owner_username or "-"

    @admin.display(description="times seen", ordering="occurrences")
    def times_seen(self, brk: Break) -> int:
        return brk.occurrences

    @admin.display(description="first seen", ordering="first_seen_at")
    def first_seen(self, brk: Break) -> str:
        return words.since_html(brk.first_seen_at)

    @admin.display(description="last seen", ordering="last_seen_at")
    def last_seen(self, brk: Break) -> str:
        return words.since_html(brk.last_seen_at)

    @admin.display(description="age", ordering=F("opened_at").desc())
    def age(self, brk: Break) -> str:
        return words.age_words(brk)

    @admin.display(description="due", ordering="due_at")
    def due(self, brk: Break) -> str:
        text = words.due_words(brk)
        if words.is_overdue(brk):
            return format_html('<strong class="break-overdue">{}</strong>', text)
        return text

    @admin.display(description="symbol")
    def symbol_display(self, brk: Break) -> str:
        return symbol_history(brk.symbol, account=brk.account)

    @admin.display(description="client order id")
    def client_order_id_display(self, brk: Break) -> str:
        if not brk.client_order_id:
            return "-"
        return format_html(
            '{} &middot; <a class="timeline-link" href="{}">timeline</a>',
            brk.client_order_id,
            timeline_url(brk.client_order_id),
        )

    @admin.display(description="signals")
    def signals_display(self, brk: Break) -> str:
        if not brk.signal_ids:
            return "-"
        return format_html_join(
            "",
            '<div class="break-signal"><span class="signal-id">{}</span> &middot; '
            '<a class="timeline-link" href="{}">timeline</a></div>',
            (
                (s, timeline_url(signal_client_order_id(s), signal_id=s))
                for s in brk.signal_ids[:100]
            ),
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Also the breaks whose runs named the term as a signal id: found through the
        mismatches' indexed signal columns (the break keeps its ids as JSON)."""
        results, duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if term:
            signal_id = audit_signal_id(term)
            through = MismatchSignal.objects.filter(signal_id=signal_id).values_list(
                "mismatch__break_case_id", flat=True
            )
            direct = Mismatch.objects.filter(signal_id=signal_id).values_list(
                "break_case_id", flat=True
            )
            ids = {
                pk
                for rows in (through, direct)
                for pk in rows.order_by().distinct()[:_SIGNAL_SEARCH_LIMIT]
                if pk is not None
            }
            if ids:
                results = results | queryset.filter(Q(pk__in=sorted(ids)))
        return results, duplicates

    # The break's page: its story and the actions offered.

    def get_urls(self):
        return [
            path(
                "<int:break_id>/act/",
                self.admin_site.admin_view(self.act_view),
                name="reconciliation_break_act",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context=None):
        return super().changelist_view(request, {**WIDE, **(extra_context or {})})

    def change_view(self, request: HttpRequest, object_id, form_url="", extra_context=None):
        brk = self.get_object(request, object_id)  # None for a break of an account not granted
        if brk is None:  # the admin's own answer for a missing object
            return super().change_view(request, object_id, form_url, extra_context)
        context = {
            **WIDE,
            "break_case": brk,
            "occurrences": words.occurrences_page(brk, request.GET.get("runs")),
            "events": words.events_page(brk, request.GET.get("events")),
            "actions": words.actions_offered(request.user, brk),
            "dispositions": [(d.value, d.label) for d in PROPOSABLE],
            "text_max": words.services.TEXT_MAX,
            "overdue": words.is_overdue(brk),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra_context=context)

    def act_view(self, request: HttpRequest, break_id: int):
        """One action on a break (POST): the user must see the break and be offered the
        action; the service checks state and permission again under the row's lock."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        brk = self.get_object(request, str(break_id))
        if not self.has_view_permission(request, brk):
            raise PermissionDenied
        action = request.POST.get("action", "")
        try:
            words.break_act(action=action, brk=brk, user=request.user, data=request.POST)
        except BreakRefused as refused:
            self.message_user(request, f"Break #{brk.pk}: {refused}", messages.ERROR)
        else:
            self.message_user(request, f"Break #{brk.pk} {words.DONE[action]}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:reconciliation_break_change", args=[brk.pk]))
