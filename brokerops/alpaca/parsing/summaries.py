"""Order summaries: a page of orders held lean for a bulk comparison (reconciliation over
200,000 orders), each checked exactly as :func:`~.orders.parse_order` checks it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..types import OrderSummary, symbol_key
from .orders import ORDER_FIGURES, ORDER_PRICES, ORDER_STAMPS, ORDER_TEXTS, parse_order_row
from .values import (
    DECIMAL_CACHE,
    DECIMAL_ZERO,
    FINAL_DECIMAL,
    ParseError,
    bounded_decimal,
    broker_price,
    fromisoformat,
    require_list,
)

_Stamps = tuple[datetime | None, datetime | None]  # (submitted_at, created_at)


class SharedStrings:
    """Strings seen during one bulk read (statuses, sides, symbols and their keys), so that
    equal values are held once rather than once per order."""

    __slots__ = ("symbols", "words")

    def __init__(self) -> None:
        self.symbols: dict[str, tuple[str, str]] = {}  # symbol -> (symbol, its symbol key)
        self.words: dict[str, str] = {}


def parse_order_summaries(
    rows: Any, *, shared: SharedStrings | None = None
) -> tuple[list[OrderSummary], list[_Stamps]]:
    """A list of order objects -> one :class:`OrderSummary` per order, and each order's
    ``(submitted_at, created_at)`` (what paging needs).

    Every order is checked exactly as :func:`parse_order` checks it (same bounds, same
    timestamps, same errors): an order :func:`parse_order` refuses fails the whole list, and a
    summary holds the values :func:`parse_order` gives. Orders in the common form (every figure a
    plain decimal string already in bounds, every timestamp in UTC) are checked here without
    building an :class:`Order`; any other goes through :func:`parse_order` itself. ``shared``
    (one per bulk read) holds equal strings once.
    """
    fields, stamps = parse_order_summary_fields(rows, shared=shared)
    return [OrderSummary._make(f) for f in fields], stamps


def parse_order_summary_fields(
    rows: Any, *, shared: SharedStrings | None = None
) -> tuple[list[tuple[Any, ...]], list[_Stamps]]:
    """:func:`parse_order_summaries` with each summary as a plain tuple of
    :class:`OrderSummary`'s fields: the garbage collector stops tracking a plain tuple of strings
    and decimals (never a tuple subclass), so a bulk read of 200,000 orders adds nothing to the
    full collections that happen while it is held."""
    if shared is None:
        shared = SharedStrings()
    summaries: list[tuple[Any, ...]] = []
    stamps: list[_Stamps] = []
    for row in require_list(rows, "orders"):
        summary = _order_summary(row, shared)
        if summary is None:  # not in the common form: the general parser decides
            order = parse_order_row(row, owned=True)
            summary = (
                (
                    order.id,
                    order.client_order_id,
                    order.symbol,
                    symbol_key(order.symbol),
                    order.side,
                    order.status,
                    order.qty,
                    order.filled_qty,
                ),
                order.submitted_at,
                order.created_at,
            )
        summaries.append(summary[0])
        stamps.append((summary[1], summary[2]))
    return summaries, stamps


def _order_summary(
    row: Any, shared: SharedStrings
) -> tuple[tuple[Any, ...], datetime | None, datetime | None] | None:
    """``row`` checked as :func:`parse_order_row` checks it, when it is in the common form; None
    when it is not (the general parser then gives the answer, or the error)."""
    if type(row) is not dict:
        return None
    get = row.get
    order_id, client_order_id, symbol, side, status = (
        get("id"),
        get("client_order_id"),
        get("symbol"),
        get("side"),
        get("status"),
    )
    if not (
        type(order_id) is str
        and order_id
        and type(client_order_id) is str
        and client_order_id
        and type(symbol) is str
        and symbol
        and type(side) is str
        and side
        and type(status) is str
        and status
    ):
        return None
    figures = _common_figures(get)
    if figures is None:
        return None
    parsed = _common_stamps(get)
    if parsed is None:
        return None
    for key in ORDER_TEXTS:  # str() of anything but a string or null is the general path's
        value = get(key)
        if value is not None and type(value) is not str:
            return None
    symbols, words = shared.symbols, shared.words
    known = symbols.get(symbol)
    if known is None:
        known = symbols[symbol] = (symbol, symbol_key(symbol))
    filled_qty = figures[2]
    return (
        (  # OrderSummary's fields
            order_id,
            client_order_id,
            known[0],
            known[1],
            words.setdefault(side, side),
            words.setdefault(status, status),
            figures[0],
            filled_qty if filled_qty is not None else DECIMAL_ZERO,
        ),
        parsed[1],
        parsed[0],
    )


def _common_figures(get: Callable[[str], Any]) -> list[Decimal | None] | None:
    """:data:`ORDER_FIGURES` as the general parser reads them, when each is a string it would
    accept; None otherwise (the general parser then gives the answer, or the error)."""
    cached = DECIMAL_CACHE.get
    figures: list[Decimal | None] = []
    for key in ORDER_FIGURES:
        value = get(key)
        if value is None or value == "":
            figures.append(None)
            continue
        if type(value) is not str:
            return None
        figure = cached(value)
        if figure is None:
            if not FINAL_DECIMAL(value):
                if key not in ORDER_PRICES:
                    return None
                try:  # a price at any precision: checked here as the general path checks it
                    figure = broker_price(value, key, "order")
                except ParseError:
                    return None  # the general parser gives the error, naming the order
            else:
                figure = bounded_decimal(value, key, "order")  # in bounds: cannot raise
        figures.append(figure)
    return figures


def _common_stamps(get: Callable[[str], Any]) -> list[datetime | None] | None:
    """:data:`ORDER_STAMPS` when each is absent or a timestamp in UTC; None otherwise."""
    parsed: list[datetime | None] = []
    for key in ORDER_STAMPS:
        value = get(key)
        if value is None or value == "":
            parsed.append(None)
            continue
        if type(value) is not str:
            return None
        try:
            stamp = fromisoformat(value)
        except ValueError:
            return None
        if stamp.tzinfo is not UTC:
            return None
        parsed.append(stamp)
    return parsed
