"""The account's activities in the admin (docs/design.md section 18.2): read-only, kept to the
accounts the user may see, filtered by account, type and date, searched by symbol (any form,
exactly), order id or activity id, exported as CSV like every audit list.

A symbol's history is this list filtered by the symbol (:func:`activities_url`); an order's
activities also show on its timeline (:mod:`workspace.timeline`).
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from brokerops.alpaca.types import ACTIVITY_FAMILIES
from ledger.models import AccountActivity
from workspace.admin.site import AccountScopedMixin, AuditTrailAdmin
from workspace.display import SymbolSearchMixin, decimal_display, json_display
from workspace.filters import AccountListFilter


def activities_url(*, symbol: str = "", order_id: str = "", account: str = "") -> str:
    """The activities list kept to a symbol (as stored), an Alpaca order id or an account."""
    url = reverse("admin:ledger_accountactivity_changelist")
    query = {
        name: value
        for name, value in (("symbol", symbol), ("order_id", order_id), ("account", account))
        if value
    }
    return f"{url}?{urlencode(query)}" if query else url


def symbol_history(symbol: str, *, account: str = "") -> str:
    """``symbol · activities``: the symbol, linked to its history in ``account`` (what a break's
    or a signal's page shows); ``-`` without a symbol."""
    if not symbol:
        return "-"
    return format_html(
        '{} &middot; <a class="activities-link" href="{}">activities</a>',
        symbol,
        activities_url(symbol=symbol, account=account),
    )


def family_of(activity_type: str) -> str:
    """What kind of activity a type is (``SPLIT`` for ``SSP``, ``DIV`` for every ``DIV*``), or
    ``unknown type`` for one this code does not know: stored and shown all the same."""
    kind = activity_type.upper()
    family = ACTIVITY_FAMILIES.get(kind) or ("DIV" if kind.startswith("DIV") else None)
    return family or "unknown type"


@admin.register(AccountActivity)
class AccountActivityAdmin(AccountScopedMixin, SymbolSearchMixin, AuditTrailAdmin):
    list_display = (
        "occurred_at",
        "account",
        "activity_type",
        "kind",
        "sub_type",
        "symbol",
        "side",
        "qty_display",
        "price_display",
        "net_amount_display",
        "order_id",
        "description",
        "activity_id",
        "recorded_at",
    )
    list_filter = (
        ("account", AccountListFilter),
        "activity_type",
        "occurred_at",
    )
    search_fields = ("activity_id__exact", "order_id__exact", "account__exact")
    fields = (
        "account",
        "activity_id",
        "activity_type",
        "kind",
        "sub_type",
        "symbol",
        "side",
        "qty_display",
        "price_display",
        "net_amount_display",
        "occurred_at",
        "order_id",
        "status",
        "description",
        "raw_display",
        "recorded_at",
        "hash",
        "prev_hash",
    )
    readonly_fields = fields
    qty_display = decimal_display("qty", exact=True)
    price_display = decimal_display("price", exact=True)
    net_amount_display = decimal_display("net_amount", "net amount", exact=True)
    raw_display = json_display("raw", "body as received")

    @admin.display(description="kind", ordering="activity_type")
    def kind(self, activity: AccountActivity) -> str:
        return family_of(activity.activity_type)
