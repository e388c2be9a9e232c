"""Order submission, cancel, and the paginated bulk read of orders."""

import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from brokerops.alpaca import (
    BrokerMalformedResponse,
    BrokerNotFound,
    BrokerRejected,
    Order,
    OrderRequest,
)

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def test_submit_market_order_returns_typed_order(broker, gateway):
    order = gateway.submit_order(
        OrderRequest(symbol="AAPL", side="buy", qty=Decimal("1.5"), client_order_id="bo-a")
    )
    assert isinstance(order, Order)
    assert order.client_order_id == "bo-a" and order.symbol == "AAPL"
    assert order.qty == Decimal("1.5")
    assert broker.counters() == {("POST", "/v2/orders"): 1}
    assert broker.order("bo-a")["qty"] == "1.5"  # sent as a decimal string


def test_submit_limit_order_sends_decimal_prices_exactly(broker, gateway):
    broker.set_auto_fill(False)
    order = gateway.submit_order(
        OrderRequest(
            symbol="BTC/USD",
            side="buy",
            type="limit",
            time_in_force="gtc",
            qty=Decimal("0.000123"),
            limit_price=Decimal("61234.5"),
            client_order_id="bo-b",
        )
    )
    assert order.limit_price == Decimal("61234.5") and order.qty == Decimal("0.000123")
    assert order.status in ("new", "accepted")


def test_cancel_order_and_cancel_missing(broker, gateway):
    broker.set_auto_fill(False)
    order = gateway.submit_order(
        OrderRequest(
            symbol="AAPL",
            side="buy",
            type="limit",
            time_in_force="gtc",
            qty=Decimal(1),
            limit_price=Decimal("1.00"),
            client_order_id="bo-c",
        )
    )
    gateway.cancel_order(order.id)
    assert gateway.get_order(order.id).status in ("canceled", "pending_cancel")
    with pytest.raises(BrokerNotFound):
        gateway.cancel_order(uuid.uuid4())
    assert broker.counters()[("DELETE", "/v2/orders/{id}")] == 2


def test_cancel_filled_order_is_rejected(broker, gateway):
    order = gateway.submit_order(OrderRequest(symbol="AAPL", side="buy", qty=Decimal(1)))
    # As on Alpaca, the market order is answered before it fills.
    assert order.status in ("pending_new", "accepted") and order.filled_qty == 0
    assert broker.settle(timeout=5.0)
    assert gateway.get_order(order.id).status == "filled"
    with pytest.raises(BrokerRejected) as info:
        gateway.cancel_order(order.id)
    assert info.value.status == 422
    assert gateway.get_order(order.id).status == "filled"  # the refusal changed nothing


def test_alpaca_py_alone_resends_a_504_post(broker):
    """The trap the gateway switches off: alpaca-py retries a 504 POST (here without its 3 s
    waits), placing the same request four times."""
    from alpaca.trading.client import TradingClient
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import MarketOrderRequest

    client = TradingClient("test-key", "test-secret", url_override=broker.base_url)
    client._retry_wait = 0
    broker.inject_next("POST /v2/orders", "5xx", count=3, status=504)
    client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert broker.counters()[("POST", "/v2/orders")] == 4


# --- pagination --------------------------------------------------------------------------------


def _seed_clustered(broker, n, *, cluster=7, symbol="AAPL"):
    """``n`` orders whose submitted_at values come in groups of up to ``cluster`` (ties)."""
    ids = []
    for i in range(n):
        stamp = T0 + timedelta(milliseconds=i // cluster)
        status = "filled" if i % 3 else "new"
        order = broker.seed_order(
            symbol, 1, "buy", status=status, submitted_at=stamp, client_order_id=f"bo-{i}"
        )
        ids.append(order["id"])
    return ids


def test_1200_orders_with_shared_timestamps_each_exactly_once(broker, gateway):
    # Groups of 7 and a page size of 500: page boundaries split groups of equal timestamps.
    ids = _seed_clustered(broker, 1200)
    orders = gateway.list_orders(status="all")
    got = [o.id for o in orders]
    assert len(got) == len(set(got)) == 1200
    assert set(got) == set(ids)
    stamps = [o.submitted_at for o in orders]
    assert stamps == sorted(stamps)
    # 500 + 500 + 200 (+ the ties re-read at each boundary): three calls.
    assert broker.counters()[("GET", "/v2/orders")] == math.ceil(1200 / 500)


def test_many_small_pages_with_ties_at_every_boundary(broker, gateway):
    ids = _seed_clustered(broker, 300, cluster=9)
    orders = gateway.list_orders(page_size=20)
    assert [o.id for o in orders] == ids  # nothing skipped, nothing twice, in order


def test_exact_multiple_of_page_size(broker, gateway):
    ids = [
        broker.seed_order("AAPL", 1, submitted_at=T0 + timedelta(seconds=i))["id"]
        for i in range(10)
    ]
    assert [o.id for o in gateway.list_orders(page_size=5)] == ids


def test_more_ties_than_a_page_fails_loudly_instead_of_skipping(broker, gateway):
    for i in range(12):
        broker.seed_order("AAPL", 1, submitted_at=T0, client_order_id=f"bo-tie-{i}")
    with pytest.raises(BrokerMalformedResponse, match="share one timestamp"):
        gateway.list_orders(page_size=5)


def coids(orders):
    return [o.client_order_id for o in orders]


def test_status_after_until_and_symbol_filters(broker, gateway):
    for i in range(6):
        broker.seed_order(
            "AAPL" if i % 2 else "BTC/USD",
            1,
            status="new" if i < 3 else "filled",
            submitted_at=T0 + timedelta(minutes=i),
            client_order_id=f"bo-f{i}",
        )
    assert coids(gateway.list_orders(status="open")) == ["bo-f0", "bo-f1", "bo-f2"]
    assert coids(gateway.list_orders(status="closed")) == ["bo-f3", "bo-f4", "bo-f5"]
    after = T0 + timedelta(minutes=1)
    until = T0 + timedelta(minutes=5)
    assert coids(gateway.list_orders(after=after, until=until)) == ["bo-f2", "bo-f3", "bo-f4"]
    assert coids(gateway.list_orders(symbols=["BTC/USD"])) == ["bo-f0", "bo-f2", "bo-f4"]
    naive = datetime(2024, 3, 1, 14, 33)  # naive = UTC
    assert coids(gateway.list_orders(after=naive)) == ["bo-f4", "bo-f5"]


def test_list_orders_argument_checks(gateway):
    with pytest.raises(ValueError):
        gateway.list_orders(status="pending")
    with pytest.raises(ValueError):
        gateway.list_orders(page_size=501)


def test_a_bad_middle_page_fails_the_whole_read(broker, gateway):
    _seed_clustered(broker, 30, cluster=1)
    broker.set_order_fields("bo-15", qty="lots")  # on the second page of 10
    with pytest.raises(BrokerMalformedResponse):
        gateway.list_orders(page_size=10)
    assert broker.counters()[("GET", "/v2/orders")] == 2  # never returned as a partial list


def test_a_failed_page_fails_the_whole_read(broker, make_gateway):
    from brokerops.alpaca import NO_RETRY, BrokerUnavailable

    gateway = make_gateway(retry_policy=NO_RETRY)
    _seed_clustered(broker, 30)
    broker.inject_next("GET /v2/orders", "5xx")
    with pytest.raises(BrokerUnavailable):
        gateway.list_orders(page_size=10)


def test_created_at_before_submitted_at_still_pages_exactly_once(broker, gateway):
    ids = []
    for i in range(100):
        submitted = T0 + timedelta(milliseconds=i // 4)
        created = submitted - timedelta(microseconds=300 + 7 * (i % 5))
        order = broker.seed_order("AAPL", 1, submitted_at=submitted, created_at=created)
        ids.append(order["id"])
    assert [o.id for o in gateway.list_orders(page_size=10)] == ids
