"""Does a signal's document still ask for the order its attempt records? (pure: no I/O)

A signal id yields one order (its client_order_id is derived from the id): a document rewritten
after its order was made, or an id reused for a new intent, may ask for another order than the
one its attempt holds. Every order-path decision that moves a signal because of its order asks
this first (`orders.services.conflicts`, `orders.services.broker_state`).
"""

from decimal import Decimal
from typing import Protocol

from brokerops.intent.schema import Signal
from brokerops.symbols import symbol_key


class _Attempt(Protocol):
    symbol: str
    side: str
    order_type: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    adopted: bool


#: What a signal's document says of its order, compared field by field with the attempt.
_ORDER_FIELDS = ("side", "order_type", "qty", "notional", "limit_price", "stop_price")


def order_differences(attempt: _Attempt, signal: Signal) -> list[str]:
    """What ``signal`` asks for that ``attempt``'s order is not (pure; empty: the same order).

    Compared: the symbol (in its normal form), side, type, quantity or notional, limit and stop
    prices and extended hours, as the attempt recorded what was sent. An adopted attempt (found
    at the broker, never recorded by us) holds what Alpaca renders (an exit sells what was
    held, not what the signal asked): only its symbol and side are compared."""
    diffs = []
    if symbol_key(attempt.symbol) != signal.symbol_key:
        diffs.append(f"symbol {attempt.symbol} -> {signal.symbol}")
    if attempt.adopted:
        if str(attempt.side) != str(signal.side):
            diffs.append(f"side {attempt.side} -> {signal.side}")
        return diffs
    for name in _ORDER_FIELDS:
        ours, theirs = getattr(attempt, name), getattr(signal, name)
        if isinstance(ours, Decimal) or isinstance(theirs, Decimal):
            same = ours == theirs  # Decimal compares numerically: 1 == 1.000000000
        else:
            same = str(ours or "") == str(theirs or "")
        if not same:
            diffs.append(f"{name} {quantity_text(ours)} -> {quantity_text(theirs)}")
    if bool(attempt.extended_hours) != bool(signal.extended_hours):
        diffs.append(f"extended_hours {attempt.extended_hours} -> {signal.extended_hours}")
    return diffs


def quantity_text(value: object) -> str:
    """A quantity or price as a person writes it (no trailing zeros); "none" for no value."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    return "none" if value in (None, "") else str(value)
