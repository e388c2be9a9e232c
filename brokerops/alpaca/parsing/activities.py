"""Account activities: ``GET /v2/account/activities`` (docs/design.md section 18).

Alpaca sends two shapes, and field names vary between them and between kinds:

- the Trading API's list (the legacy REST shape): ``id``; a fill has ``type``
  (``fill``/``partial_fill``), ``transaction_time``, ``side``, ``order_id``, ``cum_qty``,
  ``leaves_qty``; a non-trade activity has ``activity_sub_type``, ``date``, ``description``,
  ``per_share_amount``, ``net_amount``, ``status``;
- the Activity SSE's events (the newer shape): ``ref_id``, ``activity_subtype``, ``executed_at``,
  ``settle_date``, and the symbol, side and order id inside ``details`` (a name change or merger
  names ``old_symbol``/``new_symbol`` or ``acquiree_symbol``/``acquirer_symbol`` there instead).

Both parse into one :class:`~brokerops.alpaca.types.Activity`. The rules: only an id and a type
are required (a row without an id cannot be stored once, so it makes the page malformed); every
other field may be missing (None); an unknown type or sub-type is kept as sent, never refused;
quantities, prices and amounts are exact decimals at any precision (a crypto quantity has 9 and
more decimals) and bounded under ``1e12``; a figure that is not a number fails the page
(:class:`ParseError`), as in every other read.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..types import Activity
from .values import ParseError, broker_price, parse_timestamp, require_list, require_mapping

#: Where the time of an activity is, first found wins: the execution, then the day it settled.
_TIME_KEYS = ("transaction_time", "executed_at", "created_at", "date", "settle_date")
#: Where the symbol of a leg that leaves (negative qty) or arrives (positive) is named.
_OLD_SYMBOL_KEYS = ("old_symbol", "acquiree_symbol", "source_symbol")
_NEW_SYMBOL_KEYS = ("new_symbol", "acquirer_symbol")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _first(data: Mapping[str, Any], details: Mapping[str, Any], *keys: str) -> str | None:
    for source in (data, details):
        for key in keys:
            text = _text(source.get(key))
            if text is not None:
                return text
    return None


def _figure(data: Mapping[str, Any], key: str, what: str) -> Decimal | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    return broker_price(value, key, what)  # exact at any precision, bounded


def _time(data: Mapping[str, Any], what: str) -> datetime | None:
    for key in _TIME_KEYS:
        value = data.get(key)
        if value not in (None, ""):
            return parse_timestamp(value, key, what)
    return None


def _symbol(data: Mapping[str, Any], details: Mapping[str, Any], qty: Decimal | None):
    symbol = _first(data, details, "symbol")
    if symbol is not None or qty is None or not qty:
        return symbol
    keys = _OLD_SYMBOL_KEYS if qty < 0 else _NEW_SYMBOL_KEYS
    return _first(details, {}, *keys)


def parse_activity(data: Any) -> Activity:
    """One activity of either shape (see the module docstring)."""
    data = require_mapping(data, "activity")
    ident = _text(data.get("id")) or _text(data.get("ref_id"))
    if ident is None:
        raise ParseError("activity: missing 'id'")
    what = f"activity {ident}"
    activity_type = _text(data.get("activity_type"))
    if activity_type is None:
        raise ParseError(f"{what}: missing 'activity_type'")
    details = data.get("details")
    details = details if isinstance(details, Mapping) else {}
    if activity_type.upper() in ("FILL", "TRD"):
        sub_type = _first(data, details, "type", "execution_type")
    else:
        sub_type = _first(data, {}, "activity_sub_type", "activity_subtype")
    qty = _figure(data, "qty", what)
    return Activity(
        id=ident,
        activity_type=activity_type,
        sub_type=sub_type,
        symbol=_symbol(data, details, qty),
        qty=qty,
        price=_figure(data, "price", what),
        net_amount=_figure(data, "net_amount", what),
        time=_time(data, what),
        order_id=_first(data, details, "order_id"),
        side=_first(data, details, "side"),
        status=_first(data, {}, "status", "order_status"),
        description=_text(data.get("description")),
        raw=dict(data),
    )


def parse_activities(rows: Any) -> list[Activity]:
    """A page of activities, in the order sent (repeats and order are the reader's concern)."""
    return [parse_activity(row) for row in require_list(rows, "activities")]
