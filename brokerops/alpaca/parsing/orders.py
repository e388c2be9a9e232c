"""Orders: one order object (``GET``/``POST /v2/orders``, the trade-updates stream) or a page of
them, into :class:`~brokerops.alpaca.types.Order` with every figure bounded."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ..types import Order
from .values import (
    DECIMAL_ZERO,
    MAX_PLACES,
    ParseError,
    bounded_decimal,
    flag,
    fromisoformat,
    parse_timestamp,
    require_list,
    require_mapping,
)

#: An order's figures, in :class:`Order`'s order.
ORDER_FIGURES = ("qty", "notional", "filled_qty", "filled_avg_price", "limit_price", "stop_price")
#: Of those, the prices and money: exact at any precision (the others are quantities).
ORDER_PRICES = frozenset({"notional", "filled_avg_price", "limit_price", "stop_price"})
#: An order's timestamps, in :class:`Order`'s order.
ORDER_STAMPS = ("created_at", "submitted_at", "updated_at", "filled_at", "canceled_at")
#: The texts read with ``str()`` (anything else, a string or null).
ORDER_TEXTS = ("type", "order_type", "time_in_force")


def parse_order(data: Any) -> Order:
    """One order object -> :class:`Order` (``raw`` is a copy of ``data``)."""
    return parse_order_row(data, owned=False)


def parse_orders(rows: Any) -> list[Order]:
    """A list of order objects freshly decoded from a body (nobody else holds them: each becomes
    its order's ``raw`` as it is, without a copy)."""
    return [parse_order_row(row, owned=True) for row in require_list(rows, "orders")]


def parse_order_row(data: Any, *, owned: bool) -> Order:
    """One order object -> :class:`Order`; ``owned``: nobody else holds ``data``, so it becomes
    ``raw`` without a copy."""
    if type(data) is not dict:
        data = dict(require_mapping(data, "order"))
    elif not owned:
        data = dict(data)
    get = data.get
    order_id = get("id")
    if not isinstance(order_id, str) or not order_id:
        raise ParseError("order: missing or invalid 'id'")
    what = f"order {order_id}"
    client_order_id, symbol, side, status = (
        get("client_order_id"),
        get("symbol"),
        get("side"),
        get("status"),
    )
    for key, value in (
        ("client_order_id", client_order_id),
        ("symbol", symbol),
        ("side", side),
        ("status", status),
    ):
        if not isinstance(value, str) or not value:
            raise ParseError(f"{what}: missing or invalid {key!r}")
    qty, notional, filled_qty, filled_avg_price, limit_price, stop_price = _figures(data, what)
    created_at, submitted_at, updated_at, filled_at, canceled_at = _stamps(data, what)
    return Order(
        id=order_id,
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        # "order_type" is deprecated: "type" wins when both are present.
        order_type=str(get("type") or get("order_type") or ""),
        time_in_force=str(get("time_in_force") or ""),
        status=status,
        qty=qty,
        notional=notional,
        filled_qty=filled_qty if filled_qty is not None else DECIMAL_ZERO,
        filled_avg_price=filled_avg_price,
        limit_price=limit_price,
        stop_price=stop_price,
        extended_hours=flag(data, "extended_hours"),
        created_at=created_at,
        submitted_at=submitted_at,
        updated_at=updated_at,
        filled_at=filled_at,
        canceled_at=canceled_at,
        raw=data,
    )


def _figures(data: dict[str, Any], what: str) -> list[Decimal | None]:
    """:data:`ORDER_FIGURES` of ``data``, each bounded (``None`` when absent, null or empty)."""
    figures: list[Decimal | None] = []
    for key in ORDER_FIGURES:
        value = data.get(key)
        figures.append(
            None
            if value is None or value == ""
            else bounded_decimal(
                value, key, what, max_places=None if key in ORDER_PRICES else MAX_PLACES
            )
        )
    return figures


def _stamps(data: dict[str, Any], what: str) -> list[datetime | None]:
    """:data:`ORDER_STAMPS` of ``data`` as :func:`parse_timestamp` reads them, UTC ones (the
    common case) without its general path."""
    stamps: list[datetime | None] = []
    for key in ORDER_STAMPS:
        value = data.get(key)
        if value is None or value == "":
            stamps.append(None)
            continue
        if type(value) is str:
            try:
                parsed = fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.tzinfo is UTC:  # "Z" or +00:00: already what parse_timestamp returns
                    stamps.append(parsed)
                    continue
        stamps.append(parse_timestamp(value, key, what))
    return stamps
