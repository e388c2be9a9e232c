"""Alpaca's trading rules that need more than one request: fees, reservations, wash trades.

Pure functions over the book's records; the account and the matching engine call them under
the book's lock when the matching :class:`~brokerops.sim.fidelity.Fidelity` rule is on.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_DOWN, Decimal

from .errors import MSG_WASH_TRADE, ApiError, forbidden
from .model import Order
from .validation import OrderRequest

QTY_STEP = Decimal("0.000000001")
BPS = Decimal(10_000)
#: Intents of orders that open or grow a position: they hold buying power while open.
OPENING_INTENTS = frozenset({"buy_to_open", "sell_to_open"})
#: Order classes Alpaca exempts from the wash-trade check ("use complex orders").
COMPLEX_CLASSES = frozenset({"bracket", "oco", "oto"})
LIMIT_TYPES = frozenset({"limit", "stop_limit"})


def crypto_fee(qty: Decimal, fee_bps: Decimal) -> Decimal:
    """The taker fee, in coin, on a crypto buy of ``qty``: ``qty * fee_bps / 10000`` truncated to
    nine decimals plus one 1e-9 step, so the coin received is always strictly less than
    ``qty * (1 - fee)``; that reproduces Alpaca's example (0.0002 BTC bought at 25 bps holds
    0.000199499). No fee when ``fee_bps`` is 0."""
    if not fee_bps or qty <= 0:
        return Decimal(0)
    fee = (qty * fee_bps / BPS).quantize(QTY_STEP, rounding=ROUND_DOWN) + QTY_STEP
    return min(fee, qty)


def reference_price(order: Order) -> Decimal:
    """The price an open order is valued at: its limit, else its stop, else the current price."""
    if order.type in LIMIT_TYPES and order.limit_price is not None:
        return order.limit_price
    if order.type == "stop" and order.stop_price is not None:
        return order.stop_price
    return order.asset.price


def reserved_value(orders: Iterable[Order]) -> Decimal:
    """Buying power held by open opening orders: unfilled quantity times :func:`reference_price`
    (a notional order holds its unfilled notional)."""
    total = Decimal(0)
    for order in orders:
        if order.position_intent not in OPENING_INTENTS:
            continue
        if order.qty is None and order.notional is not None:
            paid = order.filled_qty * (order.filled_avg_price or Decimal(0))
            total += max(Decimal(0), order.notional - paid)
            continue
        total += order.remaining_qty(order.asset.price) * reference_price(order)
    return total


def _could_cross(buy_limit: Decimal | None, sell_limit: Decimal | None) -> bool:
    """Whether a buy and a sell could execute against each other (None: any price)."""
    if buy_limit is None or sell_limit is None:
        return True
    return buy_limit >= sell_limit


def wash_trade(request: OrderRequest, open_orders: Iterable[Order]) -> ApiError | None:
    """Alpaca's wash-trade refusal for ``request``, or None.

    The request is refused when an open order of the other side on the same symbol could execute
    against it: a market or stop order on either side always could, two limit (or stop-limit)
    orders could when the buy's limit is at or above the sell's. Trailing stops and complex
    orders are exempt, as at Alpaca. The 403 names the oldest such order (``existing_order_id``)
    and why (``reject_reason``: ``opposite side market/stop order exists`` or ``opposite side
    limit order exists``).
    """
    if request.type == "trailing_stop" or request.order_class in COMPLEX_CLASSES:
        return None
    own_limit = request.limit_price if request.type in LIMIT_TYPES else None
    for order in sorted(open_orders, key=lambda o: o.seq):
        if order.side == request.side or not order.is_open:
            continue
        if order.type == "trailing_stop" or order.order_class in COMPLEX_CLASSES:
            continue
        other_limit = order.limit_price if order.type in LIMIT_TYPES else None
        if request.side == "buy":
            crosses = _could_cross(own_limit, other_limit)
        else:
            crosses = _could_cross(other_limit, own_limit)
        if not crosses:
            continue
        kind = "limit" if order.type in LIMIT_TYPES else "market/stop"
        return forbidden(
            MSG_WASH_TRADE,
            existing_order_id=order.id,
            reject_reason=f"opposite side {kind} order exists",
        )
    return None
