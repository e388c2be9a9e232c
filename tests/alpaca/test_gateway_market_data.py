"""Latest trade prices for the risk check, read in bulk from the market-data API over real HTTP:
a scripted local server serving Alpaca's exact paths and shapes (the paper broker gets these
endpoints separately), and hostile variants of it."""

from decimal import Decimal

import pytest

from brokerops.alpaca import (
    NO_RETRY,
    BrokerMalformedResponse,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
)

STOCKS = "/v2/stocks/trades/latest"
CRYPTO = "/v1beta3/crypto/us/latest/trades"


def _trade(price):
    return {"t": "2024-05-01T14:30:00.123456789Z", "p": price, "s": 100, "x": "V", "i": 1}


def _serve(prices):
    """A handler answering any ``symbols=`` query from ``prices`` (raw JSON text per symbol)."""

    def reply(query):
        wanted = query["symbols"].split(",")
        parts = [
            f'"{s}": {{"t": "2024-05-01T14:30:00Z", "p": {prices[s]}, "s": 1}}'
            for s in wanted
            if s in prices
        ]
        return (200, '{"trades": {' + ", ".join(parts) + "}}", {"Content-Type": "application/json"})

    return reply


@pytest.fixture
def data_gateway(make_gateway, scripted, broker):
    def make(**overrides):
        overrides.setdefault("data_url", scripted.url)
        return make_gateway(**overrides)

    return make


def test_equities_and_crypto_in_bulk_keyed_by_symbol_key(data_gateway, scripted, broker):
    gateway = data_gateway()
    scripted.answer("GET", STOCKS, _serve({"AAPL": "187.12", "MSFT": "420.005"}))
    scripted.answer("GET", CRYPTO, _serve({"BTC/USD": "64000.123456789", "ETH/USD": "3000"}))
    prices = gateway.latest_trade_prices(["aapl", "MSFT", "BTC/USD", "eth/usd", "NOPE"])
    assert prices == {
        "AAPL": Decimal("187.12"),
        "MSFT": Decimal("420.005"),
        "BTCUSD": Decimal("64000.123456789"),
        "ETHUSD": Decimal("3000"),
    }
    assert all(isinstance(p, Decimal) for p in prices.values())
    assert scripted.calls("GET", STOCKS) == [{"symbols": "AAPL,MSFT,NOPE"}]
    assert scripted.calls("GET", CRYPTO) == [{"symbols": "BTC/USD,ETH/USD"}]
    # Plus the (cached) asset list, to tell a crypto pair written without "/" from an equity.
    assert broker.counters() == {("GET", "/v2/assets"): 1}
    assert gateway.api_calls == 3
    gateway.latest_trade_prices(["AAPL"])
    assert gateway.api_calls == 4 and broker.counters() == {("GET", "/v2/assets"): 1}


def test_prices_are_exact_from_the_raw_json_text(data_gateway, scripted):
    gateway = data_gateway()
    # 0.1 and 187.12 are not exact as floats; the raw text is.
    scripted.answer("GET", STOCKS, _serve({"A": "0.1", "B": "187.12", "C": "1.10"}))
    assert gateway.latest_trade_prices(["A", "B", "C"]) == {
        "A": Decimal("0.1"),
        "B": Decimal("187.12"),
        "C": Decimal("1.10"),
    }
    assert str(gateway.latest_trade_prices(["A"])["A"]) == "0.1"


def test_same_auth_headers_and_call_counting(data_gateway, scripted):
    gateway = data_gateway(api_key="test-key", secret_key="test-secret")
    scripted.answer("GET", STOCKS, (200, {"trades": {"AAPL": _trade(1)}}))
    gateway.list_assets()
    with gateway.count_calls() as calls:
        gateway.latest_trade_prices(["AAPL"])
    headers = scripted.hits[-1][3]
    assert headers["APCA-API-KEY-ID"] == "test-key"
    assert headers["APCA-API-SECRET-KEY"] == "test-secret"
    assert calls.total == 1 and calls.by_method == {"GET": 1}


def test_symbols_are_read_in_chunks_of_100(data_gateway, scripted):
    gateway = data_gateway()
    symbols = [f"S{i:03d}" for i in range(250)]
    scripted.answer("GET", STOCKS, _serve({s: "1.5" for s in symbols}))
    prices = gateway.latest_trade_prices([*symbols, "s000", " S001 "])  # duplicates once
    assert len(prices) == 250 and prices["S249"] == Decimal("1.5")
    sizes = [len(q["symbols"].split(",")) for q in scripted.calls("GET", STOCKS)]
    assert sizes == [100, 100, 50]
    assert scripted.calls("GET", CRYPTO) == []


def test_no_symbols_no_call(data_gateway, scripted):
    gateway = data_gateway()
    assert gateway.latest_trade_prices([]) == {}
    assert gateway.latest_trade_prices(iter(["", "  "])) == {}
    assert scripted.hits == [] and gateway.api_calls == 0


def test_known_crypto_without_a_slash_goes_to_the_crypto_endpoint(data_gateway, scripted):
    gateway = data_gateway()  # the paper broker's assets: BTC/USD is crypto
    scripted.answer("GET", CRYPTO, _serve({"BTC/USD": "60000"}))
    scripted.answer("GET", STOCKS, _serve({"AAPL": "190"}))
    assert gateway.latest_trade_prices(["BTCUSD", "AAPL"]) == {
        "BTCUSD": Decimal(60000),
        "AAPL": Decimal(190),
    }
    assert scripted.calls("GET", CRYPTO) == [{"symbols": "BTC/USD"}]


def test_an_html_500_is_unavailable_after_bounded_retries(data_gateway, scripted, clock):
    gateway = data_gateway()
    html = (
        "<html><body><h1>500 Internal Server Error</h1>\n" + "<p>x</p>\n" * 500 + "</body></html>"
    )
    scripted.answer("GET", STOCKS, (500, html, {"Content-Type": "text/html"}))
    with pytest.raises(BrokerUnavailable) as info:
        gateway.latest_trade_prices(["AAPL"])
    err = info.value
    assert err.status == 500 and not err.outcome_unknown
    assert "\n" not in str(err) and len(str(err)) <= 200 and STOCKS in str(err)
    assert len(scripted.calls("GET", STOCKS)) == 4 and len(clock.sleeps) == 3


def test_a_transient_failure_is_retried(data_gateway, scripted, clock):
    gateway = data_gateway()
    scripted.answer(
        "GET", STOCKS, (503, {"code": 50310000, "message": "busy"}), _serve({"AAPL": "1"})
    )
    assert gateway.latest_trade_prices(["AAPL"]) == {"AAPL": Decimal(1)}
    assert clock.sleeps == [0.375]


def test_a_429_pauses_and_waits_for_the_reset(data_gateway, scripted, clock):
    gateway = data_gateway(wall_clock=lambda: 1000.0)
    headers = {
        "X-RateLimit-Limit": "200",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "1004",
    }
    scripted.answer(
        "GET",
        STOCKS,
        (429, {"code": 42910000, "message": "too many requests"}, headers),
        _serve({"AAPL": "2"}),
    )
    assert gateway.latest_trade_prices(["AAPL"]) == {"AAPL": Decimal(2)}
    assert clock.sleeps == [4.0]


def test_a_429_that_never_ends_is_rate_limited(data_gateway, scripted):
    gateway = data_gateway(retry_policy=NO_RETRY)
    scripted.answer("GET", STOCKS, (429, {"code": 42910000, "message": "no"}, {"Retry-After": "9"}))
    with pytest.raises(BrokerRateLimited) as info:
        gateway.latest_trade_prices(["AAPL"])
    assert info.value.retry_after_s == 9.0


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ('{"trades": {"AAPL": {"t": "x", "p": 1e308}}}', "trade AAPL: 'p'"),
        ('{"trades": {"AAPL": {"t": "x", "p": 1e999}}}', "trade AAPL: 'p'"),
        ('{"trades": {"AAPL": {"t": "x", "p": "NaN"}}}', "not finite"),
        ('{"trades": {"AAPL": {"t": "x", "p": -5}}}', "positive"),
        ('{"trades": {"AAPL": {"t": "x", "p": 0}}}', "positive"),
        ('{"trades": {"AAPL": {"t": "x"}}}', "missing"),
        ('{"trades": {"AAPL": 187.12}}', "expected an object"),
        ('{"quotes": {}}', "'trades'"),
        ('{"trades": null}', "'trades'"),
        ('{"trades": []}', "'trades'"),
        ("[]", "expected an object"),
        ("<html>maintenance</html>", "not JSON"),
    ],
)
def test_a_hostile_200_is_malformed_and_not_retried(data_gateway, scripted, body, match):
    gateway = data_gateway()
    scripted.answer("GET", STOCKS, (200, body, {"Content-Type": "application/json"}))
    with pytest.raises(BrokerMalformedResponse, match=match) as info:
        gateway.latest_trade_prices(["AAPL"])
    assert not info.value.outcome_unknown and "\n" not in str(info.value)
    assert len(scripted.calls("GET", STOCKS)) == 1


def test_one_bad_chunk_fails_the_whole_read(data_gateway, scripted):
    gateway = data_gateway()
    symbols = [f"S{i:03d}" for i in range(150)]
    prices = {s: "1" for s in symbols}
    prices["S120"] = "1e20"
    scripted.answer("GET", STOCKS, _serve(prices))
    with pytest.raises(BrokerMalformedResponse, match="S120"):
        gateway.latest_trade_prices(symbols)


def test_bad_keys_on_the_data_api_are_auth(data_gateway, scripted):
    gateway = data_gateway()
    scripted.answer("GET", STOCKS, (401, {"message": "unauthorized."}))
    with pytest.raises(BrokerRejected) as info:
        gateway.latest_trade_prices(["AAPL"])
    assert info.value.is_auth_error


def test_a_proxy_404_on_the_data_api_is_unavailable_not_empty(data_gateway, scripted):
    gateway = data_gateway(retry_policy=NO_RETRY)
    scripted.answer("GET", STOCKS, (404, "404 page not found", {"Content-Type": "text/plain"}))
    with pytest.raises(BrokerUnavailable) as info:
        gateway.latest_trade_prices(["AAPL"])
    assert info.value.status == 404


def test_alpacas_json_404_on_the_data_api_is_not_found(data_gateway, scripted):
    from brokerops.alpaca import BrokerNotFound

    gateway = data_gateway(retry_policy=NO_RETRY)
    scripted.answer("GET", CRYPTO, (404, {"code": 40410000, "message": "endpoint not found"}))
    with pytest.raises(BrokerNotFound):
        gateway.latest_trade_prices(["BTC/USD"])


def test_a_redirect_is_not_followed_with_the_keys(data_gateway, scripted):
    gateway = data_gateway(retry_policy=NO_RETRY)
    scripted.answer("GET", STOCKS, (302, b"", {"Location": "http://127.0.0.1:9/steal"}))
    with pytest.raises(BrokerUnavailable, match="302"):
        gateway.latest_trade_prices(["AAPL"])
    assert len(scripted.hits) == 1


def test_the_paper_broker_serves_the_same_paths(broker, make_gateway):
    gateway = make_gateway()  # data_url defaults to the paper broker's own base URL
    prices = gateway.latest_trade_prices(["AAPL", "btc/usd", "ETHUSD", "NOPE"])
    assert prices == {
        "AAPL": broker.price("AAPL"),
        "BTCUSD": broker.price("BTC/USD"),
        "ETHUSD": broker.price("ETH/USD"),
    }
    assert gateway.api_calls == 3  # assets, stocks, crypto


def test_data_connection_refused_names_the_data_host(make_gateway):
    gateway = make_gateway(data_url="http://127.0.0.1:9", retry_policy=NO_RETRY)
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:9"):
        gateway.latest_trade_prices(["AAPL"])


def test_data_url_default_follows_the_trading_endpoint(make_gateway, broker):
    assert make_gateway().data_url == broker.base_url  # an overridden endpoint serves both
    from brokerops.alpaca import AlpacaGateway

    with AlpacaGateway(api_key="k", secret_key="s") as real:
        assert real.data_url == "https://data.alpaca.markets"
    with AlpacaGateway(api_key="k", secret_key="s", data_url="http://x:1/") as custom:
        assert custom.data_url == "http://x:1"


def test_a_price_with_many_digits_is_read_exactly(data_gateway, scripted):
    """A JSON number with more digits than a float holds, or finer than 1e-9: a price, exact
    (docs/design.md section 6)."""
    gateway = data_gateway()
    body = '{"trades": {"SHIB/USD": {"t": "x", "p": 0.0000123456789012345678}}}'
    scripted.answer("GET", CRYPTO, (200, body, {"Content-Type": "application/json"}))
    assert gateway.latest_trade_prices(["SHIB/USD"]) == {
        "SHIBUSD": Decimal("0.0000123456789012345678")
    }
