"""The signal schema: pure parsing, no database, no server."""

import hashlib
import time
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
    audit_signal_id,
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


# --- number bounds (docs/design.md section 3): poison inputs never raise, never hang, and name thei

#: (field, value, expected reason). Every value is one a hostile or broken producer could store.
POISON_NUMBERS = [
    ("qty", "1e20", "qty must be less than 1e12"),
    ("qty", 1e20, "qty must be less than 1e12"),
    ("qty", 10**12, "qty must be less than 1e12"),
    ("qty", "1e12", "qty must be less than 1e12"),
    ("qty", 1e12, "qty must be less than 1e12"),
    ("qty", "1000000000000.5", "qty must be less than 1e12"),
    ("qty", 1e308, "qty must be less than 1e12"),
    ("qty", Decimal("1E+12"), "qty must be less than 1e12"),
    ("qty", "1e999999999", "qty must be less than 1e12"),
    ("qty", "1E+999999999999999999", "qty must be less than 1e12"),
    ("qty", "1e99999999999999999999", "qty is out of range"),
    ("qty", "1e-99999999999999999999", "qty is out of range"),
    ("qty", 10**400, "qty must be less than 1e12"),
    ("qty", -(10**5000), "qty must be positive"),
    ("qty", "-1e20", "qty must be positive"),
    ("qty", "-1e999999999", "qty must be positive"),
    ("qty", "-0", "qty must be positive"),
    ("qty", "1e-10", "qty is finer than 1e-9"),
    ("qty", "0.0000000001", "qty is finer than 1e-9"),
    ("qty", "1.0000000001", "qty is finer than 1e-9"),
    ("qty", 1e-10, "qty is finer than 1e-9"),
    ("qty", 5e-324, "qty is finer than 1e-9"),
    ("qty", Decimal("1E-10"), "qty is finer than 1e-9"),
    ("qty", "1e-999999999", "qty is finer than 1e-9"),
    ("qty", "1E-999999999999999999", "qty is finer than 1e-9"),
    ("qty", "1" * 5000, "qty is too long to be a number"),
    ("qty", "0." + "0" * 200 + "1", "qty is too long to be a number"),
    ("qty", "9" * 10_000_000, "qty is too long to be a number"),
    ("qty", "NaN", "qty must be finite"),
    ("qty", "-Infinity", "qty must be finite"),
    ("qty", "inf", "qty must be finite"),
    ("qty", "sNaN", "qty must be finite"),
    ("qty", "nan123", "qty must be finite"),
    ("qty", Decimal("sNaN"), "qty must be finite"),
    ("qty", Decimal("-Infinity"), "qty must be finite"),
    ("qty", float("inf"), "qty must be finite"),
    ("qty", "", "qty is not numeric"),
    ("qty", "   ", "qty is not numeric"),
    ("qty", "1e", "qty is not numeric"),
    ("qty", "1_000", "qty is not numeric"),
    ("qty", "\u0661\u0662", "qty is not numeric"),  # Arabic-Indic digits: Decimal takes them
    ("qty", "0x10", "qty is not numeric"),
    ("qty", "1,5", "qty is not numeric"),
    ("notional", "1e20", "notional must be less than 1e12"),
    ("notional", "0.0000000001", "notional is finer than 1e-9"),
    ("notional", "1e999999999", "notional must be less than 1e12"),
    ("limit_price", "1e20", "limit_price must be less than 1e12"),
    ("limit_price", "1e-10", "limit_price is finer than 1e-9"),
    ("limit_price", "-1e999999999", "limit_price must be positive"),
    ("stop_price", 1e12, "stop_price must be less than 1e12"),
    ("stop_price", "1e-999999999", "stop_price is finer than 1e-9"),
    ("timeout_seconds", "9" * 5000, "timeout_seconds must be"),
    ("timeout_seconds", 1e300, "timeout_seconds must be less than 1e12"),
    ("timeout_seconds", 10**12, "timeout_seconds must be less than 1e12"),
    ("timeout_seconds", "\u00b2", "timeout_seconds must be a whole number"),
]


def _case_id(index, field, value):
    shown = type(value).__name__ if isinstance(value, int) else str(value)[:24]
    return f"{field}={shown}-{index}"


def _document_with(field, value):
    changes = {field: value}
    if field == "notional":
        changes["qty"] = ...
    if field == "limit_price":
        changes["order_type"] = "limit"
    if field == "stop_price":
        changes["order_type"] = "stop"
    return changes


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    POISON_NUMBERS,
    ids=[_case_id(i, f, v) for i, (f, v, _) in enumerate(POISON_NUMBERS)],
)
def test_out_of_range_and_poison_numbers_are_invalid_with_a_reason_naming_the_field(
    field, value, expected
):
    started = time.perf_counter()
    parsed = parse(**_document_with(field, value))
    elapsed = time.perf_counter() - started

    assert isinstance(parsed, InvalidSignal), parsed
    assert expected in " | ".join(parsed.reasons)
    assert all(len(r) < 300 for r in parsed.reasons), parsed.reasons  # never the whole input
    # A poison number (an exponent of a million digits) must not make parsing work for minutes;
    # the bound tells stuck from merely slow on a loaded machine.
    assert elapsed < 5, f"parsing took {elapsed:.2f}s"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("qty", "0.000000001", Decimal("0.000000001")),
        ("qty", 1e-9, Decimal("1e-9")),
        ("qty", "999999999999.999999999", Decimal("999999999999.999999999")),
        ("qty", 999_999_999_999, Decimal(999_999_999_999)),
        ("qty", "1.0000000000", Decimal("1")),  # zeros past 1e-9 lose nothing
        ("qty", " 2.5 ", Decimal("2.5")),
        ("qty", "+3", Decimal(3)),
        ("qty", ".5", Decimal("0.5")),
        ("qty", "1E+3", Decimal(1000)),
        ("notional", "0.01", Decimal("0.01")),
        ("limit_price", "0.0001", Decimal("0.0001")),
        ("stop_price", 123.45, Decimal("123.45")),
    ],
)
def test_numbers_inside_the_bounds_parse(field, value, expected):
    parsed = parse(**_document_with(field, value))
    assert isinstance(parsed, Signal), parsed
    assert getattr(parsed, field) == expected


@pytest.mark.parametrize("timeout", [1, 60, "30", 3600.0, 999_999_999_999])
def test_timeouts_inside_the_bounds_parse(timeout):
    parsed = parse(timeout_seconds=timeout)
    assert isinstance(parsed, Signal), parsed
    assert parsed.timeout_seconds == int(timeout)


def test_parse_signal_never_raises_on_any_poison_number_even_all_at_once():
    document = {**VALID, "order_type": "stop_limit"}
    document.update(qty="1e999999999", limit_price=-(10**5000), stop_price="9" * 100_000)
    parsed = parse_signal("x", document)
    assert isinstance(parsed, InvalidSignal)
    joined = " | ".join(parsed.reasons)
    assert "qty must be less than 1e12" in joined
    assert "limit_price must be positive" in joined
    assert "stop_price is too long to be a number" in joined


# --- versions ---------------------------------------------------------------------------------


def test_a_parsed_document_carries_the_version_it_was_read_at():
    assert parse().version is None
    assert parse_signal("s", VALID, version="rev-1").version == "rev-1"
    invalid = parse_signal("s", {**VALID, "qty": "x"}, version="rev-2")
    assert isinstance(invalid, InvalidSignal)
    assert invalid.version == "rev-2"
    assert parse_signal("s", VALID, version="rev-1").as_json_dict()["version"] == "rev-1"


# --- audit columns ----------------------------------------------------------------------------


def _hashed(signal_id: str) -> str:
    return "sha256:" + hashlib.sha256(signal_id.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.parametrize(
    "signal_id",
    [
        "sig-1",
        "a b",
        "#?&%",
        " ",  # Firestore accepts it; searchable as written
        " sig-1",
        "sig\n1",
        "a\u200bb",
        "x" * 1500,
        "\u00e9" * 750,  # 1,500 bytes
        "\u65e5\u672c-\U0001f680",
        ".",
    ],
)
def test_audit_signal_id_keeps_any_id_the_column_holds_unchanged(signal_id):
    assert audit_signal_id(signal_id) == signal_id


@pytest.mark.parametrize(
    "signal_id",
    [
        "x" * 1501,  # longer than any Firestore id: longer than the column
        "a\x00b",  # PostgreSQL text cannot hold NUL
        "\ud800",  # a lone surrogate (not UTF-8): must not raise
        "",
        "sha256:" + "0" * 64,  # looks like a hashed form: hashed too, so no two ids collide
        "sha256:short",
    ],
)
def test_audit_signal_id_hashes_what_a_column_cannot_hold(signal_id):
    value = audit_signal_id(signal_id)
    assert value == _hashed(signal_id)
    assert len(value) == 71
    assert audit_signal_id(signal_id) == value  # stable
    assert audit_signal_id(value) != value  # a hashed form is never taken for a plain id


def test_audit_signal_id_respects_the_column_length():
    assert audit_signal_id("x" * 1500, max_length=1500) == "x" * 1500
    assert audit_signal_id("x" * 72, max_length=71) == _hashed("x" * 72)
    assert audit_signal_id("x" * 71, max_length=71) == "x" * 71
    with pytest.raises(ValueError, match="at least 71"):
        audit_signal_id("x", max_length=70)
    with pytest.raises(TypeError):
        audit_signal_id(7)


def test_distinct_ids_give_distinct_audit_ids():
    ids = ["x" * 1501, "x" * 1502, " ", "  ", "a ", "a", "sha256:a", "sha256:b", "a\x00", "\x00"]
    assert len({audit_signal_id(i) for i in ids}) == len(ids)


def test_client_order_id_limit_has_one_definition():
    from brokerops import fields
    from brokerops.intent import schema, store

    assert not hasattr(schema, "CLIENT_ORDER_ID_MAX_LENGTH")
    assert not hasattr(store, "CLIENT_ORDER_ID_MAX_LENGTH")
    assert schema.CLIENT_ORDER_ID_MAX is fields.CLIENT_ORDER_ID_MAX == 128


@pytest.mark.parametrize("text", ["10", " 2.50 ", "0.000000001", "+1E3", ".5"])
def test_a_number_read_again_is_the_same_number(text):
    first, second = parse(qty=text), parse(qty=text)  # the second comes from the cache
    assert isinstance(first, Signal) and first == second
    assert (
        (first.qty, str(first.qty))
        == (second.qty, str(second.qty))
        == (Decimal(text), str(Decimal(text.strip())))
    )


@pytest.mark.parametrize("text", ["1e-10", "1e12", "NaN", "-1", "1_000"])
def test_a_refused_number_is_refused_again_with_the_same_reason(text):
    assert reasons_of(qty=text) == reasons_of(qty=text)


def test_parsing_leaves_the_document_alone_and_an_invalid_ones_raw_is_a_copy():
    data = {**VALID, "side": "BUY", "extra": {"nested": [1]}}
    before = {**data, "extra": {"nested": [1]}}
    assert isinstance(parse_signal("s", data), Signal) and data == before
    broken = {**VALID, "qty": "lots"}
    invalid = parse_signal("s", broken)
    assert (
        isinstance(invalid, InvalidSignal) and invalid.raw == broken and invalid.raw is not broken
    )
    broken["qty"] = "10"
    assert invalid.raw["qty"] == "lots"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("side", " Sell ", Side.SELL),
        ("order_type", "LIMIT", OrderType.LIMIT),
        ("status", "ACTIVE", SignalStatus.ACTIVE),
    ],
)
def test_enumerated_fields_are_the_enum_members(field, value, expected):
    extra = {"limit_price": "1"} if expected is OrderType.LIMIT else {}
    assert getattr(parse(**{field: value}, **extra), field) is expected
