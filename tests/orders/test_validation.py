"""Order validation rules (pure: no server, no database)."""

from decimal import Decimal as D

import pytest

from brokerops.alpaca.types import Asset
from brokerops.intent.schema import Signal, parse_signal
from orders.client_order_id import MAX_LENGTH, client_order_id_for, parse_client_order_id
from orders.validation import RiskLimits, order_plan


def asset(symbol="AAPL", **kw):
    fields = dict(
        id="a-1",
        symbol=symbol,
        asset_class="us_equity",
        exchange="NASDAQ",
        tradable=True,
        fractionable=True,
        shortable=True,
        easy_to_borrow=True,
        min_order_size=None,
        min_trade_increment=None,
        price_increment=None,
    )
    fields.update(kw)
    return Asset(**fields)


CRYPTO = asset(
    "BTC/USD", asset_class="crypto", exchange="CRYPTO", shortable=False, price_increment=D("0.01")
)


def signal(**fields) -> Signal:
    doc = {
        "symbol": "AAPL",
        "side": "buy",
        "qty": "10",
        "order_type": "market",
        "status": "PENDING",
    }
    doc.update(fields)
    doc = {k: v for k, v in doc.items() if v is not None}
    parsed = parse_signal("sig1", doc)
    assert isinstance(parsed, Signal), parsed
    return parsed


def plan(sig, a=None, **kw):
    return order_plan(
        signal=sig, asset=a if a is not None else asset(), client_order_id="bo-sig1-entry", **kw
    )


def test_a_plain_market_order_passes_with_day():
    p = plan(signal())
    assert p.ok and p.reasons == ()
    assert (p.request.type, p.request.time_in_force, p.request.qty) == ("market", "day", D("10"))
    assert p.request.client_order_id == "bo-sig1-entry"


def test_limit_orders_default_to_gtc():
    p = plan(signal(order_type="limit", limit_price="187.25"))
    assert p.request.time_in_force == "gtc"


def test_timeout_execution_asks_for_ioc():
    p = plan(signal(order_type="limit", limit_price="187.25", timeout_seconds=30))
    assert p.request.time_in_force == "ioc"


@pytest.mark.parametrize(
    ("a", "reason"),
    [
        (None, "not known"),
        (asset(tradable=False), "not tradable"),
        (asset(status="inactive"), "not tradable"),
    ],
)
def test_unknown_or_untradable_assets_are_rejected(a, reason):
    p = order_plan(signal=signal(), asset=a, client_order_id="x")
    assert not p.ok
    assert reason in p.reasons[0]


@pytest.mark.parametrize(
    ("price", "ok"),
    [("187.25", True), ("187.255", False), ("0.1234", True), ("0.12345", False), ("1", True)],
)
def test_prices_must_be_on_alpacas_increments(price, ok):
    p = plan(signal(order_type="limit", limit_price=price))
    assert p.ok is ok
    if not ok:
        assert "sub-penny" in p.reasons[0]


def test_fractional_only_where_fractionable():
    assert plan(signal(qty="0.5")).ok
    p = plan(signal(qty="0.5"), asset(fractionable=False))
    assert "not fractionable" in p.reasons[0]
    p = plan(signal(qty=None, notional="500"), asset(fractionable=False))
    assert "not fractionable" in p.reasons[0]


def test_fractional_and_notional_equity_orders_are_day_only():
    assert plan(signal(qty="0.5", order_type="limit", limit_price="10")).request.time_in_force == (
        "day"
    )
    p = plan(signal(qty="0.5", time_in_force="gtc"))
    assert "take time in force day" in p.reasons[0]


def test_crypto_takes_gtc_or_ioc_only():
    assert plan(signal(symbol="BTC/USD", qty="0.01"), CRYPTO).request.time_in_force == "gtc"
    p = plan(signal(symbol="BTC/USD", qty="0.01", time_in_force="day"), CRYPTO)
    assert "gtc or ioc" in p.reasons[0]


def test_extended_hours_needs_limit_and_day():
    assert (
        plan(
            signal(order_type="limit", limit_price="10", extended_hours=True)
        ).request.time_in_force
        == "day"
    )
    assert not plan(signal(extended_hours=True)).ok
    p = plan(signal(order_type="limit", limit_price="10", extended_hours=True, time_in_force="gtc"))
    assert "extended hours" in p.reasons[0]


def test_shorts_only_where_shortable():
    sell = signal(side="sell", qty="10")
    assert plan(sell, asset(shortable=True)).ok
    p = plan(sell, asset(shortable=False))
    assert "not shortable" in p.reasons[0]
    # Selling what is held is not a short.
    assert plan(sell, asset(shortable=False), held_qty=D("10")).ok
    assert not plan(sell, asset(shortable=False), held_qty=D("4")).ok


def test_max_notional_per_order():
    limits = RiskLimits(max_notional=D("1000"))
    assert plan(
        signal(order_type="limit", limit_price="99", qty="10"),
        limits=limits,
        reference_price=D("98"),
    ).ok
    p = plan(
        signal(order_type="limit", limit_price="101", qty="10"),
        limits=limits,
        reference_price=D("98"),
    )
    assert "exceeds the max notional" in p.reasons[0]
    p = plan(signal(qty=None, notional="1500"), limits=limits)
    assert not p.ok
    p = plan(signal(qty="20"), limits=limits, reference_price=D("60"))
    assert not p.ok
    p = plan(signal(qty="20"), limits=limits)
    # Risk checks fail closed: no price, no order (deferred, not rejected).
    assert not p.ok and not p.reasons and "no market price" in p.deferred


def test_every_reason_is_listed():
    p = plan(
        signal(qty="0.5", order_type="limit", limit_price="1.234", time_in_force="gtc"),
        asset(fractionable=False),
    )
    assert len(p.reasons) == 3


def test_client_order_id_is_deterministic_and_bounded():
    a = client_order_id_for(signal_id="sig-1", prefix="bo")
    assert a == client_order_id_for(signal_id="sig-1", prefix="bo")
    assert a != client_order_id_for(signal_id="sig-1", leg="exit", prefix="bo")
    assert client_order_id_for(signal_id="abc123", prefix="bo") == "bo-abc123-entry"
    long = client_order_id_for(signal_id="x" * 500, prefix="bo")
    assert len(long) <= MAX_LENGTH and long.startswith("bo-h")
    # The leg follows the last '-', so ids with '-' stay readable and never collide.
    tricky = client_order_id_for(signal_id="a-exit", prefix="bo")
    assert tricky == "bo-a-exit-entry"
    assert tricky != client_order_id_for(signal_id="a", leg="exit", prefix="bo")
    assert parse_client_order_id(tricky, prefix="bo") == ("a-exit", "entry")
    assert parse_client_order_id("bo-a-exit", prefix="bo") == ("a", "exit")
    assert parse_client_order_id(long, prefix="bo") is None
    assert parse_client_order_id("other-a-entry", prefix="bo") is None
    assert client_order_id_for(signal_id="a b", prefix="bo").startswith("bo-h")
    with pytest.raises(ValueError, match="leg"):
        client_order_id_for(signal_id="s", leg="hedge", prefix="bo")


def test_a_market_order_by_quantity_is_sent_without_a_price_only_when_no_limit_is_set():
    assert plan(signal(qty="1000000"), limits=RiskLimits(max_notional=None)).ok
    p = plan(signal(qty="1000000"), limits=RiskLimits(max_notional=D("100000")))
    assert p.deferred and not p.ok


def test_crypto_minimums_are_checked_before_sending():
    limits = RiskLimits(max_notional=D("100000"))
    btc = asset(
        "BTC/USD",
        asset_class="crypto",
        exchange="CRYPTO",
        shortable=False,
        min_order_size=D("0.0001"),
        min_trade_increment=D("0.00001"),
    )

    def crypto_plan(qty: str, price: str):
        sig = signal(symbol="BTC/USD", qty=qty)
        return plan(sig, btc, limits=limits, reference_price=D(price))

    assert any("minimum order size" in r for r in crypto_plan("0.00001", "60000").reasons)
    assert any("trade increment" in r for r in crypto_plan("0.000105", "60000").reasons)
    assert any("crypto minimum" in r for r in crypto_plan("0.0001", "5000").reasons)
    fine = crypto_plan("0.0002", "60000")
    assert fine.ok, fine.reasons


def test_a_crypto_exit_sells_what_is_held_when_the_buy_fee_kept_a_little():
    """0.5 BTC bought holds 0.498749999: selling the signal's 0.5 would be refused."""
    limits = RiskLimits(crypto_fee_tolerance_bps=D("40"))
    sell = signal(symbol="BTC/USD", side="sell", qty="0.5")
    p = plan(sell, CRYPTO, held_qty=D("0.498749999"), limits=limits)
    assert p.ok and p.request.qty == D("0.498749999")
    assert "exit sells what is held" in p.notes[0]


def test_a_crypto_sell_beyond_the_fee_tolerance_is_not_clamped():
    limits = RiskLimits(crypto_fee_tolerance_bps=D("40"))
    sell = signal(symbol="BTC/USD", side="sell", qty="0.5")
    p = plan(sell, CRYPTO, held_qty=D("0.4"), limits=limits)
    assert not p.ok and "not shortable" in p.reasons[0]
    untolerant = plan(sell, CRYPTO, held_qty=D("0.498749999"))
    assert not untolerant.ok


def test_an_equity_sell_is_never_clamped_to_the_holding():
    limits = RiskLimits(crypto_fee_tolerance_bps=D("40"))
    p = plan(signal(side="sell", qty="10"), held_qty=D("9.99"), limits=limits)
    assert p.ok and p.request.qty == D("10")  # the rest opens a short, as asked


# --- risk limits price an order at what it can cost (issue 20 point 4) -------------------------

MAX_100K = RiskLimits(max_notional=D("100000"))
MARKET_190 = D("190")


@pytest.mark.parametrize(
    "fields",
    [
        dict(order_type="market"),
        dict(order_type="stop", stop_price="1"),  # triggers at once, fills at the market
        dict(order_type="limit", limit_price="1"),
        dict(order_type="stop_limit", stop_price="1", limit_price="1"),
        dict(order_type="limit", limit_price="0.01", side="sell"),  # fills at the market
        dict(order_type="stop", stop_price="0.5", side="sell"),
        dict(order_type="market", side="sell"),
    ],
    ids=[
        "market-buy",
        "stop-buy",
        "limit-buy",
        "stop-limit-buy",
        "limit-sell",
        "stop-sell",
        "market-sell",
    ],
)
def test_an_order_by_quantity_is_valued_at_least_at_the_market_price(fields):
    """10,000 AAPL at $190 is $1.9M whatever low price the order names: refused at $100k."""
    p = plan(signal(qty="10000", **fields), limits=MAX_100K, reference_price=MARKET_190)
    assert not p.ok and not p.deferred
    assert "order value 1900000 exceeds the max notional" in p.reasons[0], p.reasons


@pytest.mark.parametrize(
    "fields",
    [
        dict(order_type="limit", limit_price="500"),
        dict(order_type="stop", stop_price="500"),
        dict(order_type="stop_limit", stop_price="480", limit_price="500"),
        dict(order_type="limit", limit_price="500", side="sell"),
    ],
)
def test_an_order_by_quantity_is_valued_at_its_own_price_when_that_is_higher(fields):
    """300 at a $500 limit with the market at $190: $150,000, refused; 100 of them pass."""
    p = plan(signal(qty="300", **fields), limits=MAX_100K, reference_price=MARKET_190)
    assert not p.ok and "order value 150000 exceeds" in p.reasons[0], p.reasons
    assert plan(signal(qty="100", **fields), limits=MAX_100K, reference_price=MARKET_190).ok


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_an_order_by_notional_is_valued_at_its_notional_with_or_without_a_price(side):
    ok = plan(signal(qty=None, notional="50000", side=side), limits=MAX_100K)
    assert ok.ok, (ok.reasons, ok.deferred)
    p = plan(signal(qty=None, notional="150000", side=side), limits=MAX_100K, reference_price=D(1))
    assert not p.ok and "order value 150000 exceeds" in p.reasons[0]


@pytest.mark.parametrize(
    "fields",
    [
        dict(order_type="market"),
        dict(order_type="limit", limit_price="5"),
        dict(order_type="stop", stop_price="5"),
        dict(order_type="stop_limit", stop_price="5", limit_price="5"),
        dict(order_type="limit", limit_price="5", side="sell"),
    ],
)
def test_with_no_market_price_an_order_by_quantity_is_deferred_even_with_its_own_price(fields):
    """Fail closed (docs/design.md section 5): a stop or a sell limit says nothing of what it
    fills at, so its own price is no bound; without the market's price nothing is sent."""
    p = plan(signal(qty="10", **fields), limits=MAX_100K)
    assert not p.ok and not p.reasons and "no market price" in p.deferred
    # Without a limit configured there is nothing to check: no price is needed.
    assert plan(signal(qty="10", **fields), limits=RiskLimits(max_notional=None)).ok
