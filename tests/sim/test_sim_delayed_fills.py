"""Strict fills: orders are answered ``pending_new`` with nothing filled and fill moments later.

Tests that look at an order while it is in flight lengthen the delay (``set_fidelity``) so a busy
machine cannot release it first, then release it by hand or wait for it.
"""

from __future__ import annotations

import time

import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import GetOrdersRequest, MarketOrderRequest

from brokerops.sim import PaperBroker
from tests.waiting import wait_for

from .helpers import AUTH, Raw, broker_threads, limit, market


def _status(raw: Raw, order_id: str) -> str:
    return raw.get(f"/v2/orders/{order_id}").json()["status"]


def test_market_order_is_pending_then_fills_on_its_own(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.set_fidelity(fill_delay_s=0.5)
    started = time.monotonic()
    placed = strict_raw.post("/v2/orders", json=market("AAPL", 10)).json()
    assert placed["status"] == "pending_new"
    assert placed["filled_qty"] == "0"
    assert placed["filled_avg_price"] is None
    assert placed["filled_at"] is None
    # The position lags the order: nothing held while it is in flight, the order is open.
    assert strict_raw.get("/v2/positions").json() == []
    open_ids = [o["id"] for o in strict_raw.get("/v2/orders", params={"status": "open"}).json()]
    assert open_ids == [placed["id"]]

    wait_for(
        lambda: _status(strict_raw, placed["id"]) == "filled",
        what="the broker's own thread to fill the order",
    )
    assert time.monotonic() - started >= strict_broker.fidelity.fill_delay_s
    order = strict_raw.get(f"/v2/orders/{placed['id']}").json()
    assert (order["filled_qty"], order["filled_avg_price"]) == ("10", "190")
    assert order["filled_at"] >= order["created_at"]
    assert strict_raw.get("/v2/positions/AAPL").json()["qty"] == "10"
    assert strict_broker.pending_count() == 0


def test_settle_waits_for_pending_fills(strict_raw: Raw, strict_broker: PaperBroker) -> None:
    strict_broker.set_fidelity(fill_delay_s=0.5)
    ids = [strict_raw.post("/v2/orders", json=market("MSFT", 1)).json()["id"] for _ in range(3)]
    assert strict_broker.pending_count() == 3
    assert strict_broker.settle(timeout=5)
    assert [_status(strict_raw, i) for i in ids] == ["filled"] * 3
    assert strict_broker.position("MSFT")["qty"] == "3"  # type: ignore[index]


def test_settle_times_out_and_release_pending_does_not_wait(strict_broker: PaperBroker) -> None:
    strict_broker.set_fidelity(fill_delay_s=30)
    raw = Raw(strict_broker.base_url)
    try:
        order = raw.post("/v2/orders", json=market("SPY", 2)).json()
        assert strict_broker.settle(timeout=0.05) is False
        assert _status(raw, order["id"]) == "pending_new"
        [released] = strict_broker.release_pending()
        assert released["status"] == "filled"
        assert strict_broker.settle(timeout=0)
    finally:
        raw.close()


def test_limit_order_reaches_the_market_then_rests_until_the_price_crosses(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.set_fidelity(fill_delay_s=30)
    buy = strict_raw.post("/v2/orders", json=limit("AAPL", 2, "180")).json()
    assert buy["status"] == "pending_new"
    # A crossing price while the order is still in flight does not fill it early.
    assert strict_broker.set_price("AAPL", "179") == []
    strict_broker.set_price("AAPL", "185")
    [arrived] = strict_broker.release_pending()
    assert arrived["status"] == "new"
    assert _status(strict_raw, buy["id"]) == "new"

    [filled] = strict_broker.set_price("AAPL", "179.5")
    assert filled["id"] == buy["id"]
    assert filled["filled_avg_price"] == "179.5"
    assert strict_raw.get("/v2/positions/AAPL").json()["qty"] == "2"


def test_marketable_limit_and_ioc_are_decided_when_the_order_arrives(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    marketable = strict_raw.post("/v2/orders", json=limit("MSFT", 1, "500")).json()
    ioc = strict_raw.post("/v2/orders", json=limit("TSLA", 1, "100", time_in_force="ioc")).json()
    assert {marketable["status"], ioc["status"]} == {"pending_new"}
    assert strict_broker.settle(timeout=5)
    assert _status(strict_raw, marketable["id"]) == "filled"
    assert _status(strict_raw, ioc["id"]) == "canceled"


def test_an_order_canceled_in_flight_never_fills(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.set_fidelity(fill_delay_s=30)
    order = strict_raw.post("/v2/orders", json=market("AAPL", 5)).json()
    assert strict_raw.delete(f"/v2/orders/{order['id']}").status_code == 204
    assert strict_broker.pending_count() == 0
    assert strict_broker.settle(timeout=5)
    assert _status(strict_raw, order["id"]) == "canceled"
    assert strict_raw.get("/v2/positions").json() == []


def test_closing_a_position_is_delayed_too(strict_raw: Raw, strict_broker: PaperBroker) -> None:
    strict_broker.set_fidelity(fill_delay_s=0.5)
    strict_broker.seed_position("TSLA", 4, "240")
    close = strict_raw.delete("/v2/positions/TSLA")
    assert close.status_code == 200
    assert close.json()["status"] == "pending_new"
    assert strict_raw.get("/v2/positions/TSLA").json()["qty"] == "4"
    assert strict_broker.settle(timeout=5)
    assert strict_raw.get("/v2/positions/TSLA").status_code == 404


def test_alpaca_py_sees_pending_new_then_filled(
    strict_client: TradingClient, strict_broker: PaperBroker
) -> None:
    strict_broker.set_fidelity(fill_delay_s=0.5)
    order = strict_client.submit_order(
        MarketOrderRequest(symbol="SPY", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert order.status == OrderStatus.PENDING_NEW
    assert order.filled_qty == "0"
    assert strict_client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert strict_broker.settle(timeout=5)
    assert strict_client.get_order_by_id(order.id).status == OrderStatus.FILLED
    assert strict_client.get_open_position("SPY").qty == "3"


def test_stop_stops_the_fill_thread_and_pending_orders_survive_a_restart() -> None:
    before = broker_threads()
    broker = PaperBroker(default_assets=True, strict=True, fill_delay_s=0.5).start()
    order = requests.post(
        broker.base_url + "/v2/orders", json=market("AAPL", 1), headers=AUTH, timeout=5
    ).json()
    broker.stop()
    assert broker_threads() <= before
    time.sleep(0.6)
    assert broker.order(order["id"])["status"] == "pending_new"  # type: ignore[index]
    with broker:
        assert broker.settle(timeout=5)
        assert broker.order(order["id"])["status"] == "filled"  # type: ignore[index]
    assert broker_threads() <= before


def test_settle_works_without_a_running_broker() -> None:
    broker = PaperBroker(default_assets=True, fill_delay_s=0.05)
    order = broker.book.submit_order(market("AAPL", 1))
    assert order["status"] == "pending_new"
    assert broker.settle(timeout=5)
    assert broker.position("AAPL")["qty"] == "1"  # type: ignore[index]


def test_auto_fill_off_still_wins_over_the_delay(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.set_auto_fill(False)
    order = strict_raw.post("/v2/orders", json=market("AAPL", 2)).json()
    assert order["status"] == "accepted"
    assert strict_broker.settle(timeout=1)
    assert _status(strict_raw, order["id"]) == "accepted"
    assert strict_broker.fill_order(order["id"])["status"] == "filled"
