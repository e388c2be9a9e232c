"""``GET /v2/orders``: limit, after/until, direction, status and symbol filters, as Alpaca pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from brokerops.sim import PaperBroker

from .helpers import Raw

BASE = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)


def _seed(broker: PaperBroker, count: int) -> list[str]:
    """``count`` orders a second apart, alternately filled and open; returns their ids."""
    ids = []
    for i in range(count):
        order = broker.seed_order(
            "AAPL" if i % 3 else "BTC/USD",
            1,
            "buy" if i % 4 else "sell",
            status="filled" if i % 2 else "new",
            client_order_id=f"bo-{i}",
            submitted_at=BASE + timedelta(seconds=i),
        )
        ids.append(order["id"])
    return ids


def _page_until(raw: Raw, status: str) -> list[dict[str, object]]:
    """Newest first, each next page strictly before the last order seen (what a gateway does)."""
    seen: list[dict[str, object]] = []
    params: dict[str, object] = {"status": status, "limit": 500, "direction": "desc"}
    while True:
        page = raw.get("/v2/orders", params=params).json()
        seen.extend(page)
        if len(page) < 500:
            return seen
        params["until"] = page[-1]["submitted_at"]


def test_paging_back_with_until_returns_each_order_once(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    ids = _seed(paper_broker, 1200)
    seen = _page_until(raw, "all")
    assert [o["id"] for o in seen] == ids[::-1]


def test_paging_forward_with_after_returns_each_order_once(
    trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    ids = _seed(paper_broker, 1200)
    seen = []
    request = GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500, direction="asc")
    while True:
        page = trading_client.get_orders(request)
        seen.extend(str(o.id) for o in page)
        if len(page) < 500:
            break
        request = GetOrdersRequest(
            status=QueryOrderStatus.ALL, limit=500, direction="asc", after=page[-1].submitted_at
        )
    assert seen == ids


def test_orders_placed_over_http_page_exactly_once(raw: Raw, paper_broker: PaperBroker) -> None:
    # 1,200 orders plus the pages: far more than the default's 200 requests a minute.
    paper_broker.set_rate_limit(2_000)
    placed = []
    for i in range(1200):
        body = {
            "symbol": "AAPL",
            "qty": "1",
            "side": "buy",
            "type": "limit",
            "limit_price": str(100 + i % 50),
            "time_in_force": "gtc",
            "client_order_id": f"http-{i}",
        }
        response = raw.post("/v2/orders", json=body)
        assert response.status_code == 200, response.text
        placed.append(response.json()["id"])
    assert paper_broker.settle(timeout=5)  # all reached the market: they rest as "new" (open)
    seen = _page_until(raw, "open")
    assert {o["status"] for o in seen} == {"new"}
    assert len(seen) == 1200
    assert {o["id"] for o in seen} == set(placed)


def test_after_and_until_are_exclusive(raw: Raw, paper_broker: PaperBroker) -> None:
    ids = _seed(paper_broker, 10)
    params = {
        "status": "all",
        "direction": "asc",
        "after": (BASE + timedelta(seconds=2)).isoformat(),
        "until": "2024-03-01T14:30:06Z",
    }
    page = raw.get("/v2/orders", params=params).json()
    assert [o["id"] for o in page] == ids[3:6]


def test_default_is_open_newest_first_fifty(raw: Raw, paper_broker: PaperBroker) -> None:
    ids = _seed(paper_broker, 200)
    page = raw.get("/v2/orders").json()
    open_ids = [i for n, i in enumerate(ids) if n % 2 == 0]
    assert [o["id"] for o in page] == open_ids[::-1][:50]


def test_limit_is_capped_at_500(raw: Raw, paper_broker: PaperBroker) -> None:
    _seed(paper_broker, 600)
    assert len(raw.get("/v2/orders", params={"status": "all", "limit": 1000}).json()) == 500


@pytest.mark.parametrize(
    ("params", "count"),
    [
        ({"status": "closed"}, 30),
        ({"status": "open"}, 30),
        ({"symbols": "BTC/USD"}, 20),
        ({"symbols": "BTCUSD,AAPL"}, 60),
        ({"side": "sell"}, 15),
    ],
)
def test_filters(raw: Raw, paper_broker: PaperBroker, params: dict, count: int) -> None:
    _seed(paper_broker, 60)
    query = {"status": "all", "limit": 500, **params}
    assert len(raw.get("/v2/orders", params=query).json()) == count


def test_symbols_filter_through_alpaca_py(
    trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    _seed(paper_broker, 12)
    orders = trading_client.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, symbols=["BTC/USD"], side=OrderSide.SELL)
    )
    assert {o.symbol for o in orders} == {"BTC/USD"}
    assert {o.side for o in orders} == {OrderSide.SELL}


@pytest.mark.parametrize(
    "params",
    [{"status": "pending"}, {"limit": "ten"}, {"direction": "up"}, {"after": "yesterday"}],
)
def test_bad_query_values_are_422(raw: Raw, params: dict) -> None:
    response = raw.get("/v2/orders", params=params)
    assert response.status_code == 422
    assert response.json()["code"] == 40010001
