"""The paper broker's fill model: when an order executes, at what price and quantity, what an
execution moves, and the fill delay an order waits out first. ``engine.py`` applies what this
decides (under the book's lock).

- a new order reaches the market when it is submitted, or, with ``fidelity.fill_delay_s`` > 0,
  that many seconds later: until then it is ``pending_new`` with nothing filled and the fill
  model leaves it alone (:class:`Delays`; ``Book.release_due`` releases it, ``PaperBroker``
  runs a thread that does so on time, ``Book.settle`` waits for it);
- on reaching the market a market order fills in full at the asset's current price;
- a limit order fills at the current price once that price crosses the limit (buy: price <= limit,
  sell: price >= limit), checked when it reaches the market and on every ``Book.set_price``;
  ``ioc``/``fok`` limit orders that do not cross at once are canceled, others rest as ``new``;
- a stop order triggers when the price reaches the stop (buy: price >= stop, sell: price <= stop)
  and then fills at market; a stop-limit order then rests as a limit order; trailing stops rest;
- with ``auto_fill`` off nothing fills on its own (new orders rest as ``accepted``):
  ``Book.fill_order`` fills by hand, in part or in full, which is how tests make
  ``partially_filled`` orders and fills that lag.

Fills move the signed position and cash (``account.py``); a crypto fill pays
``fidelity.crypto_fee_bps`` (a buy in the coin received: the position grows by less than
``filled_qty``, and its ``avg_entry_price`` is what was paid per coin held; a sell in dollars).
Average prices carry 16 decimals, as Alpaca's (``"19660.5738784516887649"``). One order never
flips a position: selling more than a long (or buying more than a short) is refused with 403
``insufficient qty available``, as Alpaca does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from decimal import ROUND_DOWN, Context, Decimal

from . import rules
from .model import Asset, Order
from .validation import OrderRequest

QTY_STEP = Decimal("0.000000001")
# Average prices carry 16 decimals, as Alpaca's do (an avg_entry_price of
# "19660.5738784516887649"), computed in a context wide enough never to round before that.
PRICE_STEP = Decimal("1e-16")
WIDE = Context(prec=60)
ZERO = Decimal(0)
#: Statuses of orders the fill model may still fill.
RESTING_STATUSES = frozenset({"new", "accepted", "pending_new", "partially_filled"})


def average(qty_a: Decimal, price_a: Decimal, qty_b: Decimal, price_b: Decimal) -> Decimal:
    """The average price of two lots (``qty_a + qty_b`` never 0), to 16 decimals."""
    total = WIDE.add(WIDE.multiply(qty_a, price_a), WIDE.multiply(qty_b, price_b))
    return WIDE.divide(total, qty_a + qty_b).quantize(PRICE_STEP, context=WIDE)


def crosses(order: Order, price: Decimal, triggered: set[str]) -> bool:
    """Whether ``order`` executes at ``price`` now; a stop that is reached is added to
    ``triggered`` (the ids of stops triggered) and stays so."""
    order_type = order.type
    if order_type == "market":
        return True
    if order_type in ("stop", "stop_limit"):
        if order.id not in triggered:
            stop = order.stop_price
            if stop is None:
                return False
            if not (price >= stop if order.side == "buy" else price <= stop):
                return False
            triggered.add(order.id)
        if order_type == "stop":
            return True
    if order_type in ("limit", "stop_limit"):
        limit = order.limit_price
        if limit is None:
            return False
        return price <= limit if order.side == "buy" else price >= limit
    return False


def estimated_qty(request: OrderRequest, asset: Asset) -> Decimal:
    """The quantity a new order will fill: its qty, or its notional at the current price."""
    if request.qty is not None:
        return request.qty
    assert request.notional is not None
    return (request.notional / asset.price).quantize(QTY_STEP, rounding=ROUND_DOWN)


def estimated_price(request: OrderRequest, asset: Asset) -> Decimal:
    """The price a new order is expected to fill at: its limit, its stop, or the current one."""
    if request.type in ("limit", "stop_limit") and request.limit_price is not None:
        return request.limit_price
    if request.type == "stop" and request.stop_price is not None:
        return request.stop_price
    return asset.price


@dataclass(frozen=True, slots=True)
class Settlement:
    """What one execution moves: the signed position change (net of a fee paid in coin), the
    entry price of that change, and the cash change (net of a fee paid in dollars)."""

    position_delta: Decimal
    entry_price: Decimal
    cash_delta: Decimal


def settlement(order: Order, qty: Decimal, price: Decimal, crypto_fee_bps: Decimal) -> Settlement:
    """A crypto buy pays ``crypto_fee_bps`` in the coin received (the position grows by less,
    its entry price is what was paid per coin held); a crypto sale pays it in dollars."""
    signed = qty if order.side == "buy" else -qty
    cash_delta = -signed * price
    fee_bps = crypto_fee_bps if order.asset.is_crypto else ZERO
    entry_price = price
    if fee_bps and order.side == "buy":
        signed -= rules.crypto_fee(qty, fee_bps)  # paid in the coin received
        if signed > 0:  # what was paid per coin held: many digits, as Alpaca's averages
            entry_price = WIDE.divide(WIDE.multiply(qty, price), signed).quantize(
                PRICE_STEP, context=WIDE
            )
    elif fee_bps:
        cash_delta -= cash_delta * fee_bps / rules.BPS  # paid in the dollars received
    return Settlement(signed, entry_price, cash_delta)


class Delays:
    """Orders waiting out ``fidelity.fill_delay_s`` (``pending_new``), by due time
    (``time.monotonic()``). ``changed`` (on the book's lock) is notified whenever one is
    scheduled or leaves, which wakes ``FillScheduler`` and ``Book.settle``."""

    def __init__(self, changed: threading.Condition) -> None:
        self.changed = changed
        self._pending: dict[str, Order] = {}

    def schedule(self, order: Order, due: float) -> None:
        order.due = due
        self._pending[order.id] = order
        self.changed.notify_all()

    def drop(self, order: Order) -> None:
        """The order closed while waiting: it never reaches the market."""
        if self._pending.pop(order.id, None) is not None:
            order.due = None
            self.changed.notify_all()

    def take_due(self, now: float) -> list[Order]:
        """Remove and return the orders due by ``now``, oldest first (``due`` cleared)."""
        due = sorted(
            (o for o in self._pending.values() if o.due is not None and o.due <= now),
            key=lambda o: o.seq,
        )
        for order in due:
            self._pending.pop(order.id, None)
            order.due = None
        return due

    def next_due(self) -> float | None:
        dues = [order.due for order in self._pending.values() if order.due is not None]
        return min(dues) if dues else None

    def count(self) -> int:
        return len(self._pending)
