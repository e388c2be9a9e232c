"""The paper broker's account activities and corporate actions (docs/design.md section 18),
read through the real alpaca-py client and the gateway on loopback."""

from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from brokerops.alpaca import AlpacaGateway
from brokerops.alpaca.parsing import parse_activities
from brokerops.sim import PaperBroker


@pytest.fixture
def paper():
    with PaperBroker(default_assets=True, fill_delay_s=0, rate_limit_per_min=None) as broker:
        yield broker


@pytest.fixture
def client(paper):
    return TradingClient(
        "test-key", "test-secret", paper=True, url_override=paper.base_url, raw_data=True
    )


@pytest.fixture
def gateway(paper):
    with AlpacaGateway(api_key="test-key", secret_key="test-secret", base_url=paper.base_url) as g:
        yield g


def buy(client, symbol, qty, **fields):
    body = {"symbol": symbol, "qty": str(qty), "side": "buy", "type": "market"}
    body["time_in_force"] = "gtc" if "/" in symbol else "day"
    return client.post("/orders", {**body, **fields})


def test_every_fill_is_a_fill_activity_with_alpacas_shape(paper, client):
    order = buy(client, "AAPL", 3)
    (row,) = client.get("/account/activities", {"activity_types": "FILL"})
    assert row["order_id"] == order["id"] and row["type"] == "fill"
    assert (row["qty"], row["side"], row["symbol"], row["cum_qty"]) == ("3", "buy", "AAPL", "3")
    assert row["id"].split("::")[0].isdigit() and len(row["id"].split("::")[0]) == 17
    (parsed,) = parse_activities([row])
    assert parsed.family == "FILL" and parsed.time is not None


def test_a_crypto_buy_books_its_coin_fee_at_the_end_of_the_day(paper, client):
    buy(client, "BTC/USD", "0.01")
    assert client.get("/account/activities/CFEE", {}) == []
    posted = requests.post(
        paper.base_url + "/_sim/end_of_day",
        headers={"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"},
        timeout=5,
    ).json()
    (fee,) = client.get("/account/activities/CFEE", {})
    assert posted == [fee] and fee["symbol"] == "BTCUSD" and Decimal(fee["qty"]) < 0
    held = Decimal(paper.position("BTCUSD")["qty"])
    assert held - Decimal(fee["qty"]) == Decimal("0.01")  # the fee explains the holding exactly
    paper.set_crypto_fees_at_once(True)
    buy(client, "ETH/USD", "0.1")
    assert len(client.get("/account/activities/CFEE", {})) == 2


def test_paging_is_alpacas(paper, client):
    for _ in range(5):
        buy(client, "AAPL", 1)
    rows = paper.activities()
    ids = [row["id"] for row in rows]
    assert ids == sorted(ids)
    newest_first = client.get("/account/activities", {"page_size": "2"})
    assert [r["id"] for r in newest_first] == ids[::-1][:2]
    after = client.get("/account/activities", {"direction": "asc", "page_token": ids[1]})
    assert [r["id"] for r in after] == ids[2:]
    before = client.get("/account/activities", {"direction": "desc", "page_token": ids[3]})
    assert [r["id"] for r in before] == ids[:3][::-1]
    assert len(client.get("/account/activities", {"page_size": "500"})) == 5
    with pytest.raises(APIError, match="invalid activity type: FFFFF"):
        client.get("/account/activities/FFFFF", {})


def test_the_gateway_reads_the_ledger_incrementally(paper, client, gateway):
    for _ in range(3):
        buy(client, "AAPL", 1)
    first = gateway.read_activities(page_size=2)
    assert (len(first.activities), first.pages, first.complete) == (3, 2, True)
    paper.corporate_action("cash_dividend", symbol="AAPL", rate="0.25")
    more = gateway.read_activities(after_id=first.last_id)
    (div,) = more.activities
    assert (div.family, div.sub_type, div.net_amount) == ("DIV", "CDIV", Decimal("0.75"))


def test_a_split_moves_positions_and_resting_gtc_orders_not_bracket_legs(paper, gateway):
    paper.set_price("AAPL", 200)
    paper.seed_position("AAPL", 10, "180")
    gtc = paper.seed_order("AAPL", 4, "sell", type="limit", limit_price="300", time_in_force="gtc")
    day = paper.seed_order("AAPL", 2, "sell", type="limit", limit_price="300")
    leg = paper.seed_order("AAPL", 4, "sell", type="limit", limit_price="300", time_in_force="gtc")
    paper.set_order_fields(leg["id"], order_class="bracket")  # a bracket's leg
    paper.corporate_action("split", symbol="AAPL", new_rate=4, old_rate=1)
    position = paper.position("AAPL")
    assert (position["qty"], position["avg_entry_price"], paper.price("AAPL")) == (
        "40",
        "45",
        Decimal(50),
    )
    moved = paper.order(gtc["id"])
    assert (moved["qty"], moved["limit_price"]) == ("16", "75")
    assert paper.order(day["id"])["qty"] == "2" and paper.order(leg["id"])["qty"] == "4"
    remove, add = gateway.read_activities().activities
    assert [remove.leg, add.leg] == ["REMOVE", "ADD"] and remove.sub_type == "FSPLIT"
    assert (remove.qty, add.qty) == (Decimal(-10), Decimal(40))
    assert add.qty / -remove.qty == 4  # the ratio a reconciler reads from the pair


def test_a_reverse_split_keeps_fractions_exactly(paper, gateway):
    paper.seed_position("TSLA", 33, "7")
    paper.corporate_action("split", symbol="TSLA", new_rate=1, old_rate=20)
    assert paper.position("TSLA")["qty"] == "1.65"
    remove, add = gateway.read_activities().activities
    assert remove.sub_type == "RSPLIT" and add.qty == Decimal("1.65")


def test_merger_name_change_and_spin_off_move_holdings(paper, client, gateway):
    paper.seed_position("AAPL", 10, "100")
    paper.seed_position("MSFT", 3, "100")
    resting = paper.seed_order(
        "MSFT", 1, "sell", type="limit", limit_price="999", time_in_force="gtc"
    )
    paper.corporate_action("merger", symbol="AAPL", new_symbol="NEWCO", rate="0.5", cash_rate="2")
    paper.corporate_action("name_change", symbol="MSFT", new_symbol="MSFX")
    paper.corporate_action("spin_off", symbol="MSFX", new_symbol="SPUN", rate="0.1", price="5")
    held = {p["symbol"]: p["qty"] for p in paper.positions()}
    assert held == {"NEWCO": "5", "MSFX": "3", "SPUN": "0.3"}
    assert paper.order(resting["id"])["status"] == "canceled"
    rows = gateway.read_activities().activities
    assert [(a.family, a.leg, a.symbol, a.qty) for a in rows] == [
        ("MA", "REMOVE", "AAPL", Decimal(-10)),
        ("MA", "ADD", "NEWCO", Decimal(5)),
        ("NC", "REMOVE", "MSFT", Decimal(-3)),
        ("NC", "ADD", "MSFX", Decimal(3)),
        ("SPIN", "ADD", "SPUN", Decimal("0.3")),
    ]
    assert rows[1].net_amount == Decimal(20)
    assert client.get_asset("AAPL")["status"] == "inactive"


def test_the_control_endpoint_applies_and_refuses(paper):
    paper.seed_position("AAPL", 2)
    headers = {"APCA-API-KEY-ID": "test-key", "APCA-API-SECRET-KEY": "test-secret"}
    url = paper.base_url + "/_sim/corporate_actions"
    answer = requests.post(
        url, json={"type": "split", "symbol": "AAPL", "new_rate": 2}, headers=headers, timeout=5
    )
    assert answer.status_code == 200 and [r["qty"] for r in answer.json()] == ["-2", "4"]
    misspelt = {"type": "split", "symbol": "AAPL", "new_rate": 2, "old_rte": 3}
    for bad in (
        {"type": "split", "symbol": "AAPL"},
        {"type": "explode", "symbol": "AAPL"},
        [1],
        misspelt,
    ):
        refused = requests.post(url, json=bad, headers=headers, timeout=5)
        assert refused.status_code == 422, bad
    refused = requests.post(url, json=misspelt, headers=headers, timeout=5)
    assert "split takes no 'old_rte'" in refused.text
    assert requests.post(url, json={}, timeout=5).status_code == 401
    assert paper.position("AAPL")["qty"] == "4"


def test_a_leg_held_back_is_not_served_until_the_end_of_the_day(paper, gateway):
    paper.seed_position("AAPL", 10)
    paper.corporate_action("split", symbol="AAPL", new_rate=4)
    remove, add = paper.activities()
    paper.hold_activity(add["id"])
    read = gateway.read_activities()
    assert [a.id for a in read.activities] == [remove["id"]]  # one side posted yet
    (posted,) = paper.post_crypto_fees()
    assert posted["id"] != add["id"] and posted["qty"] == add["qty"]
    more = gateway.read_activities(after_id=read.last_id)
    assert [(a.family, a.leg) for a in more.activities] == [("SPLIT", "ADD")]
    with pytest.raises(KeyError, match="no posted activity"):
        paper.hold_activity("never-posted")
