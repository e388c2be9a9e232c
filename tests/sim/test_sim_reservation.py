"""Strict order checks: open orders hold buying power; opposite-side orders are wash trades.

Both rules are on by default (Alpaca's profile); the ``lenient_*`` tests pin that they can be
switched off, with ``strict=False`` or the single rule.
"""

from __future__ import annotations

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from brokerops.sim import PaperBroker

from .helpers import Raw, limit, market

WASH = "potential wash trade detected. use complex orders"


def test_open_buys_hold_buying_power(strict_raw: Raw, strict_broker: PaperBroker) -> None:
    strict_broker.set_cash(10_000)  # buying power 20,000
    first = strict_raw.post("/v2/orders", json=limit("AAPL", 80, "150"))  # 12,000: 60%
    assert first.status_code == 200
    assert strict_broker.settle(timeout=5)
    assert strict_raw.get("/v2/account").json()["buying_power"] == "8000"

    second = strict_raw.post("/v2/orders", json=limit("MSFT", 30, "400"))  # another 12,000
    assert second.status_code == 403
    assert second.json() == {
        "buying_power": "8000",
        "code": 40310000,
        "cost_basis": "12000",
        "message": "insufficient buying power",
    }
    assert strict_raw.delete(f"/v2/orders/{first.json()['id']}").status_code == 204
    assert strict_raw.get("/v2/account").json()["buying_power"] == "20000"
    assert strict_raw.post("/v2/orders", json=limit("MSFT", 30, "400")).status_code == 200


def test_lenient_broker_reserves_nothing(lenient_raw: Raw, lenient_broker: PaperBroker) -> None:
    lenient_broker.set_cash(10_000)
    assert lenient_raw.post("/v2/orders", json=limit("AAPL", 80, "150")).status_code == 200
    assert lenient_raw.get("/v2/account").json()["buying_power"] == "20000"
    assert lenient_raw.post("/v2/orders", json=limit("MSFT", 30, "400")).status_code == 200


def test_reservation_off_alone(raw: Raw, paper_broker: PaperBroker) -> None:
    """The default profile with ``reserve_buying_power=False`` only."""
    paper_broker.set_fidelity(reserve_buying_power=False)
    paper_broker.set_cash(10_000)
    assert raw.post("/v2/orders", json=limit("AAPL", 80, "150")).status_code == 200
    assert raw.post("/v2/orders", json=limit("MSFT", 30, "400")).status_code == 200


def test_orders_in_flight_hold_buying_power_until_the_money_runs_out(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.set_fidelity(fill_delay_s=30)
    strict_broker.set_cash(1_000)  # buying power 2,000: one 6-share AAPL order (1,140) fits
    statuses = [strict_raw.post("/v2/orders", json=market("AAPL", 6)).status_code for _ in range(3)]
    assert statuses == [200, 403, 403]
    strict_broker.release_pending()
    assert strict_raw.get("/v2/positions/AAPL").json()["qty"] == "6"
    assert strict_raw.post("/v2/orders", json=market("AAPL", 6)).status_code == 403


def test_closing_orders_hold_no_buying_power(strict_raw: Raw, strict_broker: PaperBroker) -> None:
    strict_broker.seed_position("AAPL", 10, "190")
    before = strict_raw.get("/v2/account").json()["buying_power"]
    assert strict_raw.post("/v2/orders", json=limit("AAPL", 10, "999", "sell")).status_code == 200
    assert strict_raw.get("/v2/account").json()["buying_power"] == before


def test_a_buy_against_a_resting_sell_limit_is_a_wash_trade(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.seed_position("AAPL", 10, "190")
    sell = strict_raw.post("/v2/orders", json=limit("AAPL", 5, "200", "sell")).json()
    refused = strict_raw.post("/v2/orders", json=market("AAPL", 1))
    assert refused.status_code == 403
    assert refused.json() == {
        "code": 40310000,
        "existing_order_id": sell["id"],
        "message": WASH,
        "reject_reason": "opposite side limit order exists",
    }
    crossing = strict_raw.post("/v2/orders", json=limit("AAPL", 1, "200"))
    assert crossing.status_code == 403
    # A buy limit below the resting sell limit cannot trade with it: Alpaca accepts it.
    buy = strict_raw.post("/v2/orders", json=limit("AAPL", 1, "150"))
    assert buy.status_code == 200
    # And the reverse: a market sell while that buy rests.
    reverse = strict_raw.post("/v2/orders", json=market("AAPL", 1, "sell"))
    assert reverse.status_code == 403
    assert reverse.json()["existing_order_id"] == buy.json()["id"]
    assert reverse.json()["reject_reason"] == "opposite side limit order exists"


def test_a_resting_stop_blocks_every_buy_but_a_trailing_stop_blocks_none(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.seed_position("TSLA", 5, "250")
    stop = strict_broker.seed_order("TSLA", 5, "sell", type="stop", stop_price="200")
    refused = strict_raw.post("/v2/orders", json=limit("TSLA", 1, "100"))
    assert refused.status_code == 403
    assert refused.json()["reject_reason"] == "opposite side market/stop order exists"
    assert refused.json()["existing_order_id"] == stop["id"]

    strict_broker.cancel_order_manually(stop["id"])
    strict_broker.seed_order("TSLA", 5, "sell", type="trailing_stop", status="new")
    assert strict_raw.post("/v2/orders", json=limit("TSLA", 1, "100")).status_code == 200


def test_closing_a_position_against_an_open_buy_is_a_wash_trade(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.seed_position("MSFT", 3, "400")
    buy = strict_raw.post("/v2/orders", json=limit("MSFT", 1, "300")).json()
    close = strict_raw.delete("/v2/positions/MSFT")
    assert close.status_code == 403
    assert close.json()["existing_order_id"] == buy["id"]


def test_alpaca_py_raises_the_wash_trade_refusal(
    strict_client: TradingClient, strict_broker: PaperBroker
) -> None:
    strict_broker.seed_position("SPY", 2)
    strict_broker.seed_order("SPY", 2, "sell", type="limit", limit_price="530")
    with pytest.raises(APIError) as caught:
        strict_client.submit_order(
            MarketOrderRequest(
                symbol="SPY", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
    assert caught.value.status_code == 403
    assert (caught.value.code, caught.value.message) == (40310000, WASH)


def test_lenient_broker_has_no_wash_trade_check(
    lenient_raw: Raw, lenient_broker: PaperBroker
) -> None:
    lenient_broker.seed_position("AAPL", 10, "190")
    assert lenient_raw.post("/v2/orders", json=limit("AAPL", 5, "200", "sell")).status_code == 200
    assert lenient_raw.post("/v2/orders", json=market("AAPL", 1)).status_code == 200


def test_wash_trade_check_off_alone(raw: Raw, paper_broker: PaperBroker) -> None:
    """The default profile with ``wash_trade_check=False`` only."""
    paper_broker.set_fidelity(wash_trade_check=False)
    paper_broker.seed_position("AAPL", 10, "190")
    assert raw.post("/v2/orders", json=limit("AAPL", 5, "200", "sell")).status_code == 200
    assert raw.post("/v2/orders", json=market("AAPL", 1)).status_code == 200
