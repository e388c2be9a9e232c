"""The demo's world: a paper broker and signals that show every mismatch kind and the order flow.

Used by ``manage.py demo`` only. The scenario is the one the integration tests exercise: holdings
that agree, and one case of each ``ReconciliationErrors`` kind; plus PENDING signals for the
order cycle (one fills at once, one rests until the price ticker crosses it, two are rejected
before anything is sent).
"""

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from brokerops.intent.store import SignalStore
from brokerops.sim import PaperBroker
from orders.models import OrderAttempt


def _signal(symbol: str, qty: str, status: str, side: str = "buy", **extra) -> dict:
    return {
        "symbol": symbol,
        "side": side,
        "qty": qty,
        "order_type": "market",
        "status": status,
        **extra,
    }


def seed_demo(*, broker: PaperBroker, store: SignalStore) -> None:
    """Seed the broker, the signal store and two order attempts (what an earlier day left)."""
    broker.add_default_assets()
    broker.seed_position("AAPL", 10)  # agrees with demo-aapl
    broker.seed_position("BTC/USD", Decimal("0.5"))  # agrees with demo-btc (BTC/USD = BTCUSD)
    broker.seed_position("MSFT", 5)  # UNTRACKED_POSITION: nobody's signal
    broker.seed_position("TSLA", 7)  # QTY_MISMATCH: 10 expected
    broker.seed_position("SPY", -5)  # SIDE_MISMATCH: long 5 expected, short held
    store.delete_all()
    store.put_documents(
        [
            ("demo-aapl", _signal("AAPL", "10", "ACTIVE")),
            ("demo-btc", _signal("BTC/USD", "0.5", "ACTIVE")),
            ("demo-eth", _signal("ETH/USD", "2", "ACTIVE")),  # ORPHAN_POSITION: closed by hand
            ("demo-tsla", _signal("TSLA", "10", "ACTIVE")),
            ("demo-spy", _signal("SPY", "5", "ACTIVE")),
            ("demo-broken", _signal("AAPL", "lots", "ACTIVE")),  # INVALID_SIGNAL
            # The order flow:
            ("demo-buy-aapl", _signal("AAPL", "5", "PENDING")),  # market: fills at once
            (
                "demo-limit-noshrt",
                {**_signal("NOSHRT", "10", "PENDING"), "order_type": "limit", "limit_price": "19"},
            ),  # rests until the ticker drops NOSHRT
            ("demo-halted", _signal("HALTD", "1", "PENDING")),  # rejected: not tradable
            (
                "demo-subpenny",
                {
                    **_signal("PENNY", "100", "PENDING"),
                    "order_type": "limit",
                    "limit_price": "0.12345",
                },
            ),  # rejected: sub-penny price
        ]
    )
    hour_ago = timezone.now() - timedelta(hours=1)
    # ORDER_NOT_FOUND: we recorded an open order that Alpaca no longer has.
    OrderAttempt.objects.create(
        client_order_id="bo-demo-gone-entry",
        signal_id="demo-gone",
        symbol="AAPL",
        side="buy",
        order_type="market",
        qty=1,
        status="open",
        broker_status="new",
        created_at=hour_ago,
    )
    # ORDER_STATUS_DRIFT: somebody canceled our order at the broker.
    drift = broker.seed_order("MSFT", 1, client_order_id="bo-demo-drift-entry", status="canceled")
    OrderAttempt.objects.create(
        client_order_id="bo-demo-drift-entry",
        signal_id="demo-drift",
        symbol="MSFT",
        side="buy",
        order_type="market",
        qty=1,
        status="open",
        broker_status="new",
        alpaca_order_id=drift["id"],
        created_at=hour_ago,
    )
    # UNKNOWN_ORDER: an order with our prefix that we never recorded.
    broker.seed_order(
        "MSFT",
        2,
        client_order_id="bo-demo-stray-entry",
        status="filled",
        filled_qty="2",
        filled_avg_price="420",
    )


def tick_prices(broker: PaperBroker, step: int) -> None:
    """The demo's market: NOSHRT drifts down until it crosses the resting limit order."""
    price = max(Decimal("18.5"), Decimal("20") - Decimal("0.25") * step)
    broker.set_price("NOSHRT", price)
