"""One value as a CSV cell, by the export's rules (:mod:`workspace.export`): timestamps in ISO
8601 UTC, quantities without trailing zeros, booleans as ``true``/``false``, HTML as its text, the
admin's ``-`` as an empty cell, and a text a spreadsheet would read as a formula made inert
(docs/design.md section 7)."""

from __future__ import annotations

import csv
import html
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.safestring import SafeData

from brokerops.fields import plain_decimal_text
from brokerops.text import FORMULA_STARTS, neutralise_formula


def plain_decimal(value: Decimal) -> str:
    """``10.000000000`` -> ``10``, ``0.500`` -> ``0.5``, never an exponent, every digit."""
    return plain_decimal_text(value)


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds and ``Z`` (naive values are taken as UTC)."""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


#: What the admin shows for an empty value (``empty_value_display``): an empty cell in the CSV.
EMPTY_DISPLAY = "-"


def display_text_cell(text: str) -> str:
    """Admin text as a cell: made inert for spreadsheets (:func:`brokerops.text.neutralise_formula`,
    the one rule), and the admin's empty mark (``-``, however padded) an empty cell, never
    ``'-``: nothing a spreadsheet could evaluate, and nothing a reader would take for a value."""
    if text.startswith(FORMULA_STARTS):  # the common case (no formula start) tests only this
        return "" if text.strip() == EMPTY_DISPLAY else neutralise_formula(text)
    return text


def csv_cell(value: Any) -> str:
    """One value as plain CSV text (see the module's docstring for the rules)."""
    if type(value) is str:  # the common case first (not SafeString: that may be HTML)
        return display_text_cell(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return plain_decimal(value) if value.is_finite() else str(value)
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    if isinstance(value, SafeData):  # admin HTML (links, icons): its text only
        text = html.unescape(strip_tags(text))
    return display_text_cell(text)


def text_cell(value: Any) -> str:
    """A stored text as its cell (the fast path of :func:`csv_cell` for text columns)."""
    if value is None:
        return ""
    text = value if type(value) is str else str(value)
    return display_text_cell(text)


def csv_writer(out: io.StringIO) -> Any:
    """The project's CSV writer: every text cell quoted (numbers it was given as numbers are
    not), so no separator a spreadsheet may split at (``;``, a tab) cuts a cell in two."""
    return csv.writer(out, quoting=csv.QUOTE_NONNUMERIC)
