"""Order attempts and their events in the admin.

The attempt's page is the one place that shows everything known about a ``client_order_id``:
the attempt, its events in time order and the reconciliation mismatches that name it.
"""

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html_join

from brokerops.admin import AuditTrailAdmin, AuditTrailInline
from reconciliation.admin import EXACT_SEARCH
from reconciliation.models import Mismatch

from .models import OrderAttempt, OrderEvent
from .services.resync import order_attempts_request_resync


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
        "payload",
    )
    readonly_fields = fields
    ordering = ("created_at", "id")


@admin.register(OrderAttempt)
class OrderAttemptAdmin(AuditTrailAdmin):
    list_display = (
        "client_order_id",
        "created_at",
        "signal_id",
        "symbol",
        "side",
        "order_type",
        "qty",
        "notional",
        "status",
        "broker_status",
        "filled_qty",
        "alpaca_order_id",
    )
    list_filter = ("status", "side", "order_type", "adopted", "created_at")
    search_fields = EXACT_SEARCH
    inlines = (OrderEventInline,)
    readonly_fields = ("related_mismatches",)
    actions = ("resync",)

    def has_resync_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.resync_orderattempt")

    @admin.action(description="Re-sync selected attempts with Alpaca", permissions=["resync"])
    def resync(self, request: HttpRequest, queryset) -> None:
        count = order_attempts_request_resync(
            attempt_ids=list(queryset.values_list("pk", flat=True)),
            actor=request.user.get_username(),
        )
        self.message_user(request, f"Re-sync requested for {count} attempt(s).", messages.SUCCESS)

    @admin.display(description="Reconciliation mismatches naming this order")
    def related_mismatches(self, attempt: OrderAttempt) -> str:
        rows = (
            Mismatch.objects.filter(client_order_id=attempt.client_order_id)
            .select_related("outcome")
            .order_by("created_at", "id")
        )
        if not rows:
            return "none"
        return format_html_join(
            "",
            "<div>{} &middot; run #{} &middot; {} &middot; {}</div>",
            (
                (m.created_at, m.run_id, m.kind, Mismatch.Action(m.outcome_action).label)
                for m in rows
            ),
        )


@admin.register(OrderEvent)
class OrderEventAdmin(AuditTrailAdmin):
    list_display = (
        "created_at",
        "attempt",
        "kind",
        "status_from",
        "status_to",
        "http_status",
        "actor",
    )
    list_filter = ("kind", "created_at")
    list_select_related = ("attempt",)
    search_fields = (
        "attempt__client_order_id__exact",
        "attempt__signal_id__exact",
        "attempt__alpaca_order_id__exact",
    )
