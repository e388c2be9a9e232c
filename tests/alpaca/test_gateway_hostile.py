"""Hostile answers over real HTTP (a scripted local server in place of the broker): proxy 404s,
Alpaca's real 429 (``X-RateLimit-*``, no ``Retry-After``), absurd pauses, endless or stuck order
pages, duplicate positions, out-of-range figures, 403 refusals."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokerops.alpaca import (
    NO_RETRY,
    BrokerMalformedResponse,
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    OrderRequest,
)

WALL = 1_700_000_000.0
HTML_404 = (
    404,
    "<html><body><h1>404 Not Found</h1><hr>nginx</body></html>",
    {"Content-Type": "text/html"},
)
JSON_404 = (404, {"code": 40410000, "message": "position does not exist"})
T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


class RecordingLimiter:
    def __init__(self):
        self.acquired = 0
        self.pauses = []

    def acquire(self):
        self.acquired += 1

    def pause(self, seconds):
        self.pauses.append(seconds)


@pytest.fixture
def over(make_gateway, scripted):
    """A gateway over the scripted server, wall clock frozen at WALL."""

    def make(**overrides):
        overrides.setdefault("base_url", scripted.url)
        overrides.setdefault("wall_clock", lambda: WALL)
        return make_gateway(**overrides)

    return make


def _position(symbol="AAPL", qty="1", **fields):
    return {"asset_id": str(uuid.uuid4()), "symbol": symbol, "qty": qty, "side": "long", **fields}


def _order(i, stamp, **fields):
    return {
        "id": str(uuid.uuid4()),
        "client_order_id": f"bo-{i}",
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "status": "filled",
        "qty": "1",
        "filled_qty": "1",
        "created_at": stamp.isoformat(),
        "submitted_at": stamp.isoformat(),
        **fields,
    }


# --- only Alpaca's JSON 404 means "absent" ------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [HTML_404, (404, "404 page not found", {"Content-Type": "text/plain"}), (404, b"")],
    ids=["html", "text", "empty"],
)
def test_a_proxy_404_on_the_confirming_position_look_up_is_not_absent(over, scripted, reply):
    gateway = over()
    scripted.answer("GET", "/v2/positions/AAPL", reply)
    with pytest.raises(BrokerUnavailable) as info:
        gateway.get_position("AAPL")
    assert info.value.status == 404 and not info.value.outcome_unknown
    assert len(scripted.calls("GET", "/v2/positions/AAPL")) == 4  # a failure: retried, bounded


def test_alpacas_json_404_is_absent_and_not_retried(over, scripted):
    gateway = over()
    scripted.answer("GET", "/v2/positions/AAPL", JSON_404)
    with pytest.raises(BrokerNotFound):
        gateway.get_position("AAPL")
    assert len(scripted.calls("GET", "/v2/positions/AAPL")) == 1


def test_a_proxy_404_on_an_order_look_up_and_a_cancel(over, scripted):
    gateway = over(retry_policy=NO_RETRY)
    scripted.answer("GET", "/v2/orders:by_client_order_id", HTML_404)
    with pytest.raises(BrokerUnavailable):
        gateway.get_order_by_client_id("bo-1")
    oid = str(uuid.uuid4())
    scripted.answer("DELETE", f"/v2/orders/{oid}", HTML_404)
    with pytest.raises(BrokerUnavailable) as info:
        gateway.cancel_order(oid)
    assert info.value.outcome_unknown
    scripted.answer(
        "DELETE", f"/v2/orders/{oid}", (404, {"code": 40410000, "message": "order not found"})
    )
    with pytest.raises(BrokerNotFound):
        gateway.cancel_order(oid)


# --- Alpaca's real 429: X-RateLimit-* and no Retry-After ----------------------------------------


def _real_429(reset_epoch):
    headers = {
        "X-RateLimit-Limit": "200",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(int(reset_epoch)),
        "Content-Type": "application/json",
    }
    return (429, json.dumps({"code": 42910000, "message": "rate limit exceeded"}), headers)


def test_real_429_waits_until_the_reset_header(over, scripted, clock):
    limiter = RecordingLimiter()
    gateway = over(limiter=limiter)
    scripted.answer(
        "GET", "/v2/account", _real_429(WALL + 5), (200, {"id": "acc", "status": "ACTIVE"})
    )
    assert gateway.get_account().id == "acc"
    assert "Retry-After" not in json.dumps([h for *_, h in scripted.hits])
    assert limiter.pauses == [5.0]  # every worker paused until the reset
    assert clock.sleeps == [5.0]  # and the retry waited for it, not the 0.375 s backoff
    assert gateway.api_calls == 2


@pytest.mark.parametrize(
    ("reply", "header"),
    [
        (
            (429, {"code": 42910000, "message": "slow down"}, {"Retry-After": "86400"}),
            "Retry-After",
        ),
        (_real_429(WALL + 86400), "X-RateLimit-Reset"),
    ],
)
def test_an_absurd_429_pause_is_clamped_and_logged_once(
    over, scripted, clock, caplog, reply, header
):
    limiter = RecordingLimiter()
    gateway = over(limiter=limiter)
    scripted.answer("GET", "/v2/positions", reply)
    with (
        caplog.at_level("WARNING", logger="brokerops.alpaca"),
        pytest.raises(BrokerRateLimited) as info,
    ):
        gateway.list_positions()
    assert limiter.pauses == [65.0]
    assert info.value.retry_after_s == 65.0
    assert clock.sleeps == []  # 65 s is past the read's 30 s budget: handed to the caller
    clamps = [r for r in caplog.records if "clamped" in r.getMessage()]
    assert len(clamps) == 1 and clamps[0].levelname == "WARNING"
    assert header in clamps[0].getMessage() and "65" in clamps[0].getMessage()
    assert "\n" not in str(info.value)


def test_the_pause_cap_is_configurable(over, scripted, clock):
    limiter = RecordingLimiter()
    gateway = over(limiter=limiter, max_pause_s=10)
    scripted.answer("GET", "/v2/account", _real_429(WALL + 3600), (200, {"id": "acc"}))
    assert gateway.get_account().id == "acc"
    assert limiter.pauses == [10.0] and clock.sleeps == [10.0]


def test_an_absurd_pause_over_http_does_not_block_the_in_process_limiter(over, scripted, clock):
    from brokerops.alpaca import InProcessLimiter

    limiter = InProcessLimiter(600, burst=5, clock=clock, sleep=clock.sleep, max_wait_s=70)
    gateway = over(limiter=limiter, retry_policy=NO_RETRY)
    scripted.answer("GET", "/v2/account", _real_429(WALL + 86400), (200, {"id": "acc"}))
    with pytest.raises(BrokerRateLimited):
        gateway.get_account()
    assert gateway.get_account().id == "acc"  # waited out the capped pause, not a day
    assert 65.0 <= sum(clock.sleeps) <= 66.0


# --- 403 is a business refusal ------------------------------------------------------------------


def test_403_refusal_over_http_carries_alpacas_fields(over, scripted):
    gateway = over()
    body = {
        "code": 40310000,
        "message": "insufficient buying power",
        "buying_power": "10.52",
        "cost_basis": "190",
    }
    scripted.answer("POST", "/v2/orders", (403, body))
    with pytest.raises(BrokerRejected) as info:
        gateway.submit_order(OrderRequest(symbol="AAPL", side="buy", qty=Decimal(1)))
    err = info.value
    assert err.status == 403 and err.is_business_refusal and not err.is_auth_error
    assert err.details == {"buying_power": "10.52", "cost_basis": "190"}
    assert len(scripted.calls("POST", "/v2/orders")) == 1


# --- malformed reads ----------------------------------------------------------------------------


def test_two_positions_for_one_symbol_are_malformed(over, scripted):
    gateway = over(retry_policy=NO_RETRY)
    scripted.answer(
        "GET", "/v2/positions", (200, [_position("BTCUSD", "0.5"), _position("BTC/USD", "0.25")])
    )
    with pytest.raises(BrokerMalformedResponse, match="BTCUSD"):
        gateway.list_positions()


def test_an_endless_order_list_stops_at_the_page_bound(over, scripted):
    gateway = over(max_order_pages=5)
    counter = iter(range(10**6))

    def fresh_page(query):
        base = T0 + timedelta(seconds=next(counter))
        return (
            200,
            [_order(f"{base.timestamp()}-{i}", base + timedelta(microseconds=i)) for i in range(3)],
        )

    scripted.answer("GET", "/v2/orders", fresh_page)
    with pytest.raises(BrokerMalformedResponse, match="ALPACA_MAX_ORDER_PAGES") as info:
        gateway.list_orders(page_size=3)
    assert "5 pages" in str(info.value)
    assert len(scripted.calls("GET", "/v2/orders")) == 5


def test_a_page_that_does_not_advance_the_cursor_is_malformed(over, scripted):
    gateway = over()

    def same_stamps(query):  # fresh ids every time, the same timestamps: the cursor never moves
        return (200, [_order(uuid.uuid4().hex, T0 + timedelta(microseconds=i)) for i in range(3)])

    scripted.answer("GET", "/v2/orders", same_stamps)
    with pytest.raises(BrokerMalformedResponse, match="did not advance"):
        gateway.list_orders(page_size=3)
    assert len(scripted.calls("GET", "/v2/orders")) == 2


def test_a_page_going_back_in_time_is_malformed(over, scripted):
    gateway = over()
    first = [_order(i, T0 + timedelta(seconds=10 + i)) for i in range(3)]
    earlier = [_order(10 + i, T0 + timedelta(seconds=i)) for i in range(3)]
    scripted.answer("GET", "/v2/orders", (200, first), (200, earlier))
    with pytest.raises(BrokerMalformedResponse, match="did not advance"):
        gateway.list_orders(page_size=3)


def test_the_page_bound_leaves_room_for_honest_lists(over, scripted):
    gateway = over(max_order_pages=3)
    pages = [
        [_order(p * 3 + i, T0 + timedelta(seconds=p * 3 + i)) for i in range(3)] for p in range(2)
    ]
    scripted.answer("GET", "/v2/orders", (200, pages[0]), (200, pages[1]), (200, []))
    assert len(gateway.list_orders(page_size=3)) == 6


@pytest.mark.parametrize(
    "raw_qty",
    [
        '"1e20"',
        '"1e12"',
        '"-1e12"',
        '"1e-10"',
        '"0.0000000001"',
        '"1e999999999"',
        "1e308",
        "1e999",
        '"NaN"',
        '"-Infinity"',
        '"1e9999999999999999999"',
    ],
)
def test_an_out_of_range_quantity_fails_the_read(over, scripted, raw_qty):
    gateway = over(retry_policy=NO_RETRY)
    body = '[{"asset_id": "a1", "symbol": "AAPL", "side": "long", "qty": ' + raw_qty + "}]"
    scripted.answer("GET", "/v2/positions", (200, body, {"Content-Type": "application/json"}))
    with pytest.raises(BrokerMalformedResponse) as info:
        gateway.list_positions()
    assert "position AAPL" in str(info.value) and "'qty'" in str(info.value)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("filled_qty", "1e-12"),  # a quantity finer than 1e-9 (a price may be: section 6)
        ("filled_avg_price", "1e12"),
        ("limit_price", "1e15"),
        ("notional", 1e308),
        ("filled_qty", "Infinity"),
    ],
)
def test_an_out_of_range_order_figure_fails_the_read(over, scripted, field, value):
    gateway = over(retry_policy=NO_RETRY)
    order = _order(1, T0, **{field: value})
    scripted.answer("GET", "/v2/orders:by_client_order_id", (200, order))
    with pytest.raises(BrokerMalformedResponse) as info:
        gateway.get_order_by_client_id("bo-1")
    assert f"order {order['id']}" in str(info.value) and field in str(info.value)


def test_the_paper_broker_sending_a_tiny_qty_fails_the_read(broker, make_gateway):
    gateway = make_gateway(retry_policy=NO_RETRY)
    broker.seed_position("AAPL", 1)
    broker.set_position_fields("AAPL", qty="1e-10")
    with pytest.raises(BrokerMalformedResponse, match="finer than"):
        gateway.list_positions()


# --- one clear line -----------------------------------------------------------------------------


def test_refused_connection_names_the_host_and_port(make_gateway):
    gateway = make_gateway(base_url="http://127.0.0.1:9", retry_policy=NO_RETRY)
    with pytest.raises(BrokerUnavailable) as info:
        gateway.get_account()
    assert "127.0.0.1:9" in str(info.value) and "\n" not in str(info.value)


def test_an_html_502_wall_is_one_short_line(over, scripted):
    gateway = over(retry_policy=NO_RETRY)
    wall = (
        "<html><head><title>502 Bad Gateway</title></head><body>"
        + "<p>x</p>\n" * 3000
        + "</body></html>"
    )
    scripted.answer("GET", "/v2/account", (502, wall, {"Content-Type": "text/html"}))
    with pytest.raises(BrokerUnavailable) as info:
        gateway.get_account()
    assert "\n" not in str(info.value) and len(str(info.value)) <= 200
    assert "502 Bad Gateway" in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        '[{"symbol": "AAPL", "side": "long", "qty": ' + "9" * 5000 + "}]",  # past int() limits
        "[" * 100_000 + "]" * 100_000,  # nesting past the decoder's recursion limit
    ],
    ids=["huge-int", "deep-nesting"],
)
def test_a_body_the_json_decoder_chokes_on_is_malformed_not_a_crash(over, scripted, body):
    gateway = over(retry_policy=NO_RETRY)
    scripted.answer("GET", "/v2/positions", (200, body, {"Content-Type": "application/json"}))
    with pytest.raises(BrokerMalformedResponse):
        gateway.list_positions()


def test_the_paper_broker_answering_429_like_alpaca(make_gateway):
    """The project's own paper broker in Alpaca's way: 429 with X-RateLimit-* and no Retry-After;
    the gateway pauses until X-RateLimit-Reset and the read succeeds once the window turns."""
    from brokerops.alpaca import RetryPolicy
    from brokerops.sim import PaperBroker

    with PaperBroker(default_assets=True, retry_after_header=False) as paper:
        paper.set_rate_limit(2, window_s=1.0)
        limiter = RecordingLimiter()
        gateway = make_gateway(
            base_url=paper.base_url, limiter=limiter, retry_policy=RetryPolicy(max_total_s=10)
        )
        for _ in range(4):
            assert gateway.get_account().id
        assert paper.rate_limited_count() >= 1
        assert limiter.pauses and all(0 < pause <= 2.0 for pause in limiter.pauses)


def test_a_redirect_on_the_trading_api_is_not_followed_with_the_keys(over, scripted):
    from tests.alpaca.conftest import ScriptedServer

    elsewhere = ScriptedServer()
    try:
        elsewhere.answer("GET", "/steal", (200, []))
        scripted.answer("GET", "/v2/positions", (302, b"", {"Location": f"{elsewhere.url}/steal"}))
        with pytest.raises(BrokerMalformedResponse):  # never "no positions"
            over(retry_policy=NO_RETRY).list_positions()
        assert elsewhere.hits == []
    finally:
        elsewhere.close()
