"""Order attempts and their events in the admin.

The attempt's page is the one place that shows everything known about a ``client_order_id``:
the attempt, its events in time order and the reconciliation mismatches that name it.
"""

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from audit.models import AccessRecord
from orders.models import OrderAttempt, OrderEvent, OrderExecution
from orders.services.resync import order_attempts_request_resync
from reconciliation.models import Mismatch, MismatchSignal
from workspace.access import only_visible
from workspace.admin.reconciliation import EXACT_SEARCH
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
from workspace.timeline import timeline_url

_MISMATCHES_SHOWN = 200


def timeline_link(client_order_id: str, label: str = "timeline") -> str:
    """A link to the timeline page of ``client_order_id`` ("-" when there is none)."""
    if not client_order_id:
        return "-"
    return format_html(
        '<a class="timeline-link" href="{}">{}</a>', timeline_url(client_order_id), label
    )


class OrderEventInline(AuditTrailInline):
    model = OrderEvent
    fields = (
        "created_at",
        "kind",
        "status_from",
        "status_to",
        "http_status",
        "message",
        "actor",
        "payload_display",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")
    payload_display = json_display("payload")


class AttemptAccountColumn(AccountScopedMixin):
    """Rows that belong to an account through their attempt: kept to the user's accounts, with
    the account as a column, a filter and a search term."""

    account_path = "attempt__account"

    @admin.display(description="account", ordering="attempt__account")
    def account(self, obj) -> str:
        return obj.attempt.account

    account.plain_value_of = "attempt__account"  # the export reads it as a plain column


class RejectionFilter(admin.SimpleListFilter):
    """Rejected attempts by where they were stopped: before sending (our validation, a conflict,
    another account's signal: no request ever left) or by the broker (a request was sent, or the
    broker knows the order: it refused it at once or later)."""

    title = "rejection"
    parameter_name = "rejected"
    BEFORE_SENDING = "before_sending"
    BY_BROKER = "by_broker"

    def lookups(self, request: HttpRequest, model_admin):
        return [
            (self.BEFORE_SENDING, "Rejected before sending"),
            (self.BY_BROKER, "Refused by the broker"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() not in (self.BEFORE_SENDING, self.BY_BROKER):
            return queryset
        sent = Exists(
            OrderEvent.objects.filter(attempt_id=OuterRef("pk"), kind=OrderEvent.Kind.REQUEST_SENT)
        )
        at_broker = ~Q(alpaca_order_id="") | ~Q(broker_status="") | Q(sent)
        rejected = queryset.filter(status=OrderAttempt.Status.REJECTED)
        if self.value() == self.BY_BROKER:
            return rejected.filter(at_broker)
        return rejected.exclude(at_broker)


@admin.register(OrderAttempt)
class OrderAttemptAdmin(AccountScopedMixin, SymbolSearchMixin, AuditTrailAdmin):
    access_what = AccessRecord.What.ATTEMPT

    def access_object_id(self, object_id: str) -> str:
        """The attempt by its client_order_id, as the timeline's records name it."""
        found = OrderAttempt.objects.filter(pk=object_id).values_list("client_order_id", flat=True)
        return found.first() or object_id

    list_display = (
        "client_order_id",
        "account",
        "created_at",
        "signal_id",
        "symbol",
        "side",
        "order_type",
        "qty_display",
        "notional_display",
        "status",
        "broker_status",
        "filled_qty_display",
        "reason",
        "alpaca_order_id",
        "timeline",
    )
    list_filter = (
        ("account", AccountListFilter),
        "status",
        RejectionFilter,
        "side",
        "order_type",
        "adopted",
        "created_at",
    )
    # The symbol is searched in every stored form (SymbolSearchMixin), exactly.
    search_fields = (*(f for f in EXACT_SEARCH if not f.startswith("symbol")), "account__exact")
    inlines = (OrderEventInline,)
    fields = (
        "timeline",
        "account",
        "client_order_id",
        "signal_id",
        "leg",
        "alpaca_order_id",
        "symbol",
        "side",
        "order_type",
        "time_in_force",
        "qty_display",
        "notional_display",
        "limit_price_display",
        "stop_price_display",
        "extended_hours",
        "status",
        "broker_status",
        "filled_qty_display",
        "filled_avg_price_display",
        "reason",
        "adopted",
        "request_payload_display",
        "created_at",
        "updated_at",
        "submitted_at",
        "last_synced_at",
        "related_mismatches",
    )
    readonly_fields = fields
    actions = ("resync",)

    qty_display = decimal_display("qty")
    notional_display = decimal_display("notional", exact=True)
    limit_price_display = decimal_display("limit_price", "limit price", exact=True)
    stop_price_display = decimal_display("stop_price", "stop price", exact=True)
    filled_qty_display = decimal_display("filled_qty", "filled qty")
    filled_avg_price_display = decimal_display("filled_avg_price", "filled avg price", exact=True)
    request_payload_display = json_display("request_payload", "request payload")

    @admin.display(description="timeline")
    def timeline(self, attempt: OrderAttempt) -> str:
        return timeline_link(attempt.client_order_id)

    def has_resync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.resync_orderattempt")

    @admin.action(description="Re-sync selected attempts with Alpaca", permissions=["resync"])
    def resync(self, request: HttpRequest, queryset) -> None:
        count = order_attempts_request_resync(
            attempt_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user.get_username(),
        )
        self.message_user(request, f"Re-sync requested for {count} attempt(s).", messages.SUCCESS)

    @admin.display(description="Reconciliation mismatches naming this order or its signal")
    def related_mismatches(self, attempt: OrderAttempt) -> str:
        naming = Q(client_order_id=attempt.client_order_id)
        if attempt.signal_id:  # and those about its signal (ids first: an index look-up)
            naming |= Q(
                pk__in=list(
                    MismatchSignal.objects.filter(signal_id=attempt.signal_id)
                    .order_by("-mismatch_id")
                    .values_list("mismatch_id", flat=True)[:_MISMATCHES_SHOWN]
                )
            )
        rows = list(
            only_visible(Mismatch.objects.filter(naming), viewer_accounts(attempt))
            .with_final_action()
            .select_related("run")
            .order_by("created_at", "id")[:_MISMATCHES_SHOWN]
        )
        if not rows:
            return "none"
        return format_html_join(
            "",
            '<div class="related-mismatch"><a href="{}">mismatch #{}</a> &middot; {} &middot; '
            '<a href="{}">run #{}</a> &middot; {} &middot; {}</div>',
            (
                (
                    reverse("admin:reconciliation_mismatch_change", args=[m.pk]),
                    m.pk,
                    timestamp_display(m.created_at),
                    reverse("admin:reconciliation_reconciliationrun_change", args=[m.run_id]),
                    m.run_id,
                    m.kind,
                    m.outcome_label,
                )
                for m in rows
            ),
        )


@admin.register(OrderEvent)
class OrderEventAdmin(AttemptAccountColumn, SymbolSearchMixin, AuditTrailAdmin):
    list_display = (
        "created_at",
        "account",
        "attempt",
        "kind",
        "status_from",
        "status_to",
        "http_status",
        "actor",
        "timeline",
    )
    list_filter = (("attempt__account", AccountListFilter), "kind", "created_at")
    list_select_related = ("attempt",)
    search_fields = (
        "attempt__client_order_id__exact",
        "attempt__signal_id__exact",
        "attempt__alpaca_order_id__exact",
        "attempt__account__exact",
    )
    symbol_search_field = "attempt__symbol"
    fields = (
        "attempt",
        "account",
        "timeline",
        "kind",
        "created_at",
        "status_from",
        "status_to",
        "http_status",
        "message",
        "actor",
        "payload_display",
        "prev_hash",
        "hash",
    )
    readonly_fields = fields
    payload_display = json_display("payload")

    @admin.display(description="timeline")
    def timeline(self, event: OrderEvent) -> str:
        return timeline_link(event.attempt.client_order_id)


@admin.register(OrderExecution)
class OrderExecutionAdmin(AttemptAccountColumn, SymbolSearchMixin, AuditTrailAdmin):
    """Fills as Alpaca pushed them (read-only like the rest of the trail)."""

    list_display = (
        "received_at",
        "account",
        "execution_id",
        "attempt",
        "event",
        "qty_display",
        "price_display",
        "position_qty_display",
        "executed_at",
        "timeline",
    )
    list_filter = (("attempt__account", AccountListFilter), "event", "received_at")
    list_select_related = ("attempt",)
    search_fields = (
        "execution_id__exact",
        "attempt__client_order_id__exact",
        "attempt__signal_id__exact",
        "attempt__alpaca_order_id__exact",
        "attempt__account__exact",
    )
    symbol_search_field = "attempt__symbol"
    fields = (
        "execution_id",
        "attempt",
        "account",
        "timeline",
        "event",
        "qty_display",
        "price_display",
        "position_qty_display",
        "executed_at",
        "received_at",
    )
    readonly_fields = fields
    qty_display = decimal_display("qty")
    price_display = decimal_display("price", exact=True)
    position_qty_display = decimal_display("position_qty", "position qty")

    @admin.display(description="timeline")
    def timeline(self, execution: OrderExecution) -> str:
        return timeline_link(execution.attempt.client_order_id)
