"""Read-only admin for the embedded store's signal documents (operators can look, not touch:
signals change only through the store's conditional transitions)."""

import json

from django.contrib import admin
from django.utils.html import format_html

from brokerops.intent.models import LocalSignal
from brokerops.intent.schema import InvalidSignal, parse_signal


@admin.register(LocalSignal)
class LocalSignalAdmin(admin.ModelAdmin):
    list_display = ["shown_id", "status", "symbol", "side", "quantity", "parses", "updated_at"]
    list_filter = ["status"]
    search_fields = ["=document_id", "data__symbol"]
    date_hierarchy = "updated_at"
    fields = ["document_id", "status", "problems", "document", "created_at", "updated_at"]
    readonly_fields = fields
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="document id", ordering="document_id")
    def shown_id(self, obj):
        """The id, quoted when it would not show (a single space, control characters)."""
        return str(obj)

    @admin.display(description="symbol")
    def symbol(self, obj):
        return _field(obj, "symbol")

    @admin.display(description="side")
    def side(self, obj):
        return _field(obj, "side")

    @admin.display(description="qty / notional")
    def quantity(self, obj):
        qty = _field(obj, "qty")
        return qty if qty != "-" else f"${_field(obj, 'notional')}"

    @admin.display(description="parses", boolean=True)
    def parses(self, obj):
        return not isinstance(parse_signal(obj.document_id, obj.data), InvalidSignal)

    @admin.display(description="problems")
    def problems(self, obj):
        parsed = parse_signal(obj.document_id, obj.data)
        return "; ".join(parsed.reasons) if isinstance(parsed, InvalidSignal) else "none"

    @admin.display(description="document")
    def document(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.data, indent=2, sort_keys=True))


def _field(obj, name):
    value = obj.data.get(name) if isinstance(obj.data, dict) else None
    return "-" if value is None else str(value)
