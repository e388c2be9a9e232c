"""The lean bulk read of orders (``list_order_summaries``): the same requests, checks and errors
as ``list_orders``, the same values, and whole orders (``raw`` included) on demand."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from brokerops.alpaca import (
    NO_RETRY,
    BrokerMalformedResponse,
    BrokerUnavailable,
    OrderSummaries,
    OrderSummary,
    symbol_key,
)
from brokerops.alpaca.parsing import (
    ParseError,
    parse_order_summaries,
    parse_orders,
)

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
BOTH = ["list_orders", "list_order_summaries"]


def _order(i, stamp=T0, **fields):
    row = {
        "id": str(uuid.UUID(int=i + 1)),
        "client_order_id": f"bo-s{i}-entry",
        "created_at": stamp.isoformat().replace("+00:00", "Z"),
        "updated_at": stamp.isoformat().replace("+00:00", "Z"),
        "submitted_at": stamp.isoformat().replace("+00:00", "Z"),
        "filled_at": None,
        "canceled_at": None,
        "symbol": "AAPL",
        "asset_class": "us_equity",
        "side": "buy",
        "type": "market",
        "order_type": "market",
        "time_in_force": "day",
        "status": "new",
        "qty": "1",
        "notional": None,
        "filled_qty": "0",
        "filled_avg_price": None,
        "limit_price": None,
        "stop_price": None,
        "extended_hours": False,
        "legs": None,
    }
    row.update(fields)
    return row


def _fields(order):
    return OrderSummary(
        order.id,
        order.client_order_id,
        order.symbol,
        symbol_key(order.symbol),
        order.side,
        order.status,
        order.qty,
        order.filled_qty,
    )


# --- the parser: parse_order's values and parse_order's errors ----------------------------------

SAME_VALUES = {
    "common": {},
    "offset timestamps": {"created_at": "2024-03-01T16:30:00+02:00"},
    "nanoseconds": {"submitted_at": "2024-03-01T14:30:00.123456789Z"},
    "naive timestamp": {"updated_at": "2024-03-01T14:30:00"},
    "trailing zeros": {"qty": "1.500", "filled_qty": "0.50"},
    "json numbers": {"qty": 2, "filled_avg_price": 187.12},
    "empty figures": {"notional": "", "filled_qty": ""},
    "missing optional fields": {"filled_qty": None, "updated_at": None, "type": None},
    "unknown enums": {"status": "held_for_new_reasons", "side": "sell_short"},
    "crypto symbol": {"symbol": "BTC/USD", "qty": "0.000199499"},
    "odd text fields": {"type": 7, "time_in_force": ["gtc"], "extended_hours": "TRUE"},
    "only created_at": {"submitted_at": None},
    "negative zero": {"filled_qty": "-0"},
}


@pytest.mark.parametrize("changes", SAME_VALUES.values(), ids=SAME_VALUES.keys())
def test_summaries_hold_what_parse_order_gives(changes):
    rows = [_order(1), _order(2, **changes), _order(3)]
    orders = parse_orders(json.loads(json.dumps(rows)))
    summaries, stamps = parse_order_summaries(json.loads(json.dumps(rows)))
    assert summaries == [_fields(o) for o in orders]
    assert [type(s.qty) for s in summaries] == [type(o.qty) for o in orders]
    assert [str(s.filled_qty) for s in summaries] == [str(o.filled_qty) for o in orders]
    assert stamps == [(o.submitted_at, o.created_at) for o in orders]
    assert all(s.tzinfo is UTC for pair in stamps for s in pair if s is not None)


REFUSED = {
    "qty too large": {"qty": "1e12"},
    "qty too fine": {"qty": "0.0000000001"},
    "qty not a number": {"qty": "lots"},
    "limit price huge": {"limit_price": "1e15"},
    "stop price NaN": {"stop_price": "NaN"},
    "notional float too large": {"notional": 1e308},
    "filled qty infinite": {"filled_qty": "Infinity"},
    "avg price a list": {"filled_avg_price": ["1"]},
    "bool qty": {"qty": True},
    "bad timestamp": {"created_at": "yesterday"},
    "timestamp a number": {"filled_at": 1700000000},
    "no id": {"id": None},
    "empty symbol": {"symbol": ""},
    "status a number": {"status": 3},
    "no client order id": {"client_order_id": None},
}


@pytest.mark.parametrize("changes", REFUSED.values(), ids=REFUSED.keys())
def test_summaries_refuse_what_parse_order_refuses_with_the_same_error(changes):
    rows = [_order(1), _order(2, **changes)]
    with pytest.raises(ParseError) as general:
        parse_orders(json.loads(json.dumps(rows)))
    with pytest.raises(ParseError) as lean:
        parse_order_summaries(json.loads(json.dumps(rows)))
    assert str(lean.value) == str(general.value)


@pytest.mark.parametrize("rows", [None, {"orders": []}, [None], [["id"]], ["order"]])
def test_summaries_refuse_bodies_that_are_not_lists_of_orders(rows):
    with pytest.raises(ParseError) as general:
        parse_orders(rows)
    with pytest.raises(ParseError) as lean:
        parse_order_summaries(rows)
    assert str(lean.value) == str(general.value)


# --- the gateway: same pages, same orders ---------------------------------------------------------


def test_the_lean_read_lists_what_list_orders_lists(broker, gateway):
    broker.set_price("AAPL", "10")
    at = datetime.now(UTC) - timedelta(minutes=5)
    for i in range(23):  # ties across page boundaries: every 3 orders share a timestamp
        broker.seed_order(
            "BTC/USD" if i % 4 == 0 else "AAPL",
            "0.5" if i % 4 == 0 else 2,
            client_order_id=f"bo-s{i}-entry",
            status="filled" if i % 2 else "new",
            filled_qty="2" if i % 2 else "0",
            submitted_at=at + timedelta(seconds=i // 3),
        )
    orders = gateway.list_orders(page_size=5)
    summaries = gateway.list_order_summaries(page_size=5)
    assert isinstance(summaries, OrderSummaries) and len(summaries) == len(orders) == 23
    assert list(summaries) == [_fields(o) for o in orders]
    assert summaries[-1] == _fields(orders[-1]) and summaries[2:4] == [
        _fields(o) for o in orders[2:4]
    ]
    for index, order in enumerate(orders):
        whole = summaries.order(index)
        assert whole == order and whole.raw == order.raw
        assert summaries.order(index) is whole  # parsed once
    by_client_id = summaries.by_client_order_id()
    assert set(by_client_id) == {o.client_order_id for o in orders} and len(by_client_id) == 23
    assert by_client_id["bo-s7-entry"] == next(
        o for o in orders if o.client_order_id == "bo-s7-entry"
    )
    assert "bo-unknown" not in by_client_id
    with pytest.raises(KeyError):
        by_client_id["bo-unknown"]


def test_the_lean_read_sends_the_requests_list_orders_sends(over, scripted):
    gateway = over()
    pages = [
        [_order(p * 3 + i, T0 + timedelta(seconds=p * 3 + i)) for i in range(3)] for p in (0, 1)
    ]
    for method in BOTH:
        scripted.answer("GET", "/v2/orders", (200, pages[0]), (200, pages[1]), (200, []))
        after = T0 - timedelta(hours=1)
        getattr(gateway, method)(
            status="closed", after=after, symbols=["AAPL", "BTC/USD"], page_size=3
        )
    general, lean = scripted.hits[:3], scripted.hits[3:]
    assert [(m, p, q) for m, p, q, _ in lean] == [(m, p, q) for m, p, q, _ in general]
    assert [h for *_, h in lean] == [h for *_, h in general]


def test_raw_is_the_order_as_received_even_beyond_ascii(over, scripted):
    gateway = over()
    row = _order(1, subtag="café ☕", source=None, legs=[{"nested": True}])
    scripted.answer(
        "GET",
        "/v2/orders",
        (200, json.dumps([row], ensure_ascii=False).encode(), {"Content-Type": "application/json"}),
    )
    (order,) = gateway.list_orders()
    assert gateway.list_order_summaries().order(0).raw == order.raw == row


def test_an_order_seen_on_two_pages_is_kept_once_with_its_first_pages_body(over, scripted):
    gateway = over()
    first = [_order(i, T0 + timedelta(seconds=i)) for i in range(3)]
    again = [{**first[2], "status": "filled"}, _order(3, T0 + timedelta(seconds=5))]
    scripted.answer("GET", "/v2/orders", (200, first), (200, again))
    summaries = gateway.list_order_summaries(page_size=3)
    assert [s.client_order_id for s in summaries] == [
        "bo-s0-entry",
        "bo-s1-entry",
        "bo-s2-entry",
        "bo-s3-entry",
    ]
    assert summaries[2].status == "new" and summaries.order(2).status == "new"
    assert summaries.order(3).raw == again[1]


# --- the gateway: hostile answers fail both reads alike -------------------------------------------


@pytest.fixture
def over(make_gateway, scripted):
    def make(**overrides):
        overrides.setdefault("base_url", scripted.url)
        overrides.setdefault("retry_policy", NO_RETRY)
        return make_gateway(**overrides)

    return make


@pytest.mark.parametrize("method", BOTH)
@pytest.mark.parametrize(
    ("field", "value"), [("qty", "1e12"), ("filled_qty", "1e-12"), ("limit_price", 1e308)]
)
def test_an_out_of_range_figure_on_a_later_page_fails_the_read(
    over, scripted, method, field, value
):
    gateway = over()
    first = [_order(i, T0 + timedelta(seconds=i)) for i in range(3)]
    bad = [
        _order(3, T0 + timedelta(seconds=3)),
        _order(4, T0 + timedelta(seconds=4), **{field: value}),
    ]
    scripted.answer("GET", "/v2/orders", (200, first), (200, bad))
    with pytest.raises(BrokerMalformedResponse) as info:
        getattr(gateway, method)(page_size=3)
    assert f"order {bad[1]['id']}" in str(info.value) and field in str(info.value)


@pytest.mark.parametrize("method", BOTH)
@pytest.mark.parametrize(
    ("reply", "error", "text"),
    [
        (
            (200, "<html>oops</html>", {"Content-Type": "text/html"}),
            BrokerMalformedResponse,
            "not JSON",
        ),
        ((200, b""), BrokerMalformedResponse, "expected a list"),
        ((200, {"orders": []}), BrokerMalformedResponse, "expected a list"),
        (
            (502, "<html>bad gateway</html>", {"Content-Type": "text/html"}),
            BrokerUnavailable,
            "502",
        ),
        ((404, "404 page not found", {"Content-Type": "text/plain"}), BrokerUnavailable, "404"),
    ],
    ids=["html-200", "empty-200", "object-200", "html-502", "proxy-404"],
)
def test_a_bad_page_fails_both_reads_with_the_same_error(
    over, scripted, method, reply, error, text
):
    gateway = over()
    scripted.answer("GET", "/v2/orders", reply)
    with pytest.raises(error, match=text) as info:
        getattr(gateway, method)()
    scripted.answer("GET", "/v2/orders", reply)
    with pytest.raises(error) as other:
        getattr(gateway, BOTH[1 - BOTH.index(method)])()
    assert str(info.value) == str(other.value)


@pytest.mark.parametrize("method", BOTH)
def test_pages_out_of_order_or_stuck_fail_both_reads(over, scripted, method):
    gateway = over()
    backwards = [_order(i, T0 - timedelta(seconds=i)) for i in range(3)]
    scripted.answer("GET", "/v2/orders", (200, backwards))
    with pytest.raises(BrokerMalformedResponse, match="ascending"):
        getattr(gateway, method)(page_size=3)

    def same_stamps(query):
        return (
            200,
            [_order(uuid.uuid4().int % 10**9, T0 + timedelta(microseconds=i)) for i in range(3)],
        )

    scripted.answer("GET", "/v2/orders", same_stamps)
    with pytest.raises(BrokerMalformedResponse, match="did not advance"):
        getattr(gateway, method)(page_size=3)


def test_the_lean_read_counts_its_calls(over, scripted):
    gateway = over()
    scripted.answer("GET", "/v2/orders", (200, [_order(1)]))
    with gateway.count_calls() as calls:
        gateway.list_order_summaries()
    assert calls.total == 1 and calls.by_method == {"GET": 1}


def test_a_large_body_is_read_whole_in_large_reads(over, scripted):
    """The gateway reads bodies 1 MB at a time (not requests' 10 KB): a 4 MB list arrives whole."""
    gateway = over()
    rows = [
        {"asset_id": str(uuid.UUID(int=i)), "symbol": f"S{i:05d}", "qty": "10", "side": "long"}
        for i in range(40_000)
    ]
    scripted.answer("GET", "/v2/positions", (200, rows))
    positions = gateway.list_positions()
    assert [p.symbol for p in positions] == [r["symbol"] for r in rows]


# --- several reads merged (an incremental reconciliation's), final orders carried whole ---------


def test_orders_carried_as_received_read_again_as_one_page():
    rows = [_order(i, T0 + timedelta(seconds=i), status="filled", filled_qty="1") for i in range(3)]
    carried = OrderSummaries.from_rows(json.loads(json.dumps(rows)))
    assert list(carried) == parse_order_summaries(rows)[0]
    assert [carried.order(i) for i in range(3)] == parse_orders(rows)
    assert carried.order(1).raw == rows[1]
    assert len(OrderSummaries.from_rows([])) == 0
    with pytest.raises(ParseError):
        OrderSummaries.from_rows([{**rows[0], "status": None}])


def test_orders_merged_from_several_reads_keep_their_whole_orders():
    first = OrderSummaries.from_rows([_order(i, T0 + timedelta(seconds=i)) for i in range(3)])
    second = OrderSummaries.from_rows([_order(i, T0 + timedelta(seconds=i)) for i in (7, 8)])
    parsed = first.order(2)  # parsed already: the merged list hands out the same object
    merged = OrderSummaries()
    merged.extend_from(second, [1])
    merged.extend_from(first, [2, 0])
    assert [s.client_order_id for s in merged] == ["bo-s8-entry", "bo-s2-entry", "bo-s0-entry"]
    assert merged.order(1) is parsed
    assert merged.order(0) == second.order(1)
    assert merged.by_client_order_id()["bo-s0-entry"] == first.order(0)
