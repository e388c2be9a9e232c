"""Typed results: Decimal everywhere, unknown enum values carried as strings."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokerops.alpaca import OrderRequest, symbol_key
from brokerops.alpaca.parsing import (
    ParseError,
    parse_account,
    parse_asset,
    parse_order,
    parse_position,
    parse_timestamp,
)

ORDER = {
    "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
    "client_order_id": "bo-1",
    "created_at": "2024-05-01T14:30:00.123456789Z",
    "updated_at": "2024-05-01T14:30:01Z",
    "submitted_at": "2024-05-01T14:30:00.2Z",
    "filled_at": None,
    "canceled_at": None,
    "symbol": "BTC/USD",
    "side": "buy",
    "order_type": "limit",
    "type": "limit",
    "time_in_force": "gtc",
    "status": "held_for_new_reasons",  # not an alpaca-py OrderStatus
    "qty": "0.0015",
    "notional": None,
    "filled_qty": "0",
    "filled_avg_price": None,
    "limit_price": "64000.1",
    "stop_price": None,
    "extended_hours": False,
}


def test_symbol_key_normal_form():
    assert symbol_key("btc/usd") == "BTCUSD"
    assert symbol_key(" aapl ") == "AAPL"


def test_order_parses_with_unknown_status_and_nanoseconds():
    order = parse_order(ORDER)
    assert order.status == "held_for_new_reasons"
    assert order.qty == Decimal("0.0015") and isinstance(order.qty, Decimal)
    assert order.limit_price == Decimal("64000.1")
    assert order.filled_qty == Decimal(0)
    assert order.created_at == datetime(2024, 5, 1, 14, 30, 0, 123456, tzinfo=UTC)
    assert order.submitted_at == datetime(2024, 5, 1, 14, 30, 0, 200000, tzinfo=UTC)
    assert order.symbol_key == "BTCUSD"
    assert order.raw["status"] == "held_for_new_reasons"


@pytest.mark.parametrize("field", ["id", "client_order_id", "symbol", "status"])
def test_order_without_required_field_is_a_parse_error(field):
    with pytest.raises(ParseError):
        parse_order({**ORDER, field: None})


def test_order_with_non_numeric_qty_is_a_parse_error():
    with pytest.raises(ParseError):
        parse_order({**ORDER, "qty": "lots"})


def test_short_position_is_negative_and_symbol_normalised():
    pos = parse_position(
        {
            "asset_id": "a1",
            "symbol": "TSLA",
            "exchange": "NEWEX",  # unknown exchange: carried, not validated
            "asset_class": "us_equity",
            "qty": "-12.5",
            "side": "short",
            "avg_entry_price": "180.10",
            "market_value": "-2251.25",
        }
    )
    assert pos.qty == Decimal("-12.5") and pos.side == "short"
    assert pos.market_value == Decimal("-2251.25")
    # A short reported with a positive qty is still negative.
    assert parse_position({"symbol": "X", "qty": "3", "side": "short"}).qty == Decimal(-3)
    crypto = parse_position({"symbol": "BTCUSD", "qty": "0.5", "side": "long"})
    assert crypto.symbol_key == "BTCUSD" and crypto.qty == Decimal("0.5")


def test_position_contradiction_is_a_parse_error():
    with pytest.raises(ParseError):
        parse_position({"symbol": "X", "qty": "-3", "side": "long"})


def test_asset_with_unknown_exchange_and_float_increments():
    asset = parse_asset(
        {
            "id": "b0b6dd9d-8b9b-48a9-ba46-b9d54906e415",
            "class": "us_equity",
            "exchange": "MOONEX",
            "symbol": "AAPL",
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": True,
            "easy_to_borrow": True,
            "fractionable": True,
            "min_order_size": 0.0001,
            "price_increment": "0.01",
        }
    )
    assert asset.exchange == "MOONEX" and asset.asset_class == "us_equity"
    assert asset.min_order_size == Decimal("0.0001")  # via str(), no float digits
    assert asset.price_increment == Decimal("0.01")
    assert asset.min_trade_increment is None


def test_account_minimal():
    account = parse_account(
        {"id": "acc", "status": "ACTIVE", "cash": "1000.50", "buying_power": "2001", "equity": "1"}
    )
    assert account.cash == Decimal("1000.50") and account.status == "ACTIVE"


def test_timestamps():
    assert parse_timestamp(None) is None
    assert parse_timestamp("2024-01-02T03:04:05-05:00") == datetime(2024, 1, 2, 8, 4, 5, tzinfo=UTC)
    with pytest.raises(ParseError):
        parse_timestamp("yesterday")


def test_order_request_body_uses_decimal_strings():
    req = OrderRequest(
        symbol="AAPL",
        side="buy",
        type="limit",
        time_in_force="gtc",
        qty=Decimal("1E+1"),
        limit_price="101.50",
        client_order_id="bo-sig-1",
    )
    assert req.limit_price == Decimal("101.50")
    assert req.to_body() == {
        "symbol": "AAPL",
        "side": "buy",
        "type": "limit",
        "time_in_force": "gtc",
        "qty": "10",
        "limit_price": "101.5",
        "client_order_id": "bo-sig-1",
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {"qty": 1.5},  # float refused
        {},  # neither qty nor notional
        {"qty": Decimal(1), "notional": Decimal(10)},
        {"qty": Decimal(0)},
        {"qty": Decimal(1), "type": "limit"},  # no limit price
        {"qty": Decimal(1), "side": "hold"},
        {"qty": Decimal(1), "client_order_id": "x" * 129},
    ],
)
def test_order_request_rejects_bad_shapes(kwargs):
    kwargs = {"symbol": "AAPL", "side": "buy", **kwargs}
    with pytest.raises((ValueError, TypeError)):
        OrderRequest(**kwargs)
