"""Orders through the real alpaca-py client and raw HTTP: round trips and Alpaca's rejections.

The broker has the default profile (Alpaca's): a new order is answered ``pending_new`` and reaches
the market ``fill_delay_s`` later, so lifecycle tests wait for it as a client would.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
)

from brokerops.sim import PaperBroker
from brokerops.sim.model import parse_time

from .helpers import Raw, assert_in_flight, market, submit_and_settle, wait_for_status


def _limit(symbol: str, qty: object, price: object, **extra: object) -> dict[str, object]:
    body = market(symbol, qty, **extra)
    body.update(type="limit", limit_price=str(price))
    return body


def test_submit_get_list_cancel_round_trip(
    trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    placed = trading_client.submit_order(
        LimitOrderRequest(
            symbol="AAPL",
            qty=3,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=150,
            client_order_id="bo-sig-1",
        )
    )
    assert placed.status == OrderStatus.PENDING_NEW
    assert placed.client_order_id == "bo-sig-1"
    assert placed.qty == "3"
    assert placed.filled_qty == "0"
    assert paper_broker.settle(timeout=5)  # reaches the market; 150 is below 190: it rests

    assert trading_client.get_order_by_id(placed.id).status == OrderStatus.NEW
    assert trading_client.get_order_by_client_id("bo-sig-1").id == placed.id
    open_orders = trading_client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert [o.id for o in open_orders] == [placed.id]

    trading_client.cancel_order_by_id(placed.id)
    canceled = trading_client.get_order_by_id(placed.id)
    assert canceled.status == OrderStatus.CANCELED
    assert canceled.canceled_at is not None
    assert trading_client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    closed = trading_client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED))
    assert [o.id for o in closed] == [placed.id]


def test_order_json_has_alpaca_shapes(raw: Raw) -> None:
    response = raw.post("/v2/orders", json=_limit("AAPL", 2, "101.5"))
    assert response.status_code == 200
    order = response.json()
    UUID(order["id"])
    UUID(order["asset_id"])
    assert order["qty"] == "2"
    assert order["limit_price"] == "101.5"
    assert order["filled_avg_price"] is None
    assert order["created_at"].endswith("Z")
    # Alpaca: nanosecond stamps, submitted a little (microseconds to milliseconds) before created.
    submitted, created = parse_time(order["submitted_at"]), parse_time(order["created_at"])
    assert 0 < created - submitted <= 1_000_000
    assert order["updated_at"] == order["created_at"]
    assert order["type"] == order["order_type"] == "limit"
    assert order["asset_class"] == "us_equity"
    assert order["position_intent"] == "buy_to_open"


def test_duplicate_client_order_id_is_422_also_after_cancel(raw: Raw) -> None:
    first = raw.post("/v2/orders", json=_limit("AAPL", 1, 100, client_order_id="dup-1"))
    assert first.status_code == 200
    again = raw.post("/v2/orders", json=_limit("AAPL", 1, 100, client_order_id="dup-1"))
    assert again.status_code == 422
    assert again.json() == {"code": 40010001, "message": "client_order_id must be unique"}

    assert raw.delete(f"/v2/orders/{first.json()['id']}").status_code == 204
    after_cancel = raw.post("/v2/orders", json=_limit("AAPL", 1, 100, client_order_id="dup-1"))
    assert after_cancel.status_code == 422
    assert after_cancel.json()["message"] == "client_order_id must be unique"


def test_duplicate_client_order_id_through_alpaca_py(trading_client: TradingClient) -> None:
    request = MarketOrderRequest(
        symbol="MSFT",
        qty=1,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        client_order_id="dup-2",
    )
    trading_client.submit_order(request)
    with pytest.raises(APIError) as caught:
        trading_client.submit_order(request)
    assert caught.value.status_code == 422
    assert caught.value.code == 40010001


def test_client_order_id_longer_than_128_is_rejected(raw: Raw) -> None:
    ok = raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="x" * 128))
    assert ok.status_code == 200
    too_long = raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="y" * 129))
    assert too_long.status_code == 422
    assert too_long.json()["code"] == 40010001


@pytest.mark.parametrize(
    ("symbol", "price", "accepted"),
    [
        ("AAPL", "101.23", True),
        ("AAPL", "101.234", False),
        ("AAPL", "1.000", True),
        ("PENNY", "0.1234", True),
        ("PENNY", "0.12345", False),
    ],
)
def test_sub_penny_limit_prices(raw: Raw, symbol: str, price: str, accepted: bool) -> None:
    response = raw.post("/v2/orders", json=_limit(symbol, 1, price))
    if accepted:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 422
        assert response.json() == {
            "code": 42210000,
            "message": f"invalid limit_price {price}. sub-penny increment does not fulfill "
            "minimum pricing criteria",
        }


def test_sub_penny_message_quotes_the_number_alpaca_py_sent(trading_client: TradingClient) -> None:
    with pytest.raises(APIError) as caught:
        trading_client.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
                limit_price=1.234,
            )
        )
    assert caught.value.message.startswith("invalid limit_price 1.234. sub-penny increment")


PARAMETER = 40010001  # a missing, malformed or disallowed parameter
RULE = 42210000  # a trading rule


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        (market("BTC/USD", "0.1", time_in_force="day"), PARAMETER, "invalid crypto time_in_force"),
        (
            {**market("BTC/USD", "0.1"), "type": "stop", "stop_price": "50000"},
            PARAMETER,
            "invalid order type for crypto order",
        ),
        (market("AAPL", "0.5", time_in_force="gtc"), RULE, "fractional orders must be DAY orders"),
        (
            {**market("AAPL", 1, time_in_force="gtc"), "qty": None, "notional": "100"},
            RULE,
            "fractional orders must be DAY orders",
        ),
        (
            {**_limit("AAPL", 1, 100), "time_in_force": "gtc", "extended_hours": True},
            RULE,
            "extended hours order must be DAY limit orders",
        ),
        (
            {**market("AAPL", 1), "extended_hours": True},
            RULE,
            'only type="limit" is allowed for extended hours orders',
        ),
        (
            {**market("AAPL", 1), "notional": "100"},
            PARAMETER,
            "only one of qty or notional is allowed",
        ),
        ({**market("AAPL", 1), "qty": None}, PARAMETER, "qty or notional is required"),
        ({**market("AAPL", 1), "qty": "ten"}, PARAMETER, "invalid qty"),
        ({**market("AAPL", 1), "qty": True}, PARAMETER, "invalid qty"),
        ({**market("AAPL", 1), "side": "hold"}, PARAMETER, "invalid side"),
        ({**market("AAPL", 1), "side": None}, PARAMETER, "side is required"),
        ({**market("AAPL", 1), "type": "iceberg"}, PARAMETER, "invalid order type"),
        ({**market("AAPL", 1), "time_in_force": "week"}, PARAMETER, "invalid time_in_force"),
        (market("XYZ", 1), PARAMETER, 'asset "XYZ" not found'),
        (market("HALTD", 1), RULE, 'asset "HALTD" is not tradable'),
        (market("WHOLE", "0.5"), RULE, 'asset "WHOLE" is not fractionable'),
        ({**_limit("AAPL", 1, 100), "limit_price": None}, PARAMETER, "limit_price is required"),
        ({**_limit("AAPL", 1, 100), "limit_price": "1e"}, PARAMETER, "invalid limit_price"),
    ],
)
def test_order_rules_are_422(raw: Raw, body: dict[str, object], code: int, message: str) -> None:
    response = raw.post("/v2/orders", json=body)
    assert response.status_code == 422, response.text
    assert response.json() == {"code": code, "message": message}


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_non_uuid_order_id_is_422(raw: Raw, method: str) -> None:
    response = raw.request(method, "/v2/orders/bo-sig-1-entry")
    assert response.status_code == 422
    assert response.json() == {"code": 40010001, "message": "invalid order id"}


def test_extended_hours_day_limit_is_accepted(raw: Raw) -> None:
    body = {**_limit("AAPL", 1, 100), "time_in_force": "day", "extended_hours": "TRUE"}
    response = raw.post("/v2/orders", json=body)
    assert response.status_code == 200
    assert response.json()["extended_hours"] is True


def test_crypto_gtc_and_ioc_are_accepted(raw: Raw) -> None:
    assert raw.post("/v2/orders", json=market("BTC/USD", "0.01")).status_code == 200
    ioc = raw.post("/v2/orders", json=market("ETH/USD", "0.5", time_in_force="ioc"))
    assert ioc.status_code == 200
    assert ioc.json()["symbol"] == "ETH/USD"


def test_body_that_is_not_json_is_400(raw: Raw) -> None:
    response = raw.post("/v2/orders", data=b"{not json", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["code"] == 40010000


def test_short_sell_rules(raw: Raw, paper_broker: PaperBroker) -> None:
    # Alpaca refuses a short it does not allow with 422/42210000, not 403.
    not_shortable = raw.post("/v2/orders", json=market("NOSHRT", 5, "sell"))
    assert not_shortable.status_code == 422
    assert not_shortable.json() == {
        "code": 42210000,
        "message": 'asset "NOSHRT" cannot be sold short',
    }
    fractional = raw.post("/v2/orders", json=market("AAPL", "0.5", "sell"))
    assert fractional.status_code == 422
    assert fractional.json() == {
        "code": 42210000,
        "message": "fractional orders cannot be sold short",
    }
    crypto = raw.post("/v2/orders", json=market("BTC/USD", "1", "sell"))
    assert crypto.status_code == 403
    assert crypto.json() == {
        "available": "0",
        "balance": "0",
        "code": 40310000,
        "message": "insufficient balance for BTC (requested: 1, available: 0)",
    }

    paper_broker.seed_position("MSFT", 5)
    too_many = raw.post("/v2/orders", json=market("MSFT", 6, "sell"))
    assert too_many.status_code == 403
    assert too_many.json() == {
        "available": "5",
        "code": 40310000,
        "existing_qty": "5",
        "held_for_orders": "0",
        "message": "insufficient qty available for order (requested: 6, available: 5)",
        "symbol": "MSFT",
    }
    assert list(too_many.json()) == sorted(too_many.json())  # Alpaca's keys come sorted
    assert raw.post("/v2/orders", json=market("MSFT", 5, "sell")).status_code == 200


def test_resting_sell_holds_quantity(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.seed_position("AAPL", 10)
    resting = raw.post("/v2/orders", json={**_limit("AAPL", 8, 999), "side": "sell"})
    assert resting.status_code == 200
    assert raw.get("/v2/positions/AAPL").json()["qty_available"] == "2"
    response = raw.post("/v2/orders", json=market("AAPL", 3, "sell"))
    assert response.status_code == 403
    body = response.json()
    assert "available: 2" in body["message"]
    assert (body["available"], body["existing_qty"], body["held_for_orders"]) == ("2", "10", "8")


def test_insufficient_buying_power_is_403(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_cash(1000)
    response = raw.post("/v2/orders", json=market("AAPL", 100))
    assert response.status_code == 403
    assert response.json() == {
        "buying_power": "2000",
        "code": 40310000,
        "cost_basis": "19000",
        "message": "insufficient buying power",
    }


def test_cancel_errors(raw: Raw) -> None:
    placed = raw.post("/v2/orders", json=market("AAPL", 1)).json()
    assert_in_flight(placed)  # still cancelable (test_sim_delayed_fills cancels one in flight)
    filled = wait_for_status(raw, placed["id"], "filled")
    not_cancelable = raw.delete(f"/v2/orders/{filled['id']}")
    assert not_cancelable.status_code == 422
    assert not_cancelable.json()["code"] == 42210000
    missing = raw.delete("/v2/orders/00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404
    assert missing.json() == {"code": 40410000, "message": "order not found"}


def test_unknown_order_lookups_are_404(raw: Raw) -> None:
    by_id = raw.get("/v2/orders/00000000-0000-4000-8000-000000000000")
    assert by_id.status_code == 404
    assert by_id.json() == {"code": 40410000, "message": "order not found"}
    by_client = raw.get("/v2/orders:by_client_order_id", params={"client_order_id": "never-sent"})
    assert by_client.status_code == 404
    assert by_client.json() == {"code": 40410000, "message": "order not found"}


def test_cancel_all_orders(raw: Raw, trading_client: TradingClient) -> None:
    for price in (90, 91):
        raw.post("/v2/orders", json=_limit("AAPL", 1, price))
    responses = trading_client.cancel_orders()
    assert sorted(r.status for r in responses) == [200, 200]
    assert trading_client.get_orders() == []


def test_manual_cancel_by_client_order_id(raw: Raw, paper_broker: PaperBroker) -> None:
    raw.post("/v2/orders", json=_limit("AAPL", 1, 90, client_order_id="manual-1"))
    paper_broker.cancel_order_manually("manual-1")
    order = raw.get("/v2/orders:by_client_order_id", params={"client_order_id": "manual-1"})
    assert order.json()["status"] == "canceled"
    retry = raw.post("/v2/orders", json=_limit("AAPL", 1, 90, client_order_id="manual-1"))
    assert retry.status_code == 422


def test_notional_market_order_fills_fractional_qty(raw: Raw, paper_broker: PaperBroker) -> None:
    body = {**market("AAPL", 1), "qty": None, "notional": "95"}
    order = submit_and_settle(raw, paper_broker, body)
    assert order["notional"] == "95"
    assert order["qty"] is None
    assert Decimal(order["filled_qty"]) == Decimal("0.5")
    assert order["status"] == "filled"
