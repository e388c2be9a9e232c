"""Does a document still ask for its attempt's order? (`orders.matching`, pure)"""

from decimal import Decimal as D

from brokerops.intent.schema import Signal, parse_signal
from orders.matching import order_differences
from orders.models import OrderAttempt


def signal(**fields) -> Signal:
    doc = {"symbol": "AAPL", "side": "buy", "qty": "1", "order_type": "market", "status": "PENDING"}
    doc.update(fields)
    parsed = parse_signal("s1", {k: v for k, v in doc.items() if v is not None})
    assert isinstance(parsed, Signal), parsed
    return parsed


def attempt(**fields) -> OrderAttempt:  # unsaved: only its order fields are read
    base = dict(symbol="AAPL", side="buy", order_type="market", qty=D("1.000000000"))
    return OrderAttempt(**{**base, **fields})


def test_the_same_order_in_another_spelling_is_no_difference():
    assert order_differences(attempt(), signal()) == []
    assert order_differences(attempt(symbol="BTCUSD"), signal(symbol="BTC/USD")) == []
    priced = dict(order_type="limit", limit_price="190.5")
    assert (
        order_differences(attempt(order_type="limit", limit_price=D("190.50")), signal(**priced))
        == []
    )


def test_every_field_of_the_order_counts():
    assert order_differences(attempt(), signal(symbol="MSFT", qty="100")) == [
        "symbol AAPL -> MSFT",
        "qty 1 -> 100",
    ]
    assert order_differences(attempt(), signal(side="sell")) == ["side buy -> sell"]
    assert order_differences(attempt(), signal(qty=None, notional="50")) == [
        "qty 1 -> none",
        "notional none -> 50",
    ]
    stop = order_differences(attempt(), signal(order_type="stop", stop_price="1"))
    assert stop == ["order_type market -> stop", "stop_price none -> 1"]
    hours = signal(order_type="limit", limit_price="5", extended_hours=True, time_in_force="day")
    assert "extended_hours False -> True" in order_differences(
        attempt(order_type="limit", limit_price=D(5)), hours
    )


def test_an_adopted_attempt_is_compared_by_symbol_and_side_only():
    """Alpaca renders what was sent (an exit sells what was held): the quantity may differ."""
    adopted = attempt(adopted=True, qty=D("0.498749999"))
    assert order_differences(adopted, signal(qty="0.5")) == []
    assert order_differences(adopted, signal(symbol="MSFT")) == ["symbol AAPL -> MSFT"]
