"""trade_updates events read from the stream (`brokerops.alpaca.stream`): the stream's URL, a
malformed event refused with one error, a fill's execution figures. Applying them:
tests/orders/services/test_stream.py."""

from decimal import Decimal

import pytest

from brokerops.alpaca.errors import BrokerMalformedResponse
from brokerops.alpaca.stream import parse_trade_update, stream_url_for
from tests.orders.services.helpers import fill, order, update


@pytest.mark.parametrize(
    ("base_url", "paper", "url"),
    [
        (None, True, "wss://paper-api.alpaca.markets/stream"),
        (None, False, "wss://api.alpaca.markets/stream"),
        ("http://127.0.0.1:8765", True, "ws://127.0.0.1:8765/stream"),
        ("https://broker.example/v2/", False, "wss://broker.example/stream"),
    ],
)
def test_the_stream_url_follows_the_trading_endpoint(base_url, paper, url):
    assert stream_url_for(base_url=base_url, paper=paper) == url


@pytest.mark.parametrize(
    "data",
    [
        None,
        "fill",
        {"event": "fill"},
        {"event": "fill", "order": order()},  # no execution_id
        {"event": "fill", "order": order(), "execution_id": "e", "qty": "1e20", "price": "1"},
        {"event": "new", "order": {**order(), "filled_qty": "NaN"}},
        {"event": "", "order": order()},
    ],
)
def test_a_malformed_event_is_refused_with_one_error(data):
    with pytest.raises(BrokerMalformedResponse, match="malformed trade update"):
        parse_trade_update(data)


def test_a_fill_parses_with_its_execution_figures():
    fill = update()
    assert (fill.event, fill.execution_id, fill.qty, fill.position_qty) == (
        "fill",
        "e-1",
        Decimal("10"),
        Decimal("10"),
    )
    assert fill.order.status == "filled" and fill.is_fill


def test_an_execution_id_longer_than_its_column_is_refused_on_its_own():
    assert parse_trade_update(fill(execution_id="e" * 64)).execution_id == "e" * 64
    with pytest.raises(BrokerMalformedResponse, match="execution_id"):
        parse_trade_update(fill(execution_id="e" * 65))
