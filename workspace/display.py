"""Readable values for the admin (docs/design.md section 7): one place for how figures, JSON and
symbols look and are searched, shared by every audit admin.

- quantities and prices without trailing zeros (``10.000000000`` -> ``10``, ``0.5`` stays);
- JSON pretty-printed and folded in a ``<details>`` element;
- a symbol search term in every form the trail stores a symbol in (:func:`symbol_search_forms`),
  for exact, indexed look-ups;
- timestamps (:func:`when`, the one definition every page uses: the ``when`` template filter,
  :func:`datetime_display` columns): to the millisecond, in the viewer's zone (the browser's,
  :mod:`workspace.zone`), the zone named; exports keep ISO 8601 UTC (:mod:`workspace.cells`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.db.models import DecimalField, Model, QuerySet
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from brokerops.fields import plain_decimal_text
from brokerops.intent.signal_model import CRYPTO_QUOTES
from brokerops.symbols import symbol_key
from orders.lifecycle import AttemptStatus

EMPTY = "-"


def plain_decimal(value: Decimal | int | float | str | None) -> str:
    """A number as people write it: no trailing zeros, no exponent (``1E+1`` -> ``10``)."""
    if value is None or value == "":
        return EMPTY
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if not number.is_finite():
        return str(number)
    return plain_decimal_text(number)  # every digit: a broker price may carry 30


def when(value: Any) -> str:
    """A timestamp as every page shows it: in the viewer's zone (the active time zone, set per
    request by :mod:`workspace.zone`), to the millisecond, the zone named by its abbreviation
    (``2026-11-25 17:48:03.120 CET``; a zone without one reads as its offset, ``+03``)."""
    if value is None or value == "":
        return EMPTY
    if not isinstance(value, datetime):
        return formats.localize(value) if isinstance(value, date) else str(value)
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    zone = local.tzname() or ""
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {zone}".rstrip()


#: The former name, kept for the pages that format timestamps in HTML.
timestamp_display = when


#: Signal statuses in words (the store keeps them as upper-case codes).
SIGNAL_STATUS_WORDS = {
    "PENDING": "pending (not sent yet)",
    "SUBMITTED": "submitted to the broker",
    "ACTIVE": "active (filled, position open)",
    "CLOSED": "closed",
    "CLOSED_MANUAL": "closed by reconciliation",
    "CANCELED": "canceled",
    "REJECTED": "rejected",
}


def status_words(code: Any) -> str:
    """A status code as words: a signal's (``CLOSED_MANUAL`` -> "closed by reconciliation"),
    an order attempt's (``partially_filled`` -> "Partially filled", its label), else the code
    with its underscores as spaces, in lower case (a code nobody mapped still reads)."""
    text = "" if code is None else str(code)
    if not text:
        return EMPTY
    if text in SIGNAL_STATUS_WORDS:
        return SIGNAL_STATUS_WORDS[text]
    if text in AttemptStatus.values:
        return str(AttemptStatus(text).label)
    return text.replace("_", " ").lower()


def datetime_display(field: str, description: str | None = None) -> Callable[[Any, Model], str]:
    """An admin column/read-only field showing the timestamp ``field`` by :func:`when`, sortable
    by it; the CSV export writes the stored value (ISO 8601 UTC: its ``ordering`` names it)."""

    @admin.display(description=description or field.replace("_", " "), ordering=field)
    def show(self: Any, obj: Model) -> str:
        return when(getattr(obj, field))

    show.__name__ = f"{field}_display"
    return show


def decimal_display(
    field: str, description: str | None = None, *, exact: bool = False
) -> Callable[[Any, Model], str]:
    """An admin column/read-only field showing ``field`` with :func:`plain_decimal`, sortable
    by the column. Assign it on the admin class (``qty_display = decimal_display("qty")``).
    ``exact``: a broker price column (:class:`~brokerops.fields.ExactDecimalField`, stored as
    text) sorts by its number, not its text ("9" before "10")."""
    ordering: Any = field
    if exact:
        ordering = Cast(field, output_field=DecimalField(max_digits=65, decimal_places=30))

    @admin.display(description=description or field.replace("_", " "), ordering=ordering)
    def show(self: Any, obj: Model) -> str:
        return plain_decimal(getattr(obj, field))

    show.__name__ = f"{field}_display"
    return show


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON with sorted keys (non-ASCII kept readable)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def json_summary(value: Any, label: str = "details") -> str:
    """A folded block's summary in words ("Show the details (3 fields)"), never its keys: they
    are codes (``by_kind``, ``timings``) the block itself shows when opened."""
    if isinstance(value, Mapping):
        count = len(value)
        return f"Show the {label} ({count} field{'s' if count != 1 else ''})" if count else "empty"
    if isinstance(value, list):
        return f"Show the {label} ({len(value)} item{'s' if len(value) != 1 else ''})"
    return str(value)


def folded_json(
    value: Any, *, summary: str | None = None, open_: bool = False, label: str = "details"
) -> SafeString:
    """``value`` pretty-printed inside ``<details>`` (folded unless ``open_``)."""
    if value in (None, {}, []):
        return format_html('<span class="json-empty">{}</span>', "empty" if value == {} else EMPTY)
    return format_html(
        '<details class="json-folded"{}><summary>{}</summary><pre>{}</pre></details>',
        " open" if open_ else "",
        summary or json_summary(value, label),
        pretty_json(value),
    )


def json_display(field: str, description: str | None = None) -> Callable[[Any, Model], str]:
    """A read-only field showing the JSON ``field`` pretty-printed and folded."""

    label = description or field.replace("_", " ")

    @admin.display(description=label)
    def show(self: Any, obj: Model) -> str:
        return folded_json(getattr(obj, field), label=label.split(" (")[0])

    show.__name__ = f"{field}_display"
    return show


def symbol_search_forms(term: str) -> list[str]:
    """Every form a symbol typed as ``term`` is stored in, for an exact ``__in`` look-up.

    The trail stores symbols in two forms: the comparison form of :func:`symbol_key`
    (mismatches: ``BTCUSD``, ``AAPL``) and the order form (attempts: ``BTC/USD``, ``AAPL``).
    ``msft``, ``MSFT`` and `` Msft `` give ``["MSFT"]``; ``btc/usd``, ``BTC-USD`` and
    ``btcusd`` give ``["BTC-USD", "BTC/USD", "BTCUSD"]`` (the key and the pair written with
    each separator). Empty for a blank term.
    """
    key = symbol_key(term)
    if not key:
        return []
    forms = {key, term.strip().upper()}
    for quote in CRYPTO_QUOTES:
        base = key[: -len(quote)]
        if key.endswith(quote) and base.isalnum():
            forms.update({f"{base}/{quote}", f"{base}-{quote}"})
    return sorted(forms)


class SymbolSearchMixin:
    """Admin search that also finds rows by symbol, typed in any case or form: the term's forms
    (:func:`symbol_search_forms`) are looked up exactly on ``symbol_search_field`` (an indexed
    column: ``symbol__in``), ORed with the ``search_fields`` matches."""

    symbol_search_field = "symbol"

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        results, may_have_duplicates = super().get_search_results(  # type: ignore[misc]
            request, queryset, search_term
        )
        forms = symbol_search_forms(search_term)
        if forms and self.symbol_search_field:
            results = results | queryset.filter(**{f"{self.symbol_search_field}__in": forms})
        return results, may_have_duplicates
