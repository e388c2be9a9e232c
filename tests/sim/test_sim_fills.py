"""The fill model moves positions; positions, crypto symbols and raw fields as Alpaca has them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, OrderStatus, PositionSide
from alpaca.trading.requests import ClosePositionRequest, GetAssetsRequest
from pydantic import ValidationError

from brokerops.sim import DROP, PaperBroker

from .helpers import Raw, market


def _limit(symbol: str, qty: object, price: object, side: str = "buy", tif: str = "gtc"):
    body = market(symbol, qty, side)
    body.update(type="limit", limit_price=str(price), time_in_force=tif)
    return body


def test_market_buy_fills_and_opens_a_long(raw: Raw, trading_client: TradingClient) -> None:
    order = raw.post("/v2/orders", json=market("AAPL", 10)).json()
    assert order["status"] == "filled"
    assert order["filled_qty"] == "10"
    assert order["filled_avg_price"] == "190"
    assert order["filled_at"] is not None

    position = trading_client.get_open_position("AAPL")
    assert position.qty == "10"
    assert position.side == PositionSide.LONG
    assert position.avg_entry_price == "190"
    assert position.market_value == "1900"
    assert position.cost_basis == "1900"


def test_average_entry_price_and_reduction(raw: Raw, paper_broker: PaperBroker) -> None:
    raw.post("/v2/orders", json=market("AAPL", 10))
    paper_broker.set_price("AAPL", "200")
    raw.post("/v2/orders", json=market("AAPL", 10))
    position = raw.get("/v2/positions/AAPL").json()
    assert position["qty"] == "20"
    assert position["avg_entry_price"] == "195"
    assert position["unrealized_pl"] == "100"

    raw.post("/v2/orders", json=market("AAPL", 5, "sell"))
    position = raw.get("/v2/positions/AAPL").json()
    assert position["qty"] == "15"
    assert position["avg_entry_price"] == "195"

    raw.post("/v2/orders", json=market("AAPL", 15, "sell"))
    assert raw.get("/v2/positions/AAPL").status_code == 404
    assert raw.get("/v2/positions").json() == []


def test_short_sell_opens_a_negative_position(raw: Raw, trading_client: TradingClient) -> None:
    order = raw.post("/v2/orders", json=market("TSLA", 4, "sell")).json()
    assert order["position_intent"] == "sell_to_open"
    position = trading_client.get_open_position("TSLA")
    assert position.qty == "-4"
    assert position.side == PositionSide.SHORT
    assert position.market_value == "-1000"
    assert position.qty_available == "-4"

    cover = raw.post("/v2/orders", json=market("TSLA", 4, "buy")).json()
    assert cover["position_intent"] == "buy_to_close"
    assert trading_client.get_all_positions() == []


def test_limit_order_rests_until_the_price_crosses(raw: Raw, paper_broker: PaperBroker) -> None:
    buy = raw.post("/v2/orders", json=_limit("AAPL", 2, "180")).json()
    assert buy["status"] == "new"
    assert paper_broker.set_price("AAPL", "185") == []
    assert raw.get(f"/v2/orders/{buy['id']}").json()["status"] == "new"

    filled = paper_broker.set_price("AAPL", "179.5")
    assert [o["id"] for o in filled] == [buy["id"]]
    order = raw.get(f"/v2/orders/{buy['id']}").json()
    assert order["status"] == "filled"
    assert order["filled_avg_price"] == "179.5"
    assert raw.get("/v2/positions/AAPL").json()["qty"] == "2"

    sell = raw.post("/v2/orders", json=_limit("AAPL", 2, "200", "sell")).json()
    assert sell["status"] == "new"
    paper_broker.set_price("AAPL", "201")
    assert raw.get(f"/v2/orders/{sell['id']}").json()["status"] == "filled"
    assert raw.get("/v2/positions").json() == []


def test_marketable_limit_fills_at_once(raw: Raw) -> None:
    order = raw.post("/v2/orders", json=_limit("MSFT", 1, "500")).json()
    assert order["status"] == "filled"
    assert order["filled_avg_price"] == "420"


def test_ioc_limit_that_does_not_cross_is_canceled(raw: Raw) -> None:
    order = raw.post("/v2/orders", json=_limit("AAPL", 1, "100", tif="ioc")).json()
    assert order["status"] == "canceled"
    assert order["canceled_at"] is not None
    assert raw.get("/v2/positions").json() == []


def test_stop_order_triggers_on_the_stop_price(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.seed_position("SPY", 3)
    body = {**market("SPY", 3, "sell"), "type": "stop", "stop_price": "500"}
    order = raw.post("/v2/orders", json=body).json()
    assert order["status"] == "new"
    paper_broker.set_price("SPY", "499")
    assert raw.get(f"/v2/orders/{order['id']}").json()["status"] == "filled"
    assert raw.get("/v2/positions").json() == []


def test_manual_fills_make_partially_filled_orders(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_auto_fill(False)
    order = raw.post("/v2/orders", json=market("AAPL", 10)).json()
    assert order["status"] == "accepted"
    assert raw.get("/v2/positions").json() == []

    partial = paper_broker.fill_order(order["id"], qty="4", price="189")
    assert partial["status"] == "partially_filled"
    assert partial["filled_qty"] == "4"
    assert raw.get("/v2/positions/AAPL").json()["qty"] == "4"

    full = paper_broker.fill_order(order["client_order_id"], price="191")
    assert full["status"] == "filled"
    assert full["filled_qty"] == "10"
    assert full["filled_avg_price"] == "190.2"


def test_crypto_order_says_slash_position_says_no_slash(
    raw: Raw, trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    order = raw.post("/v2/orders", json=market("BTC/USD", "0.25")).json()
    assert order["symbol"] == "BTC/USD"
    assert order["asset_class"] == "crypto"

    positions = trading_client.get_all_positions()
    assert [p.symbol for p in positions] == ["BTCUSD"]
    assert positions[0].asset_class == AssetClass.CRYPTO
    assert trading_client.get_open_position("BTCUSD").qty == "0.25"
    assert trading_client.get_open_position(positions[0].asset_id).symbol == "BTCUSD"

    with pytest.raises(APIError) as caught:
        trading_client.get_open_position("BTC/USD")
    assert caught.value.status_code == 404
    assert raw.get("/v2/positions/BTC%2FUSD").status_code == 404

    assert paper_broker.position("BTC/USD")["symbol"] == "BTCUSD"


def test_missing_position_is_404_with_alpaca_body(raw: Raw) -> None:
    response = raw.get("/v2/positions/MSFT")
    assert response.status_code == 404
    assert response.json() == {"code": 40410000, "message": "position does not exist"}


def test_close_position_places_an_opposite_market_order(
    trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    paper_broker.seed_position("MSFT", 6, "400")
    half = trading_client.close_position("MSFT", ClosePositionRequest(percentage="50"))
    assert half.side == "sell"
    assert half.qty == "3"
    assert trading_client.get_open_position("MSFT").qty == "3"

    rest = trading_client.close_position("MSFT")
    assert rest.status == OrderStatus.FILLED
    assert trading_client.get_all_positions() == []


def test_close_all_positions(trading_client: TradingClient, paper_broker: PaperBroker) -> None:
    paper_broker.seed_position("AAPL", 2)
    paper_broker.seed_position("TSLA", -1)
    results = trading_client.close_all_positions(cancel_orders=True)
    assert sorted(r.symbol for r in results) == ["AAPL", "TSLA"]
    assert {r.status for r in results} == {200}
    assert trading_client.get_all_positions() == []


def test_close_position_manually_leaves_a_foreign_order(paper_broker: PaperBroker) -> None:
    paper_broker.seed_position("AAPL", 7)
    order = paper_broker.close_position_manually("AAPL")
    assert order is not None
    assert order["side"] == "sell"
    assert order["status"] == "filled"
    assert paper_broker.positions() == []
    paper_broker.seed_position("AAPL", 1)
    assert paper_broker.close_position_manually("AAPL", with_order=False) is None
    assert paper_broker.positions() == []


def test_account_tracks_cash_and_market_value(raw: Raw, paper_broker: PaperBroker) -> None:
    start = Decimal(raw.get("/v2/account").json()["cash"])
    raw.post("/v2/orders", json=market("AAPL", 10))
    account = raw.get("/v2/account").json()
    assert Decimal(account["cash"]) == start - 1900
    assert Decimal(account["long_market_value"]) == 1900
    assert Decimal(account["equity"]) == start
    assert account["status"] == "ACTIVE"


def test_assets_list_filters_and_lookup(trading_client: TradingClient, raw: Raw) -> None:
    crypto = trading_client.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO))
    assert sorted(a.symbol for a in crypto) == ["BTC/USD", "ETH/USD"]
    assert trading_client.get_asset("BTC/USD").symbol == "BTC/USD"
    assert raw.get("/v2/assets/BTCUSD").json()["symbol"] == "BTC/USD"
    aapl = trading_client.get_asset("AAPL")
    assert trading_client.get_asset(aapl.id).symbol == "AAPL"
    assert raw.get("/v2/assets", params={"status": "inactive"}).json() == []
    assert raw.get("/v2/assets/NOPE").status_code == 404


def test_unknown_exchange_breaks_alpaca_py_but_not_raw_data(
    paper_broker: PaperBroker, trading_client: TradingClient
) -> None:
    paper_broker.seed_position("AAPL", 1)
    paper_broker.set_asset_fields("AAPL", exchange="NEWEXCH")
    with pytest.raises(ValidationError):
        trading_client.get_all_positions()
    raw_client = TradingClient(
        "test-key", "test-secret", raw_data=True, url_override=paper_broker.base_url
    )
    assert raw_client.get_all_positions()[0]["exchange"] == "NEWEXCH"
    assert raw_client.get_asset("AAPL")["exchange"] == "NEWEXCH"


def test_unknown_order_status_is_served_and_counts_as_open(
    paper_broker: PaperBroker, raw: Raw, trading_client: TradingClient
) -> None:
    order = paper_broker.seed_order("AAPL", 1, client_order_id="odd-1", status="filled")
    paper_broker.set_order_fields("odd-1", status="some_new_status", hwm=DROP, subtag="x")
    served = raw.get(f"/v2/orders/{order['id']}").json()
    assert served["status"] == "some_new_status"
    assert "hwm" not in served
    assert served["subtag"] == "x"
    assert [o["id"] for o in raw.get("/v2/orders").json()] == [order["id"]]
    with pytest.raises(ValidationError):
        trading_client.get_order_by_id(order["id"])


def test_boolean_query_parameters_accept_any_case(raw: Raw) -> None:
    for value in ("true", "True", "TRUE", "false", "FALSE"):
        assert raw.get("/v2/orders", params={"nested": value}).status_code == 200
    assert raw.get("/v2/orders", params={"nested": "yes"}).status_code == 422
    response = raw.delete("/v2/positions", params={"cancel_orders": "TRUE"})
    assert response.status_code == 207


def test_seeded_open_orders_rest_unless_fillable(paper_broker: PaperBroker) -> None:
    inert = paper_broker.seed_order("AAPL", 1, client_order_id="seed-inert")
    live = paper_broker.seed_order(
        "AAPL", 2, type="limit", limit_price="180", client_order_id="seed-live", fillable=True
    )
    filled = paper_broker.set_price("AAPL", "179")
    assert [o["id"] for o in filled] == [live["id"]]
    assert paper_broker.order("seed-inert")["status"] == "new"  # type: ignore[index]
    assert paper_broker.position("AAPL")["qty"] == "2"  # type: ignore[index]
    assert paper_broker.fill_order(inert["id"])["status"] == "filled"
    assert paper_broker.position("AAPL")["qty"] == "3"  # type: ignore[index]
