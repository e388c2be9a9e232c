"""Nanosecond timestamps as Alpaca writes them, and order paging that still works with them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from brokerops.sim import PaperBroker
from brokerops.sim.model import fmt_time, parse_time, to_nanos

from .helpers import KEY_ID, SECRET, Raw, market

RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,8}[1-9])?Z")
#: Five orders inside one microsecond, then one a microsecond later.
SAME_MICROSECOND = [f"2026-11-25T18:38:26.123456{n:03d}Z" for n in (1, 250, 500, 750, 999)]
NEXT_MICROSECOND = "2026-11-25T18:38:26.123457001Z"


def test_format_and_parse_keep_nanoseconds() -> None:
    stamp = parse_time("2026-11-25T18:38:26.123456789Z")
    assert stamp % 1_000_000_000 == 123_456_789
    assert fmt_time(stamp) == "2026-11-25T18:38:26.123456789Z"
    assert fmt_time(parse_time("2026-11-25T18:38:26.1Z")) == "2026-11-25T18:38:26.1Z"
    assert fmt_time(parse_time("2026-11-25T18:38:26Z")) == "2026-11-25T18:38:26Z"
    assert parse_time("2026-11-25T18:38:26.1234567891234Z") == stamp  # beyond 9 digits: cut
    assert parse_time("2026-11-25T13:38:26.123456789-05:00") == stamp
    # A "+" that URL decoding turned into a space: 13:38+05:00 is 08:38 UTC.
    assert parse_time("2026-11-25T13:38:26.123456789 05:00") == stamp - 10 * 3600 * 10**9
    assert parse_time("2026-11-25") == to_nanos(datetime(2026, 11, 25, tzinfo=UTC))
    with pytest.raises(ValueError):
        parse_time("yesterday")


def test_order_stamps_have_up_to_nine_digits_and_submitted_precedes_created(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    placed = [strict_raw.post("/v2/orders", json=market("AAPL", 1)).json() for _ in range(5)]
    assert strict_broker.settle(timeout=5)
    orders = [strict_raw.get(f"/v2/orders/{o['id']}").json() for o in placed]
    for order in orders:
        for key in ("submitted_at", "created_at", "updated_at", "filled_at"):
            assert RFC3339.fullmatch(order[key]), order[key]
        submitted, created = parse_time(order["submitted_at"]), parse_time(order["created_at"])
        assert 0 < created - submitted <= 1_000_000  # microseconds to a millisecond
        assert parse_time(order["filled_at"]) > created
    submitted = [parse_time(o["submitted_at"]) for o in orders]
    assert submitted == sorted(submitted) and len(set(submitted)) == 5


def _seed_within_a_microsecond(broker: PaperBroker) -> list[str]:
    stamps = [*SAME_MICROSECOND, NEXT_MICROSECOND]
    return [
        broker.seed_order("AAPL", 1, status="filled", submitted_at=stamp)["id"] for stamp in stamps
    ]


def test_after_and_until_compare_to_the_nanosecond(raw: Raw, paper_broker: PaperBroker) -> None:
    ids = _seed_within_a_microsecond(paper_broker)
    served = raw.get("/v2/orders", params={"status": "all", "direction": "asc"}).json()
    assert [o["id"] for o in served] == ids
    assert [o["submitted_at"] for o in served] == [
        "2026-11-25T18:38:26.123456001Z",
        "2026-11-25T18:38:26.12345625Z",  # trailing zeros dropped, as Go's RFC3339Nano does
        "2026-11-25T18:38:26.1234565Z",
        "2026-11-25T18:38:26.12345675Z",
        "2026-11-25T18:38:26.123456999Z",
        NEXT_MICROSECOND,
    ]
    params = {
        "status": "all",
        "direction": "asc",
        "after": SAME_MICROSECOND[1],
        "until": NEXT_MICROSECOND,
    }
    assert [o["id"] for o in raw.get("/v2/orders", params=params).json()] == ids[2:5]
    desc = raw.get("/v2/orders", params={"status": "all", "until": SAME_MICROSECOND[3]}).json()
    assert [o["id"] for o in desc] == ids[:3][::-1]


def test_paging_with_the_served_stamp_returns_each_order_once(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    ids = _seed_within_a_microsecond(paper_broker)
    seen: list[str] = []
    params: dict[str, object] = {"status": "all", "limit": 2, "direction": "asc"}
    while True:
        page = raw.get("/v2/orders", params=params).json()
        seen.extend(o["id"] for o in page)
        if len(page) < 2:
            break
        params["after"] = page[-1]["submitted_at"]  # exact, nanoseconds included
    assert seen == ids


def test_alpaca_py_parses_nanosecond_stamps_raw_and_typed(paper_broker: PaperBroker) -> None:
    ids = _seed_within_a_microsecond(paper_broker)
    typed = TradingClient(KEY_ID, SECRET, url_override=paper_broker.base_url)
    raw_client = TradingClient(KEY_ID, SECRET, raw_data=True, url_override=paper_broker.base_url)
    order = typed.get_order_by_id(ids[0])
    assert order.submitted_at == datetime(2026, 11, 25, 18, 38, 26, 123456, tzinfo=UTC)
    assert raw_client.get_order_by_id(ids[0])["submitted_at"] == SAME_MICROSECOND[0]


def test_alpaca_py_pages_by_microseconds_without_skipping(paper_broker: PaperBroker) -> None:
    """One order in each of eight microseconds, at nanosecond offsets: a client paging with
    alpaca-py's microsecond datetimes, stepping back 1 µs from the last order and dropping what
    it has seen (as brokerops' gateway does), gets every order once, in order."""
    stamps = [f"2026-11-25T18:38:26.123{u:03d}{n:03d}Z" for u, n in enumerate([0, 1, 999] * 3)]
    ids = [paper_broker.seed_order("AAPL", 1, submitted_at=s)["id"] for s in stamps[:8]]
    client = TradingClient(KEY_ID, SECRET, url_override=paper_broker.base_url)
    seen: dict[str, None] = {}
    request = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=3, direction="asc")
    for _ in range(20):
        page = client.get_orders(request)
        fresh = [str(o.id) for o in page if str(o.id) not in seen]
        seen.update(dict.fromkeys(fresh))
        if len(page) < 3:
            break
        assert fresh, "a full page brought nothing new"
        cursor = page[-1].submitted_at - timedelta(microseconds=1)
        request = GetOrdersRequest(
            status=QueryOrderStatus.ALL, limit=3, direction="asc", after=cursor
        )
    assert list(seen) == ids
