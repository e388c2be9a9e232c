"""The paper broker serves several accounts at once (docs/design.md section 16): each API key
opens its own account, with its own book (positions, orders, cash), its own rate bucket, its own
trade_updates subscribers and its own faults; the market (assets, prices, market data) is one.
Everything goes through alpaca-py's real clients, one per key pair."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from brokerops.sim import FaultConfig, PaperBroker
from brokerops.sim.__main__ import broker_from_args
from tests.waiting import wait_for

from .helpers import AUTH, KEY_ID, SECRET
from .stream_helpers import AUTHORIZED, AlpacaStream, authenticate, connect_stream, message

DESK_KEY, DESK_SECRET = "desk-key", "desk-secret"
UNAUTHORIZED_401 = Path(__file__).parents[1] / "alpaca" / "corpus" / "paper-api-log_error_401.json"


def _client(broker: PaperBroker, key: str, secret: str) -> TradingClient:
    client = TradingClient(key, secret, paper=True, url_override=broker.base_url)
    client._retry = 0
    return client


def _buy(client: TradingClient, symbol: str, qty: int, client_order_id: str | None = None):
    return client.submit_order(
        MarketOrderRequest(
            symbol=symbol,
            qty=qty,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            client_order_id=client_order_id,
        )
    )


@pytest.fixture
def desk(paper_broker: PaperBroker):
    """A second account on the running broker (account one keeps test-key/test-secret)."""
    return paper_broker.add_account(DESK_KEY, DESK_SECRET)


@pytest.fixture
def one(paper_broker: PaperBroker) -> TradingClient:
    return _client(paper_broker, KEY_ID, SECRET)


@pytest.fixture
def two(paper_broker: PaperBroker, desk) -> TradingClient:
    return _client(paper_broker, DESK_KEY, DESK_SECRET)


def _symbols(client: TradingClient) -> dict[str, str]:
    return {p.symbol: p.qty for p in client.get_all_positions()}


def test_each_key_sees_its_own_positions_orders_and_cash(
    paper_broker: PaperBroker, desk, one: TradingClient, two: TradingClient
) -> None:
    paper_broker.seed_position("AAPL", 10)  # the broker's own methods address account one
    desk.seed_position("MSFT", 3, "400")
    desk.set_cash(5000)
    assert _symbols(one) == {"AAPL": "10"}
    assert _symbols(two) == {"MSFT": "3"}
    assert Decimal(two.get_account().cash) == 5000
    assert Decimal(one.get_account().cash) == 1_000_000

    placed = _buy(two, "TSLA", 2)
    assert desk.settle() and paper_broker.settle()
    assert two.get_order_by_id(placed.id).status == "filled"
    assert _symbols(two) == {"MSFT": "3", "TSLA": "2"}
    assert _symbols(one) == {"AAPL": "10"}  # nothing moved in account one
    assert Decimal(two.get_account().cash) == 5000 - 2 * 250
    assert Decimal(one.get_account().cash) == 1_000_000
    assert [o["id"] for o in desk.orders()] == [str(placed.id)]
    assert paper_broker.orders() == []
    assert desk.position("TSLA")["qty"] == "2" and paper_broker.position("TSLA") is None


def test_an_order_placed_with_one_key_is_invisible_to_the_other(
    paper_broker: PaperBroker, desk, one: TradingClient, two: TradingClient
) -> None:
    resting = LimitOrderRequest(
        symbol="AAPL",
        qty=1,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.GTC,
        limit_price=100,
        client_order_id="shared-id",
    )
    placed = one.submit_order(resting)
    assert [o.id for o in one.get_orders()] == [placed.id]
    assert two.get_orders() == []
    for look in (
        lambda: two.get_order_by_id(placed.id),
        lambda: two.get_order_by_client_id("shared-id"),
        lambda: two.cancel_order_by_id(placed.id),
    ):
        with pytest.raises(APIError) as caught:
            look()
        assert caught.value.status_code == 404
    assert two.cancel_orders() == []  # cancels all of its own: none
    assert one.get_order_by_id(placed.id).status in ("pending_new", "new")
    # client_order_ids are unique per account, as at Alpaca: the other account may reuse one.
    mine = two.submit_order(resting)
    assert mine.id != placed.id and mine.client_order_id == "shared-id"
    assert [o["id"] for o in desk.orders()] == [str(mine.id)]


def test_a_fill_appears_on_its_own_account_s_stream_only(
    paper_broker: PaperBroker, desk, one: TradingClient, two: TradingClient
) -> None:
    first = AlpacaStream(paper_broker).start()
    second = AlpacaStream(paper_broker, DESK_KEY, DESK_SECRET).start()
    try:
        assert paper_broker.wait_for_stream_listeners(2)
        assert desk.stream_listeners() == 1
        a_order = _buy(one, "AAPL", 1)
        assert {u.order.id for u in first.until("fill")} == {a_order.id}
        b_order = _buy(two, "MSFT", 1)
        # Had account one's events reached the desk's stream, they would come before these.
        assert {u.order.id for u in second.until("fill")} == {b_order.id}
        assert first.updates.empty()  # and the desk's never reached account one's
    finally:
        first.stop()
        second.stop()


def test_a_429_on_one_key_does_not_limit_the_other(
    paper_broker: PaperBroker, desk, one: TradingClient, two: TradingClient
) -> None:
    paper_broker.set_rate_limit(2)  # every key's budget, as Alpaca's is per account
    one.get_account()
    one.get_account()
    with pytest.raises(APIError) as caught:
        one.get_account()
    assert caught.value.status_code == 429
    assert two.get_account().status == "ACTIVE"
    assert two.get_all_positions() == []


def test_an_account_may_have_a_budget_of_its_own(paper_broker: PaperBroker) -> None:
    small = paper_broker.add_account("small-key", "small-secret", rate_limit_per_min=1)
    client = _client(paper_broker, "small-key", "small-secret")
    client.get_account()
    with pytest.raises(APIError) as caught:
        client.get_account()
    assert caught.value.status_code == 429
    headers = {"APCA-API-KEY-ID": "small-key", "APCA-API-SECRET-KEY": "small-secret"}
    answer = requests.get(paper_broker.base_url + "/v2/clock", headers=headers, timeout=5)
    assert answer.headers["X-RateLimit-Limit"] == "1"
    default = requests.get(paper_broker.base_url + "/v2/clock", headers=AUTH, timeout=5)
    assert default.headers["X-RateLimit-Limit"] == "200"  # account one keeps the broker's
    small.set_rate_limit(None)  # back to the broker's budget (a new window)
    assert client.get_account().status == "ACTIVE"


def test_unknown_keys_get_alpaca_s_401(paper_broker: PaperBroker, desk) -> None:
    alpaca_body = json.loads(UNAUTHORIZED_401.read_text())["body"]
    url = paper_broker.base_url + "/v2/account"
    for key, secret in (("nobody", "nothing"), (DESK_KEY, SECRET), (KEY_ID, DESK_SECRET)):
        headers = {"APCA-API-KEY-ID": key, "APCA-API-SECRET-KEY": secret}
        answer = requests.get(url, headers=headers, timeout=5)
        assert (answer.status_code, answer.json()) == (401, alpaca_body)
    with pytest.raises(APIError) as caught:
        _client(paper_broker, "nobody", "nothing").get_all_positions()
    assert caught.value.status_code == 401
    with connect_stream(paper_broker) as ws:
        assert authenticate(ws, DESK_KEY, SECRET)["data"]["status"] == "unauthorized"


def test_the_default_account_is_unchanged_beside_others(paper_broker: PaperBroker, desk) -> None:
    """test-key/test-secret are account one; the broker's handle keeps addressing it."""
    assert paper_broker.authenticate(KEY_ID, SECRET)
    assert paper_broker.account_for(KEY_ID).positions() == paper_broker.positions() == []
    paper_broker.seed_order("AAPL", 1, client_order_id="one-only")
    assert paper_broker.order("one-only") is not None and desk.order("one-only") is None
    assert paper_broker.account_for(DESK_KEY).order("one-only") is None
    with pytest.raises(KeyError):
        paper_broker.account_for("nobody")


def test_two_accounts_may_not_share_a_key(paper_broker: PaperBroker, desk) -> None:
    """One stream connection per account would fight over a shared key: refused."""
    with pytest.raises(ValueError, match="desk-key"):
        paper_broker.add_account(DESK_KEY, "another-secret")
    with pytest.raises(ValueError, match="test-key"):
        paper_broker.add_account(KEY_ID, SECRET)
    with pytest.raises(ValueError, match="desk-key"):
        paper_broker.add_key(DESK_KEY, DESK_SECRET)
    desk.add_key("desk-key-2", "desk-secret-2")  # another key of the same account
    second = _client(paper_broker, "desk-key-2", "desk-secret-2")
    desk.seed_position("AAPL", 4)
    assert _symbols(second) == {"AAPL": "4"}


def test_the_market_is_one_for_every_account(
    paper_broker: PaperBroker, desk, one: TradingClient, two: TradingClient
) -> None:
    paper_broker.set_fidelity(fill_delay_s=0)
    for client in (one, two):
        client.submit_order(
            LimitOrderRequest(
                symbol="AAPL",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                limit_price=180,
            )
        )
    desk.seed_position("MSFT", 2, "400")
    filled = paper_broker.set_price("AAPL", 179)  # crosses both accounts' limits
    assert len(filled) == 2
    assert _symbols(one) == {"AAPL": "1"}
    assert _symbols(two) == {"MSFT": "2", "AAPL": "1"}
    paper_broker.set_price("MSFT", 410)
    assert Decimal(desk.position("MSFT")["market_value"]) == 820
    paper_broker.add_asset("NEWCO", price=Decimal(5))
    assert two.get_asset("NEWCO").symbol == one.get_asset("NEWCO").symbol == "NEWCO"
    paper_broker.add_asset("MSFT", price=Decimal(500))  # replaced: the desk's position follows
    assert Decimal(desk.position("MSFT")["market_value"]) == 1000
    assert two.get_open_position("MSFT").current_price == "500"


def test_faults_are_per_account(paper_broker: PaperBroker, desk, one, two) -> None:
    """One account's broker down (every request a 5xx) leaves the other's answering."""
    desk.set_faults(FaultConfig(error_5xx_rate=1.0))
    for _ in range(3):
        with pytest.raises(APIError) as caught:
            two.get_all_positions()
        assert caught.value.status_code >= 500
        assert one.get_all_positions() == []
    assert len(desk.fault_log()) == 3 and paper_broker.fault_log() == []
    desk.clear_faults()
    paper_broker.inject_next("*", "5xx")
    assert two.get_all_positions() == []
    with pytest.raises(APIError):
        one.get_all_positions()


def test_stream_faults_are_per_account(paper_broker: PaperBroker, desk, one, two) -> None:
    first = AlpacaStream(paper_broker).start()
    second = AlpacaStream(paper_broker, DESK_KEY, DESK_SECRET).start()
    try:
        assert paper_broker.wait_for_stream_listeners(2)
        desk.stream_inject_next("duplicate")
        a_order = _buy(one, "AAPL", 1)
        assert [u.event for u in first.until("fill")] == ["pending_new", "new", "fill"]
        assert desk.stream_fault_log() == [] and paper_broker.stream_fault_log() == []
        b_order = _buy(two, "MSFT", 1)
        twice = [second.next(), second.next()]  # the desk's first event, sent twice
        assert [(u.event, u.order.id) for u in twice] == [("pending_new", b_order.id)] * 2
        assert [f.kind for f in desk.stream_fault_log()] == ["duplicate"]
        assert a_order.id != b_order.id
    finally:
        first.stop()
        second.stop()


def test_an_added_account_fills_delayed_orders_on_its_own(paper_broker: PaperBroker, desk) -> None:
    """Under Alpaca's fill delay the added account's orders fill without anyone settling them."""
    two = _client(paper_broker, DESK_KEY, DESK_SECRET)
    placed = _buy(two, "AAPL", 1)
    assert placed.status == "pending_new"
    wait_for(lambda: two.get_order_by_id(placed.id).status == "filled", what="the desk's fill")


def test_the_stream_refuses_a_second_connection_per_key_not_per_broker(
    paper_broker: PaperBroker, desk
) -> None:
    with connect_stream(paper_broker) as a, connect_stream(paper_broker) as b:
        assert authenticate(a) == AUTHORIZED
        assert authenticate(b, DESK_KEY, DESK_SECRET) == AUTHORIZED
        assert paper_broker.stream_keys() == [DESK_KEY, KEY_ID]
        assert desk.stream_keys() == [DESK_KEY]


def test_dropping_one_account_s_stream_leaves_the_other(paper_broker: PaperBroker, desk) -> None:
    with connect_stream(paper_broker) as a, connect_stream(paper_broker) as b:
        assert authenticate(a) == AUTHORIZED
        assert authenticate(b, DESK_KEY, DESK_SECRET) == AUTHORIZED
        assert desk.stream_drop() == 1
        wait_for(lambda: paper_broker.stream_keys() == [KEY_ID], what="the desk's slot freed")
        a.send(json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}}))
        assert message(a)["stream"] == "listening"


def test_the_command_line_serves_several_accounts() -> None:
    broker, _ = broker_from_args(
        ["--port", "0", "--account", "desk-key:desk-secret", "--account", "client=client-key:s:=2"]
    )
    assert [a.name for a in broker.accounts()] == ["default", "desk-key", "client"]
    with broker:
        broker.account_for("client-key").seed_position("AAPL", 7)
        client = _client(broker, "client-key", "s:=2")  # a secret may hold ":" and "="
        assert _symbols(client) == {"AAPL": "7"}
        assert _client(broker, DESK_KEY, DESK_SECRET).get_all_positions() == []
        assert _client(broker, KEY_ID, SECRET).get_all_positions() == []
    for bad in (["no-secret"], ["=key:secret"], ["test-key:other"], ["a:b", "a:c"]):
        with pytest.raises(SystemExit):
            broker_from_args([arg for spec in bad for arg in ("--account", spec)])


@pytest.fixture
def stopped_broker() -> Iterator[PaperBroker]:
    broker = PaperBroker(default_assets=True)
    yield broker
    broker.stop()


def test_an_account_added_before_start_serves_after_start(stopped_broker: PaperBroker) -> None:
    later = stopped_broker.add_account("later-key", "later-secret", cash=Decimal(1234))
    later.seed_position("SPY", 1)
    stopped_broker.start()
    client = _client(stopped_broker, "later-key", "later-secret")
    assert Decimal(client.get_account().cash) == 1234
    placed = _buy(client, "AAPL", 1)
    wait_for(lambda: client.get_order_by_id(placed.id).status == "filled", what="the fill")
    assert _symbols(client) == {"SPY": "1", "AAPL": "1"}
