"""Market-data latest trades on the broker's port: Alpaca's shapes, numbers, absent symbols."""

from __future__ import annotations

import requests
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import CryptoLatestTradeRequest, StockLatestTradeRequest

from brokerops.sim import PaperBroker
from brokerops.sim.model import parse_time

from .helpers import KEY_ID, SECRET, Raw

STOCKS = "/v2/stocks/trades/latest"
CRYPTO = "/v1beta3/crypto/us/latest/trades"


def test_stock_latest_trades_shape(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_price("AAPL", "187.12")
    response = raw.get(STOCKS, params={"symbols": "AAPL,MSFT,NOPE,BTC/USD", "feed": "iex"})
    assert response.status_code == 200
    trades = response.json()["trades"]
    assert sorted(trades) == ["AAPL", "MSFT"]  # unknown and crypto symbols are simply absent
    aapl = trades["AAPL"]
    assert set(aapl) == {"t", "x", "p", "s", "c", "i", "z"}
    assert aapl["p"] == 187.12 and isinstance(aapl["p"], float)  # a JSON number, not a string
    assert (aapl["s"], aapl["x"], aapl["c"], aapl["z"]) == (100, "V", ["@"], "C")
    assert isinstance(aapl["i"], int)
    assert parse_time(aapl["t"]) > 0 and aapl["t"].endswith("Z")
    assert trades["MSFT"]["p"] == 420


def test_sip_feed_reports_the_listing_exchange(raw: Raw) -> None:
    trades = raw.get(STOCKS, params={"symbols": "AAPL,SPY,NOSHRT"}).json()["trades"]
    assert {s: (t["x"], t["z"]) for s, t in trades.items()} == {
        "AAPL": ("Q", "C"),
        "SPY": ("P", "B"),
        "NOSHRT": ("N", "A"),
    }


def test_crypto_latest_trades_shape(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_price("BTC/USD", "65000.1")
    response = raw.get(CRYPTO, params={"symbols": "BTC/USD,ETH/USD,AAPL,DOGE/USD"})
    assert response.status_code == 200
    trades = response.json()["trades"]
    assert sorted(trades) == ["BTC/USD", "ETH/USD"]
    btc = trades["BTC/USD"]
    assert set(btc) == {"t", "p", "s", "tks", "i"}
    assert (btc["p"], btc["s"], btc["tks"]) == (65000.1, 0.01, "B")


def test_a_new_price_is_a_new_trade(raw: Raw, paper_broker: PaperBroker) -> None:
    before = raw.get(STOCKS, params={"symbols": "TSLA"}).json()["trades"]["TSLA"]
    paper_broker.set_price("TSLA", "251.5")
    after = raw.get(STOCKS, params={"symbols": "TSLA"}).json()["trades"]["TSLA"]
    assert after["p"] == 251.5
    assert after["i"] > before["i"]
    assert parse_time(after["t"]) > parse_time(before["t"])


def test_market_data_can_be_removed_and_made_stale(raw: Raw, paper_broker: PaperBroker) -> None:
    assert paper_broker.set_market_data("AAPL", None) is None
    assert raw.get(STOCKS, params={"symbols": "AAPL"}).json() == {"trades": {}}
    assert paper_broker.price("AAPL") == 190  # fills still have a price

    stale = paper_broker.set_market_data("AAPL", "150", at="2026-01-02T15:00:00Z")
    assert stale == raw.get(STOCKS, params={"symbols": "AAPL"}).json()["trades"]["AAPL"]
    assert (stale["p"], stale["t"]) == (150, "2026-01-02T15:00:00Z")  # type: ignore[index]
    assert paper_broker.price("AAPL") == 190

    paper_broker.set_market_data("BTC/USD", None)
    assert raw.get(CRYPTO, params={"symbols": "BTC/USD"}).json() == {"trades": {}}
    paper_broker.set_price("BTC/USD", "61000")  # a trade again
    assert raw.get(CRYPTO, params={"symbols": "BTC/USD"}).json()["trades"]["BTC/USD"]["p"] == 61000


def test_bad_queries_are_400(raw: Raw) -> None:
    missing = raw.get(STOCKS)
    assert missing.status_code == 400
    assert missing.json() == {"code": 40010001, "message": "missing symbols"}
    assert raw.get(STOCKS, params={"symbols": "AAPL", "feed": "nasdaq"}).status_code == 400
    assert raw.get(CRYPTO, params={"symbols": ""}).status_code == 400


def test_authenticated_counted_and_rate_limited(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    response = strict_raw.get(STOCKS, params={"symbols": "AAPL"})
    assert response.headers["X-RateLimit-Limit"] == "200"
    assert response.headers["X-RateLimit-Remaining"] == "199"
    strict_raw.get(CRYPTO, params={"symbols": "BTC/USD"})
    assert strict_broker.counters() == {
        ("GET", "/v2/stocks/trades/latest"): 1,
        ("GET", "/v1beta3/crypto/{loc}/latest/trades"): 1,
    }
    anonymous = requests.get(strict_broker.base_url + STOCKS, params={"symbols": "AAPL"}, timeout=5)
    assert anonymous.status_code == 401


def test_alpaca_py_data_clients_read_them(paper_broker: PaperBroker) -> None:
    paper_broker.set_price("AAPL", "187.12")
    stocks = StockHistoricalDataClient(KEY_ID, SECRET, url_override=paper_broker.base_url)
    trades = stocks.get_stock_latest_trade(StockLatestTradeRequest(symbol_or_symbols=["AAPL"]))
    assert trades["AAPL"].price == 187.12
    assert trades["AAPL"].size == 100
    assert trades["AAPL"].timestamp.tzinfo is not None

    raw_stocks = StockHistoricalDataClient(
        KEY_ID, SECRET, raw_data=True, url_override=paper_broker.base_url
    )
    raw_trades = raw_stocks.get_stock_latest_trade(
        StockLatestTradeRequest(symbol_or_symbols=["AAPL", "MSFT"], feed="iex")
    )
    assert raw_trades["MSFT"]["p"] == 420

    crypto = CryptoHistoricalDataClient(KEY_ID, SECRET, url_override=paper_broker.base_url)
    latest = crypto.get_crypto_latest_trade(CryptoLatestTradeRequest(symbol_or_symbols="BTC/USD"))
    assert latest["BTC/USD"].price == 60000
    assert paper_broker.counters()[("GET", "/v1beta3/crypto/{loc}/latest/trades")] == 1
