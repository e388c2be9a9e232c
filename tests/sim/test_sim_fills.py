"""The fill model moves positions; positions, crypto symbols and raw fields as Alpaca has them.

The broker has the default profile (Alpaca's): a new order is answered ``pending_new`` with
nothing filled and reaches the fill model ``fill_delay_s`` later, so each test checks that answer
and then waits for the fill (``settle()``, or polling the order as a client does). Tests that
also look at the account or positions while an order is in flight lengthen the delay to 0.5 s so
a busy machine cannot fill it first. The instant path (``fill_delay_s=0``) has its own test at the
end.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, OrderStatus, PositionSide
from alpaca.trading.requests import ClosePositionRequest, GetAssetsRequest
from pydantic import ValidationError

from brokerops.sim import DROP, PaperBroker

from .helpers import Raw, assert_in_flight, market, submit_and_settle, wait_for_status


def _limit(symbol: str, qty: object, price: object, side: str = "buy", tif: str = "gtc"):
    body = market(symbol, qty, side)
    body.update(type="limit", limit_price=str(price), time_in_force=tif)
    return body


def test_market_buy_fills_and_opens_a_long(
    raw: Raw, trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    paper_broker.set_fidelity(fill_delay_s=0.5)  # time to look while in flight, even when busy
    placed = raw.post("/v2/orders", json=market("AAPL", 10)).json()
    assert_in_flight(placed)
    assert trading_client.get_all_positions() == []  # the position lags the order
    order = wait_for_status(raw, placed["id"], "filled")  # as a client would
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
    assert submit_and_settle(raw, paper_broker, market("AAPL", 10))["status"] == "filled"
    paper_broker.set_price("AAPL", "200")
    assert submit_and_settle(raw, paper_broker, market("AAPL", 10))["status"] == "filled"
    position = raw.get("/v2/positions/AAPL").json()
    assert position["qty"] == "20"
    assert position["avg_entry_price"] == "195"
    assert position["unrealized_pl"] == "100"

    assert submit_and_settle(raw, paper_broker, market("AAPL", 5, "sell"))["status"] == "filled"
    position = raw.get("/v2/positions/AAPL").json()
    assert position["qty"] == "15"
    assert position["avg_entry_price"] == "195"

    assert submit_and_settle(raw, paper_broker, market("AAPL", 15, "sell"))["status"] == "filled"
    assert raw.get("/v2/positions/AAPL").status_code == 404
    assert raw.get("/v2/positions").json() == []


def test_short_sell_opens_a_negative_position(
    raw: Raw, trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    order = submit_and_settle(raw, paper_broker, market("TSLA", 4, "sell"))
    assert order["status"] == "filled"
    assert order["position_intent"] == "sell_to_open"
    position = trading_client.get_open_position("TSLA")
    assert position.qty == "-4"
    assert position.side == PositionSide.SHORT
    assert position.market_value == "-1000"
    assert position.qty_available == "-4"

    cover = submit_and_settle(raw, paper_broker, market("TSLA", 4, "buy"))
    assert cover["status"] == "filled"
    assert cover["position_intent"] == "buy_to_close"
    assert trading_client.get_all_positions() == []


def test_limit_order_rests_until_the_price_crosses(raw: Raw, paper_broker: PaperBroker) -> None:
    buy = submit_and_settle(raw, paper_broker, _limit("AAPL", 2, "180"))
    assert buy["status"] == "new"  # reached the market, does not cross: rests
    assert paper_broker.set_price("AAPL", "185") == []
    assert raw.get(f"/v2/orders/{buy['id']}").json()["status"] == "new"

    filled = paper_broker.set_price("AAPL", "179.5")
    assert [o["id"] for o in filled] == [buy["id"]]
    order = raw.get(f"/v2/orders/{buy['id']}").json()
    assert order["status"] == "filled"
    assert order["filled_avg_price"] == "179.5"
    assert raw.get("/v2/positions/AAPL").json()["qty"] == "2"

    sell = submit_and_settle(raw, paper_broker, _limit("AAPL", 2, "200", "sell"))
    assert sell["status"] == "new"
    paper_broker.set_price("AAPL", "201")
    assert raw.get(f"/v2/orders/{sell['id']}").json()["status"] == "filled"
    assert raw.get("/v2/positions").json() == []


def test_marketable_limit_fills_when_it_reaches_the_market(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    order = submit_and_settle(raw, paper_broker, _limit("MSFT", 1, "500"))
    assert order["status"] == "filled"
    assert order["filled_avg_price"] == "420"


def test_ioc_limit_that_does_not_cross_is_canceled(raw: Raw, paper_broker: PaperBroker) -> None:
    order = submit_and_settle(raw, paper_broker, _limit("AAPL", 1, "100", tif="ioc"))
    assert order["status"] == "canceled"
    assert order["canceled_at"] is not None
    assert raw.get("/v2/positions").json() == []


def test_stop_order_triggers_on_the_stop_price(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.seed_position("SPY", 3)
    body = {**market("SPY", 3, "sell"), "type": "stop", "stop_price": "500"}
    order = submit_and_settle(raw, paper_broker, body)
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
    order = submit_and_settle(raw, paper_broker, market("BTC/USD", "0.25"))
    assert order["status"] == "filled"
    assert order["symbol"] == "BTC/USD"
    assert order["asset_class"] == "crypto"

    positions = trading_client.get_all_positions()
    assert [p.symbol for p in positions] == ["BTCUSD"]
    assert positions[0].asset_class == AssetClass.CRYPTO
    # The 25 bps fee is paid in the coin: 0.25 bought, 0.000625001 of it kept as the fee.
    assert trading_client.get_open_position("BTCUSD").qty == "0.249374999"
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
    paper_broker.set_fidelity(fill_delay_s=0.5)  # time to look while in flight, even when busy
    half = trading_client.close_position("MSFT", ClosePositionRequest(percentage="50"))
    assert half.side == "sell"
    assert half.qty == "3"
    assert (half.status, half.filled_qty) == (OrderStatus.PENDING_NEW, "0")
    assert trading_client.get_open_position("MSFT").qty == "6"  # not sold yet
    assert paper_broker.settle(timeout=5)
    assert trading_client.get_order_by_id(half.id).status == OrderStatus.FILLED
    assert trading_client.get_open_position("MSFT").qty == "3"

    rest = trading_client.close_position("MSFT")
    assert (rest.status, rest.qty, rest.filled_qty) == (OrderStatus.PENDING_NEW, "3", "0")
    assert paper_broker.settle(timeout=5)
    assert trading_client.get_order_by_id(rest.id).status == OrderStatus.FILLED
    assert trading_client.get_all_positions() == []


def test_close_all_positions(trading_client: TradingClient, paper_broker: PaperBroker) -> None:
    paper_broker.seed_position("AAPL", 2)
    paper_broker.seed_position("TSLA", -1)
    paper_broker.set_fidelity(fill_delay_s=0.5)  # time to look while in flight, even when busy
    results = trading_client.close_all_positions(cancel_orders=True)
    assert sorted(r.symbol for r in results) == ["AAPL", "TSLA"]
    assert {r.status for r in results} == {200}
    assert {r.body.status for r in results} == {OrderStatus.PENDING_NEW}  # type: ignore[union-attr]
    assert len(trading_client.get_all_positions()) == 2  # the closing orders are in flight
    assert paper_broker.settle(timeout=5)
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
    paper_broker.set_fidelity(fill_delay_s=0.5)  # time to look while in flight, even when busy
    before = raw.get("/v2/account").json()
    start = Decimal(before["cash"])
    placed = raw.post("/v2/orders", json=market("AAPL", 10)).json()
    assert_in_flight(placed)
    # In flight: no money moved yet, but the open buy holds 1900 of buying power.
    pending = raw.get("/v2/account").json()
    assert Decimal(pending["cash"]) == start
    assert Decimal(pending["long_market_value"]) == 0
    assert Decimal(pending["buying_power"]) == Decimal(before["buying_power"]) - 1900
    assert paper_broker.settle(timeout=5)
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


def test_instant_fills_answer_the_outcome_itself() -> None:
    """``fill_delay_s=0`` (the lenient option, the rest of the profile kept): the order is matched
    while the request is answered, so the answer already says filled, canceled or resting."""
    with PaperBroker(default_assets=True, fill_delay_s=0) as broker:
        raw = Raw(broker.base_url)
        try:
            bought = raw.post("/v2/orders", json=market("AAPL", 10)).json()
            assert (bought["status"], bought["filled_qty"]) == ("filled", "10")
            assert (bought["filled_avg_price"], bought["filled_at"] is not None) == ("190", True)
            assert raw.get("/v2/positions/AAPL").json()["qty"] == "10"
            marketable = raw.post("/v2/orders", json=_limit("MSFT", 1, "500")).json()
            assert (marketable["status"], marketable["filled_avg_price"]) == ("filled", "420")
            ioc = raw.post("/v2/orders", json=_limit("TSLA", 1, "100", tif="ioc")).json()
            assert ioc["status"] == "canceled" and ioc["canceled_at"] is not None
            resting = raw.post("/v2/orders", json=_limit("SPY", 1, "100")).json()
            assert (resting["status"], resting["filled_qty"]) == ("new", "0")
            assert broker.pending_count() == 0
        finally:
            raw.close()
