"""Typed results: Decimal everywhere, unknown enum values carried as strings."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from brokerops.alpaca import OrderRequest, symbol_key
from brokerops.alpaca.parsing import (
    ParseError,
    bounded_decimal,
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


# --- type over the deprecated order_type (issue 10) ---------------------------------------------


def test_type_wins_over_the_deprecated_order_type():
    assert parse_order({**ORDER, "type": "stop_limit", "order_type": "limit"}).order_type == (
        "stop_limit"
    )
    assert parse_order({**ORDER, "type": None, "order_type": "limit"}).order_type == "limit"
    without = {k: v for k, v in ORDER.items() if k != "order_type"}
    assert parse_order({**without, "type": "market"}).order_type == "market"


# --- one bound for every broker figure (issue 9 items 1 and 10) ---------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", Decimal(0)),
        ("0E-20", Decimal(0)),
        ("-0", Decimal(0)),
        ("1e-9", Decimal("1e-9")),
        ("0.000000001", Decimal("0.000000001")),
        ("0.000199499", Decimal("0.000199499")),
        ("1.500000000000000", Decimal("1.5")),  # trailing zeros are not precision
        ("999999999999.999999999", Decimal("999999999999.999999999")),
        ("-999999999999", Decimal("-999999999999")),
        ("1E+5", Decimal(100000)),
        (187.12, Decimal("187.12")),  # a JSON number: via str(), no float digits
        (42, Decimal(42)),
        (Decimal("3.25"), Decimal("3.25")),
    ],
)
def test_bounded_decimal_accepts_figures_in_range_exactly(value, expected):
    from brokerops.alpaca.parsing import bounded_decimal

    result = bounded_decimal(value, "qty", "position AAPL")
    assert result == expected and isinstance(result, Decimal)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1e12", "at least 1e12"),
        ("-1e12", "at least 1e12"),
        ("1e20", "at least 1e12"),
        ("1e25", "at least 1e12"),
        (1e308, "at least 1e12"),
        (10**400, "at least 1e12"),
        ("1e999999999", "at least 1e12"),
        ("-1e999999999", "at least 1e12"),
        ("1e-10", "finer than 1e-9"),
        ("0.0000000001", "finer than 1e-9"),
        ("1.0000000001", "finer than 1e-9"),
        ("1e-999999999", "finer than 1e-9"),
        (0.30000000000000004, "finer than 1e-9"),
        ("NaN", "not finite"),
        ("sNaN", "not finite"),
        ("Infinity", "not finite"),
        (float("inf"), "not finite"),
        (float("nan"), "not finite"),
        ("1e9999999999999999999", "not a decimal"),
        ("lots", "not a decimal"),
        ("", "not a decimal"),
        (True, "not a decimal"),
        (None, "missing"),
        ([1], "not a decimal"),
    ],
)
def test_bounded_decimal_refuses_out_of_range_figures(value, reason):
    from brokerops.alpaca.parsing import bounded_decimal

    with pytest.raises(ParseError) as info:
        bounded_decimal(value, "qty", "position AAPL")
    message = str(info.value)
    assert message.startswith("position AAPL: 'qty' ") and reason in message
    assert len(message) < 160


def test_bounded_decimal_is_safe_under_a_trapping_context():
    import decimal

    from brokerops.alpaca.parsing import bounded_decimal

    with decimal.localcontext() as ctx:
        ctx.prec = 5
        ctx.traps[decimal.Inexact] = True
        ctx.traps[decimal.Rounded] = True
        assert bounded_decimal("123456789012.123456789", "qty", "x") == Decimal(
            "123456789012.123456789"
        )
        with pytest.raises(ParseError):
            bounded_decimal("1e999999999", "qty", "x")


def test_parsers_apply_the_bound_to_every_figure():
    with pytest.raises(ParseError, match="position AAPL: 'avg_entry_price'"):
        parse_position({"symbol": "AAPL", "qty": "1", "avg_entry_price": "1e12"})
    with pytest.raises(ParseError, match="position AAPL: 'qty'"):
        parse_position({"symbol": "AAPL", "qty": "1e-10", "avg_entry_price": "1e-10"})
    with pytest.raises(ParseError, match="'limit_price'"):
        parse_order({**ORDER, "limit_price": "1e13"})
    with pytest.raises(ParseError, match="asset BTC/USD: 'min_trade_increment'"):
        parse_asset(
            {"id": "x", "symbol": "BTC/USD", "class": "crypto", "min_trade_increment": "1e-12"}
        )
    with pytest.raises(ParseError, match="account: 'cash'"):
        parse_account({"id": "acc", "cash": "1e15"})


def test_market_value_is_bounded_in_size_not_precision():
    # qty x price: a derived figure (never stored) that carries the places of both factors.
    pos = parse_position(
        {"symbol": "BTCUSD", "qty": "0.000199499", "market_value": "11.96996001497"}
    )
    assert pos.market_value == Decimal("11.96996001497")
    with pytest.raises(ParseError, match="'market_value'"):
        parse_position({"symbol": "AAPL", "qty": "1", "market_value": "1e13"})


@pytest.mark.parametrize(
    "text",
    ["0", "-0", "10", "-10", "0.5", "1.5", "999999999999", "999999999999.999999999", "0.000000001"],
)
def test_bounded_decimal_fast_path_gives_what_the_general_path_gives(text):
    from brokerops.alpaca.parsing.values import _bounded_decimal

    for _ in range(2):  # the second call is answered from the cache
        fast = bounded_decimal(text, "qty", "order")
        slow = _bounded_decimal(text, "qty", "order", max_places=9)
        assert (fast, str(fast)) == (slow, str(slow))


@pytest.mark.parametrize(
    "text", ["1e12", "1000000000000", "-1000000000000", "0.0000000001", "1e-10", "NaN"]
)
def test_bounded_decimal_fast_path_never_admits_what_the_bounds_refuse(text):
    with pytest.raises(ParseError):
        bounded_decimal(text, "qty", "order")


def test_bounded_decimal_honours_a_smaller_max_places_for_cached_figures():
    assert bounded_decimal("1.25", "qty", "order") == Decimal("1.25")  # now cached
    with pytest.raises(ParseError):
        bounded_decimal("1.25", "qty", "order", max_places=1)


def test_parse_orders_keeps_each_decoded_row_as_raw_and_parse_order_copies():
    from brokerops.alpaca.parsing import parse_orders

    row = {
        "id": "o1",
        "client_order_id": "c1",
        "symbol": "AAPL",
        "side": "buy",
        "status": "new",
        "qty": "2",
        "submitted_at": "2024-01-02T03:04:05.123456789Z",
        "created_at": "2024-01-02T03:04:05+02:00",
    }
    (listed,) = parse_orders([row])
    single = parse_order(row)
    assert listed == single
    assert listed.raw is row and single.raw is not row and single.raw == row
    assert listed.submitted_at == datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert listed.created_at == datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)
    assert listed.created_at.tzinfo is UTC and listed.filled_qty == 0
    with pytest.raises(ParseError):
        parse_orders([{**row, "qty": "1e12"}])
    with pytest.raises(ParseError):
        parse_orders({"not": "a list"})
