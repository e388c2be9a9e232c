"""Read-only admin for the embedded store's signal documents (operators can look, not touch:
signals change only through the store's conditional transitions)."""

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.utils.html import format_html

from audit.models import AccessRecord
from brokerops.accounts import configured
from brokerops.intent.models import LocalSignal, stored_document_id
from brokerops.intent.schema import InvalidSignal, SignalStatus, parse_signal
from workspace.access import signal_documents_q, signal_owner
from workspace.admin.ledger import symbol_history
from workspace.admin.site import AccountScopedMixin, AuditListMixin, ReadOnlyMixin
from workspace.display import folded_json, plain_decimal, symbol_search_forms
from workspace.timeline import signal_client_order_id, timeline_url


class StatusFilter(admin.SimpleListFilter):
    """The known statuses as fixed options (an exact look-up on the indexed column), rather than
    a ``SELECT DISTINCT`` over every document on each page."""

    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [(s.value, s.value) for s in SignalStatus]

    def queryset(self, request, queryset):
        return queryset.filter(status=self.value()) if self.value() else queryset


@admin.register(LocalSignal)
class LocalSignalAdmin(AccountScopedMixin, AuditListMixin, ReadOnlyMixin, admin.ModelAdmin):
    access_what = AccessRecord.What.SIGNAL
    list_display = [
        "shown_id",
        "account_shown",
        "status",
        "symbol",
        "side",
        "quantity",
        "parses",
        "updated_at",
        "timeline",
    ]
    # No date hierarchy: its year/day links scan every document (the columns have no index).
    list_filter = [StatusFilter]
    search_fields = ["document_id__exact"]  # see get_search_results
    search_hint = "Searches match a whole signal id, or a symbol (any case, or part of it)."
    fields = [
        "document_id",
        "account_shown",
        "timeline",
        "symbol_activities",
        "status",
        "problems",
        "document",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    show_full_result_count = False

    def scope_to_accounts(self, queryset: QuerySet, visible: frozenset[str] | None) -> QuerySet:
        """A document's account is its ``account`` (none: the default account's), mirrored in
        an indexed column: :func:`workspace.access.signal_documents_q`."""
        documents = signal_documents_q(visible)
        return queryset if documents is None else queryset.filter(documents)

    def get_search_results(self, request, queryset, search_term):
        """The document whose id is the term (the unique index); else the documents whose
        symbol is the term in any case or form (``data->'symbol' IN (...)``), or contains it
        (``btc`` finds ``BTC/USD``): the JSON field has no index, so that read is the table's
        either way."""
        term = search_term.strip()
        if not term:
            return queryset, False
        by_id = queryset.filter(document_id=stored_document_id(term))
        if by_id.exists():
            return by_id, False
        forms = symbol_search_forms(term)
        symbol = Q(data__symbol__in=forms) | Q(data__symbol__icontains=term)
        return (queryset.filter(symbol) if forms else by_id), False

    @admin.display(description="timeline")
    def timeline(self, obj):
        """The timeline of the signal's entry order (the id its document records, else the
        deterministic one)."""
        url = timeline_url(signal_client_order_id(obj.signal_id, obj.data), signal_id=obj.signal_id)
        return format_html('<a class="timeline-link" href="{}">timeline</a>', url)

    @admin.display(description="document id", ordering="document_id")
    def shown_id(self, obj):
        """The id, quoted when it would not show (a single space, control characters)."""
        return str(obj)

    @admin.display(description="account")
    def account_shown(self, obj):
        """The account the document names; none: the default account's name; an account the
        configuration does not know, marked so."""
        named = obj.data.get("account") if isinstance(obj.data, dict) else None
        if named in (None, ""):
            return signal_owner(None)
        if not isinstance(named, str) or named not in configured():
            return f"{named} (not configured)"
        return named

    @admin.display(description="symbol")
    def symbol(self, obj):
        return _field(obj, "symbol")

    @admin.display(description="symbol")
    def symbol_activities(self, obj):
        symbol = obj.data.get("symbol") if isinstance(obj.data, dict) else None
        if not isinstance(symbol, str):
            return "-"
        named = obj.data.get("account")
        if named in (None, ""):
            account = signal_owner(None)
        else:  # an account not configured: the symbol's history in every account shown
            account = named if isinstance(named, str) and named in configured() else ""
        return symbol_history(symbol, account=account)

    @admin.display(description="side")
    def side(self, obj):
        return _field(obj, "side")

    @admin.display(description="qty / notional")
    def quantity(self, obj):
        qty = _number(obj, "qty")
        return qty if qty != "-" else f"${_number(obj, 'notional')}"

    @admin.display(description="parses", boolean=True)
    def parses(self, obj):
        return not isinstance(parse_signal(obj.document_id, obj.data), InvalidSignal)

    @admin.display(description="problems")
    def problems(self, obj):
        parsed = parse_signal(obj.document_id, obj.data)
        return "; ".join(parsed.reasons) if isinstance(parsed, InvalidSignal) else "none"

    @admin.display(description="document")
    def document(self, obj):
        return folded_json(obj.data, open_=True)


def _field(obj, name):
    value = obj.data.get(name) if isinstance(obj.data, dict) else None
    return "-" if value is None else str(value)


def _number(obj, name):
    """A quantity of the document without trailing zeros; as written when not a number."""
    value = obj.data.get(name) if isinstance(obj.data, dict) else None
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    try:
        return plain_decimal(value)
    except ArithmeticError:
        return str(value)
