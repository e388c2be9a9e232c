"""Strict crypto: the fee is paid in the coin received, minimums, cash-only buying power.

Each rule is on by default (Alpaca's profile); the ``lenient_*`` tests pin that the lenient values
stay reachable, with ``strict=False`` or the single rule.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from alpaca.trading.client import TradingClient

from brokerops.sim import PaperBroker

from .helpers import Raw, market, submit_and_settle


def _buy(raw: Raw, broker: PaperBroker, symbol: str, qty: str) -> dict[str, object]:
    response = raw.post("/v2/orders", json=market(symbol, qty))
    assert response.status_code == 200, response.text
    assert broker.settle(timeout=5)
    return raw.get(f"/v2/orders/{response.json()['id']}").json()


@pytest.mark.parametrize(
    ("qty", "held"),
    [
        ("0.0002", "0.000199499"),  # Alpaca's own example
        ("0.5", "0.498749999"),
        ("0.123456789", "0.123148147"),
    ],
)
def test_a_buy_pays_the_fee_in_the_coin_received(
    strict_raw: Raw, strict_broker: PaperBroker, qty: str, held: str
) -> None:
    cash = Decimal(strict_raw.get("/v2/account").json()["cash"])
    order = _buy(strict_raw, strict_broker, "BTC/USD", qty)
    assert order["status"] == "filled"
    assert order["filled_qty"] == qty  # the order says what was bought ...
    position = strict_raw.get("/v2/positions/BTCUSD").json()
    assert position["qty"] == held  # ... the position what is held
    assert Decimal(held) < Decimal(qty) * (1 - Decimal("0.0025"))
    assert Decimal(strict_raw.get("/v2/account").json()["cash"]) == cash - Decimal(qty) * 60000


def test_selling_what_was_ordered_is_refused_selling_what_is_held_works(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    _buy(strict_raw, strict_broker, "BTC/USD", "0.0002")
    refused = strict_raw.post("/v2/orders", json=market("BTC/USD", "0.0002", "sell"))
    assert refused.status_code == 403
    assert refused.json() == {
        "available": "0.000199499",
        "balance": "0.000199499",
        "code": 40310000,
        "message": "insufficient balance for BTC (requested: 0.0002, available: 0.000199499)",
    }
    cash = Decimal(strict_raw.get("/v2/account").json()["cash"])
    # Selling what is held works; the fee on a sale is paid in the dollars received.
    sell = strict_raw.post("/v2/orders", json=market("BTC/USD", "0.000199499", "sell"))
    assert sell.status_code == 200, sell.text
    assert strict_broker.settle(timeout=5)
    assert strict_raw.get("/v2/positions").json() == []
    proceeds = Decimal("0.000199499") * 60000
    after = Decimal(strict_raw.get("/v2/account").json()["cash"])
    assert after == cash + proceeds - proceeds * Decimal("0.0025")


def test_the_whole_holding_may_be_sold_below_the_minimum(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    _buy(strict_raw, strict_broker, "BTC/USD", "0.0001")
    held = strict_raw.get("/v2/positions/BTCUSD").json()["qty"]
    assert held == "0.000099749"  # below min_order_size 0.0001 after the fee
    part = strict_raw.post("/v2/orders", json=market("BTC/USD", "0.00005", "sell"))
    assert part.status_code == 422
    assert strict_raw.post("/v2/orders", json=market("BTC/USD", held, "sell")).status_code == 200


def test_the_fee_is_its_own_option(lenient_raw: Raw, lenient_broker: PaperBroker) -> None:
    """On the lenient broker (instant fills, no fee) the fee alone can be switched on."""
    lenient_raw.post("/v2/orders", json=market("ETH/USD", "2"))
    assert lenient_broker.position("ETH/USD")["qty"] == "2"  # type: ignore[index]
    lenient_broker.set_fidelity(crypto_fee_bps=25)
    assert not lenient_broker.fidelity.crypto_rules and lenient_broker.fidelity.fill_delay_s == 0
    lenient_raw.post("/v2/orders", json=market("ETH/USD", "2"))
    assert lenient_broker.position("ETH/USD")["qty"] == "3.994999999"  # type: ignore[index]


def test_the_default_broker_can_drop_the_fee_alone(raw: Raw, paper_broker: PaperBroker) -> None:
    """And the reverse: the default (Alpaca's) profile with ``crypto_fee_bps=0``."""
    paper_broker.set_fidelity(crypto_fee_bps=0)
    assert submit_and_settle(raw, paper_broker, market("ETH/USD", "2"))["status"] == "filled"
    assert paper_broker.position("ETH/USD")["qty"] == "2"  # type: ignore[index]


def test_crypto_assets_serve_alpaca_size_rules(
    strict_raw: Raw, strict_client: TradingClient
) -> None:
    btc = strict_raw.get("/v2/assets/BTC/USD").json()
    assert (btc["min_order_size"], btc["min_trade_increment"], btc["price_increment"]) == (
        "0.0001",
        "0.000000001",
        "1",
    )
    assert (btc["marginable"], btc["shortable"]) == (False, False)
    eth = strict_client.get_asset("ETH/USD")
    assert eth.min_order_size == 0.001
    assert "min_order_size" not in strict_raw.get("/v2/assets/AAPL").json()


def test_min_order_size_and_increment(strict_raw: Raw, strict_broker: PaperBroker) -> None:
    small = strict_raw.post("/v2/orders", json=market("BTC/USD", "0.00005"))
    assert small.status_code == 422
    assert small.json() == {"code": 40010001, "message": "qty must be >= 0.0001"}

    strict_broker.add_asset(
        "SOL/USD",
        asset_class="crypto",
        price=Decimal("150"),
        min_order_size=Decimal("0.01"),
        min_trade_increment=Decimal("0.001"),
    )
    off_step = strict_raw.post("/v2/orders", json=market("SOL/USD", "0.0125"))
    assert off_step.status_code == 422
    assert off_step.json() == {"code": 40010001, "message": "qty must be a multiple of 0.001"}
    assert strict_raw.post("/v2/orders", json=market("SOL/USD", "0.013")).status_code == 200


def test_one_dollar_minimum(strict_raw: Raw, strict_broker: PaperBroker) -> None:
    body = {**market("ETH/USD", 1), "qty": None, "notional": "0.99"}
    tiny = strict_raw.post("/v2/orders", json=body)
    assert tiny.status_code == 403
    assert tiny.json() == {
        "code": 40310000,
        "message": "cost basis must be >= minimal amount of order 1",
    }
    strict_broker.set_price("ETH/USD", "500")
    cheap = strict_raw.post("/v2/orders", json=market("ETH/USD", "0.001"))  # $0.50
    assert cheap.status_code == 403
    assert strict_raw.post("/v2/orders", json={**body, "notional": "1"}).status_code == 200


def test_lenient_broker_skips_crypto_minimums(lenient_raw: Raw) -> None:
    # Under min_order_size (0.0001), then under the $1 minimum cost ($0.60).
    assert lenient_raw.post("/v2/orders", json=market("BTC/USD", "0.00005")).status_code == 200
    assert lenient_raw.post("/v2/orders", json=market("BTC/USD", "0.00001")).status_code == 200


def test_crypto_buys_use_cash_not_margin(strict_raw: Raw, strict_broker: PaperBroker) -> None:
    strict_broker.set_cash(1000)
    account = strict_raw.get("/v2/account").json()
    assert (account["buying_power"], account["non_marginable_buying_power"]) == ("2000", "1000")
    refused = strict_raw.post("/v2/orders", json=market("BTC/USD", "0.02"))  # $1,200
    assert refused.status_code == 403
    assert refused.json() == {
        "available": "1000",
        "balance": "1000",
        "code": 40310000,
        "message": "insufficient balance for USD (requested: 1200, available: 1000)",
    }
    assert strict_raw.post("/v2/orders", json=market("AAPL", 6)).status_code == 200  # on margin


def test_lenient_crypto_buys_may_use_margin(lenient_raw: Raw, lenient_broker: PaperBroker) -> None:
    lenient_broker.set_cash(1000)
    assert lenient_raw.post("/v2/orders", json=market("BTC/USD", "0.02")).status_code == 200


def test_crypto_rules_off_alone_skips_minimums_and_allows_margin(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    """The default profile with ``crypto_rules=False`` only: sizes and cash are not checked."""
    paper_broker.set_fidelity(crypto_rules=False)
    paper_broker.set_cash(1000)  # buying power 2,000 on margin, 1,000 in cash
    assert raw.post("/v2/orders", json=market("BTC/USD", "0.00005")).status_code == 200
    assert raw.post("/v2/orders", json=market("BTC/USD", "0.02")).status_code == 200  # $1,200


def test_a_crypto_position_costs_what_was_paid_per_coin_held_with_many_digits(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    """The fee paid in the coin makes the average entry price what was paid per coin held:
    dollars over a quantity net of the fee, a figure with many digits (Alpaca's averages carry
    16 decimals: docs/design.md section 6), served exactly so every client meets such prices."""
    _buy(strict_raw, strict_broker, "BTC/USD", "0.5")
    strict_broker.set_price("BTC/USD", "60123.45")
    order = _buy(strict_raw, strict_broker, "BTC/USD", "0.25")
    position = strict_raw.get("/v2/positions/BTCUSD").json()
    paid = Decimal("0.5") * 60000 + Decimal("0.25") * Decimal("60123.45")
    held = Decimal(position["qty"])
    average = Decimal(position["avg_entry_price"])
    assert len(position["avg_entry_price"].partition(".")[2]) == 16
    assert abs(average - paid / held) < Decimal("1e-15")
    assert Decimal(order["filled_avg_price"]) == Decimal("60123.45")
