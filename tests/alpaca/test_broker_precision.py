"""Broker prices and money come at any precision; quantities keep their 9-decimal bound
(docs/design.md section 6). A crypto position's average entry price has 16 decimals."""

from decimal import Decimal

import pytest

from brokerops.alpaca import BrokerMalformedResponse
from brokerops.alpaca.parsing import (
    ParseError,
    parse_account,
    parse_asset,
    parse_latest_trades,
    parse_order,
    parse_order_summaries,
    parse_position,
    parse_positions,
)
from brokerops.alpaca.stream import parse_trade_update

FINE = "19660.5738784516887649"  # 16 decimals, as a crypto position's avg_entry_price
FINER = "0.0000000000001234567890123456789"  # 31 decimals: still a price


def _order(**fields):
    order = {
        "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
        "client_order_id": "bo-s-1-entry",
        "symbol": "BTC/USD",
        "side": "buy",
        "status": "filled",
        "type": "limit",
        "time_in_force": "gtc",
        "qty": "0.5",
        "filled_qty": "0.5",
        "filled_avg_price": FINE,
        "limit_price": FINE,
        "stop_price": None,
        "notional": None,
        "created_at": "2024-05-01T14:30:00Z",
        "submitted_at": "2024-05-01T14:30:00Z",
    }
    order.update(fields)
    return order


def _position(**fields):
    position = {
        "asset_id": "276e2673-764b-4ab6-a611-caf665ca6340",
        "symbol": "BTCUSD",
        "asset_class": "crypto",
        "qty": "0.5",
        "side": "long",
        "avg_entry_price": FINE,
        "market_value": "9830.28693922584438245",
    }
    position.update(fields)
    return position


@pytest.mark.parametrize("price", [FINE, FINER, "1e-12", "64000.10000000000000000000"])
def test_a_position_price_parses_exactly_at_any_precision(price):
    position = parse_position(_position(avg_entry_price=price))
    assert position.avg_entry_price == Decimal(price)
    assert parse_positions([_position(avg_entry_price=price)])[0].avg_entry_price == Decimal(price)


@pytest.mark.parametrize("key", ["filled_avg_price", "limit_price", "stop_price", "notional"])
def test_an_order_price_parses_exactly_at_any_precision(key):
    order = parse_order(_order(**{key: FINER}))
    assert getattr(order, key) == Decimal(FINER)
    summaries, _ = parse_order_summaries([_order(**{key: FINER})])
    assert summaries[0].qty == Decimal("0.5")


def test_order_summaries_read_a_fine_price_in_the_common_form():
    summaries, _ = parse_order_summaries([_order(), _order(id="o-2", filled_avg_price="1")])
    assert [s.id for s in summaries] == ["61e69015-8549-4bfd-b9c3-01e75843f47d", "o-2"]


@pytest.mark.parametrize(
    ("parse", "body", "key"),
    [
        (parse_position, _position(qty="0.0000000001"), "qty"),
        (parse_order, _order(qty="0.0000000001"), "qty"),
        (parse_order, _order(filled_qty="1.0000000001"), "filled_qty"),
    ],
)
def test_quantities_keep_their_nine_decimal_bound(parse, body, key):
    with pytest.raises(ParseError, match=f"{key}.*finer than 1e-9"):
        parse(body)


@pytest.mark.parametrize("price", ["1e12", "-1e13", "NaN", "Infinity", "abc"])
def test_a_price_stays_finite_and_bounded_in_magnitude(price):
    with pytest.raises(ParseError):
        parse_position(_position(avg_entry_price=price))
    with pytest.raises(ParseError):
        parse_order(_order(filled_avg_price=price))


def test_account_money_and_asset_price_increment_at_any_precision():
    account = parse_account({"id": "a", "cash": FINER, "equity": FINE, "buying_power": "1.5"})
    assert (account.cash, account.equity) == (Decimal(FINER), Decimal(FINE))
    asset = parse_asset(
        {"id": "x", "symbol": "SHIB/USD", "price_increment": "0.00000000001", "class": "crypto"}
    )
    assert asset.price_increment == Decimal("1e-11")
    with pytest.raises(ParseError, match="min_order_size"):
        parse_asset({"id": "x", "symbol": "SHIB/USD", "min_order_size": "1e-10"})


def test_a_latest_trade_price_at_any_precision():
    prices = parse_latest_trades(
        {"trades": {"SHIB/USD": {"p": "0.0000123456789012"}}}, {"SHIB/USD": "SHIBUSD"}
    )
    assert prices == {"SHIBUSD": Decimal("0.0000123456789012")}


def _fill(**fields):
    data = {
        "event": "fill",
        "execution_id": "e-1",
        "order": _order(),
        "price": FINE,
        "qty": "0.5",
        "position_qty": "0.49875",
        "timestamp": "2024-05-01T14:30:01Z",
    }
    data.update(fields)
    return data


def test_a_stream_fill_price_at_any_precision():
    update = parse_trade_update(_fill())
    assert update.price == Decimal(FINE) and update.qty == Decimal("0.5")


def test_a_short_position_qty_is_fine_on_a_fill():
    assert parse_trade_update(_fill(position_qty="-3")).position_qty == Decimal(-3)


@pytest.mark.parametrize(
    ("key", "value"),
    [("qty", "-1"), ("qty", "0"), ("price", "-190"), ("price", "0"), ("qty", "1e-10")],
)
def test_a_fill_needs_a_positive_qty_and_price(key, value):
    with pytest.raises(BrokerMalformedResponse, match=key):
        parse_trade_update(_fill(**{key: value}))


def test_a_fill_position_qty_keeps_the_quantity_bound():
    with pytest.raises(BrokerMalformedResponse, match="position_qty"):
        parse_trade_update(_fill(position_qty="0.00000000001"))
