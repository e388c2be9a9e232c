"""The signal schema: pure parsing, no database, no server."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds

from brokerops.intent.schema import (
    InvalidSignal,
    OrderType,
    Side,
    Signal,
    SignalStatus,
    normalize_symbol,
    parse_signal,
)

VALID = {
    "symbol": "AAPL",
    "side": "buy",
    "qty": 10,
    "order_type": "market",
    "status": "PENDING",
}


def parse(**changes) -> Signal | InvalidSignal:
    data = {**VALID, **changes}
    return parse_signal("sig-1", {k: v for k, v in data.items() if v is not ...})


def reasons_of(**changes) -> str:
    parsed = parse(**changes)
    assert isinstance(parsed, InvalidSignal), parsed
    return " | ".join(parsed.reasons)


def test_a_complete_document_parses_into_typed_fields():
    created = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    signal = parse(
        symbol="msft",
        side="SELL",
        qty="2.5",
        order_type="stop_limit",
        limit_price=101.1,
        stop_price="100",
        time_in_force="GTC",
        timeout_seconds=30,
        extended_hours=True,
        status="ACTIVE",
        client_order_id="bo-sig-1-open",
        alpaca_order_id="a1b2",
        created_at=created,
        updated_at="2025-01-02T03:05:00Z",
        status_reason="filled",
        some_future_field={"ignored": True},
    )
    assert isinstance(signal, Signal)
    assert signal.symbol == "MSFT"
    assert signal.symbol_key == "MSFT"
    assert signal.side is Side.SELL
    assert signal.order_type is OrderType.STOP_LIMIT
    assert signal.qty == Decimal("2.5")
    assert signal.limit_price == Decimal("101.1")  # via str(), not the binary float
    assert signal.stop_price == Decimal("100")
    assert signal.time_in_force == "gtc"
    assert signal.timeout_seconds == 30
    assert signal.extended_hours is True
    assert signal.status is SignalStatus.ACTIVE
    assert signal.created_at == created
    assert signal.updated_at == datetime(2025, 1, 2, 3, 5, tzinfo=UTC)
    assert signal.status_reason == "filled"
    assert signal.signed_qty == Decimal("-2.5")


def test_floats_become_decimals_through_their_string_form():
    signal = parse(qty=0.1)
    assert signal.qty == Decimal("0.1")
    assert parse(qty=..., notional=1234.56).notional == Decimal("1234.56")


def test_signed_qty_is_positive_for_buys_and_none_for_notional_signals():
    assert parse(qty=3).signed_qty == Decimal(3)
    assert parse(qty=..., notional="100").signed_qty is None


def test_firestore_timestamps_are_accepted():
    stamp = DatetimeWithNanoseconds(2025, 5, 6, 7, 8, 9, nanosecond=123456789, tzinfo=UTC)
    signal = parse(created_at=stamp, updated_at=stamp)
    assert signal.created_at == stamp
    assert signal.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("raw", "order_symbol", "key"),
    [
        ("BTC/USD", "BTC/USD", "BTCUSD"),
        ("btc/usd", "BTC/USD", "BTCUSD"),
        (" BTC-USD ", "BTC/USD", "BTCUSD"),
        ("BTCUSD", "BTCUSD", "BTCUSD"),
        ("eth/btc", "ETH/BTC", "ETHBTC"),
        ("aapl", "AAPL", "AAPL"),
        (" Brk.B ", "BRK.B", "BRK.B"),
    ],
)
def test_symbol_forms_normalise(raw, order_symbol, key):
    signal = parse(symbol=raw)
    assert (signal.symbol, signal.symbol_key) == (order_symbol, key)
    assert normalize_symbol(raw) == key


def test_alpaca_position_symbol_compares_equal_to_the_order_form():
    assert normalize_symbol("BTCUSD") == normalize_symbol("BTC/USD") == normalize_symbol("btc/usd")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"symbol": ...}, "symbol is missing"),
        ({"symbol": 42}, "symbol must be a string"),
        ({"symbol": "   "}, "symbol is empty"),
        ({"symbol": "AA PL"}, "is not a ticker"),
        ({"side": ...}, "side is missing"),
        ({"side": "hold"}, "unknown side 'hold'"),
        ({"status": ...}, "status is missing"),
        ({"status": None}, "status is missing"),
        ({"status": "active"}, "unknown status 'active'"),
        ({"status": "DONE"}, "unknown status 'DONE'"),
        ({"status": 3}, "status must be a string"),
        ({"order_type": "trailing_stop"}, "unknown order_type"),
        ({"order_type": ...}, "order_type is missing"),
        ({"qty": ...}, "qty or notional is required"),
        ({"qty": -5}, "qty must be positive"),
        ({"qty": 0}, "qty must be positive"),
        ({"qty": "ten"}, "qty is not numeric"),
        ({"qty": True}, "qty must be a number, not a boolean"),
        ({"qty": [1]}, "qty must be a number, not list"),
        ({"qty": float("nan")}, "qty must be finite"),
        ({"qty": "Infinity"}, "qty must be finite"),
        ({"notional": 100}, "qty and notional are both set"),
        ({"order_type": "limit"}, "limit_price is required for a limit order"),
        ({"order_type": "stop"}, "stop_price is required for a stop order"),
        ({"order_type": "stop_limit", "limit_price": 1}, "stop_price is required"),
        ({"limit_price": 10}, "limit_price is not used by a market order"),
        ({"order_type": "limit", "limit_price": "-1"}, "limit_price must be positive"),
        ({"time_in_force": "forever"}, "unknown time_in_force"),
        ({"timeout_seconds": 1.5}, "timeout_seconds must be a whole number"),
        ({"timeout_seconds": 0}, "timeout_seconds must be positive"),
        ({"extended_hours": "yes"}, "extended_hours must be true or false"),
        ({"client_order_id": "x" * 129}, "client_order_id is longer than 128"),
        ({"alpaca_order_id": 7}, "alpaca_order_id must be a string"),
        ({"created_at": "yesterday"}, "created_at is not an ISO 8601 timestamp"),
        ({"created_at": "2025-01-01T00:00:00"}, "created_at has no timezone"),
        ({"updated_at": 1700000000}, "updated_at must be a timestamp"),
    ],
)
def test_malformed_documents_are_invalid_with_a_reason(changes, expected):
    assert expected in reasons_of(**changes)


def test_every_problem_is_listed_not_just_the_first():
    parsed = parse_signal(
        "bad", {"symbol": 7, "side": "up", "status": "NOPE", "qty": -1, "notional": "x"}
    )
    assert isinstance(parsed, InvalidSignal)
    assert len(parsed.reasons) >= 6
    assert parsed.raw_status == "NOPE"
    assert parsed.raw_symbol is None
    assert parsed.raw["qty"] == -1


@pytest.mark.parametrize(
    "data", [None, [], "ACTIVE", 3, {"status": {"nested": 1}}, {1: 2}, {"qty": object()}]
)
def test_parse_never_raises(data):
    assert isinstance(parse_signal("x", data), InvalidSignal)


@pytest.mark.parametrize("doc_id", [None, "", 5])
def test_a_document_id_must_be_a_string(doc_id):
    parsed = parse_signal(doc_id, VALID)
    assert isinstance(parsed, InvalidSignal)
    assert "document id" in parsed.reasons[0]


def test_offsets_other_than_utc_are_kept_aware():
    tz = timezone(timedelta(hours=-5))
    signal = parse(created_at=datetime(2025, 1, 1, 9, 30, tzinfo=tz))
    assert signal.created_at.utcoffset() == timedelta(hours=-5)


def test_terminal_statuses():
    assert set(SignalStatus.TERMINAL) == {
        SignalStatus.CLOSED,
        SignalStatus.CLOSED_MANUAL,
        SignalStatus.CANCELED,
        SignalStatus.REJECTED,
    }
    assert not SignalStatus.ACTIVE.is_terminal
    assert SignalStatus.CANCELED.is_terminal


def test_json_form_keeps_decimals_exact():
    signal = parse(qty="0.000001", created_at="2025-01-01T00:00:00+00:00")
    data = signal.as_json_dict()
    assert data["qty"] == "0.000001"
    assert data["side"] == "buy"
    assert data["created_at"] == "2025-01-01T00:00:00+00:00"
