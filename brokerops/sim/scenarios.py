"""Ready-made states for the paper broker: default assets and named scenarios for the CLI.

``DEFAULT_ASSETS`` covers the cases order validation must see: ordinary equities (AAPL, MSFT, SPY,
TSLA), one that cannot be shorted (NOSHRT), one without fractional shares (WHOLE), one that cannot
be traded (HALTD), one under a dollar for sub-penny rules (PENNY), and two crypto pairs with
Alpaca's size rules (BTC/USD: ``min_order_size`` 0.0001, ``min_trade_increment`` 0.000000001,
``price_increment`` 1; ETH/USD: 0.001, 0.000000001, 0.1). Prices are round figures, not market
data. Add a scenario by adding a function to :data:`SCENARIOS`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from .model import CRYPTO

if TYPE_CHECKING:
    from .broker import PaperBroker
    from .venue import Venue

DEFAULT_ASSETS: tuple[dict[str, object], ...] = (
    {"symbol": "AAPL", "exchange": "NASDAQ", "name": "Apple Inc.", "price": Decimal("190")},
    {"symbol": "MSFT", "exchange": "NASDAQ", "name": "Microsoft Corp.", "price": Decimal("420")},
    {"symbol": "SPY", "exchange": "ARCA", "name": "SPDR S&P 500 ETF", "price": Decimal("520")},
    {"symbol": "TSLA", "exchange": "NASDAQ", "name": "Tesla, Inc.", "price": Decimal("250")},
    {
        "symbol": "NOSHRT",
        "exchange": "NYSE",
        "name": "Not Shortable Corp.",
        "price": Decimal("20"),
        "shortable": False,
        "easy_to_borrow": False,
    },
    {
        "symbol": "WHOLE",
        "exchange": "NYSE",
        "name": "Whole Shares Only Inc.",
        "price": Decimal("50"),
        "fractionable": False,
    },
    {
        "symbol": "HALTD",
        "exchange": "NYSE",
        "name": "Halted Holdings",
        "price": Decimal("10"),
        "tradable": False,
    },
    {"symbol": "PENNY", "exchange": "NASDAQ", "name": "Penny Stock Co.", "price": Decimal("0.5")},
    {
        "symbol": "BTC/USD",
        "asset_class": CRYPTO,
        "name": "Bitcoin / US Dollar",
        "price": Decimal("60000"),
        "min_order_size": Decimal("0.0001"),
        "min_trade_increment": Decimal("0.000000001"),
        "price_increment": Decimal("1"),
    },
    {
        "symbol": "ETH/USD",
        "asset_class": CRYPTO,
        "name": "Ethereum / US Dollar",
        "price": Decimal("3000"),
        "min_order_size": Decimal("0.001"),
        "min_trade_increment": Decimal("0.000000001"),
        "price_increment": Decimal("0.1"),
    },
)


def add_default_assets(venue: Venue) -> None:
    """Add (or reset) every asset of :data:`DEFAULT_ASSETS` to the market."""
    for spec in DEFAULT_ASSETS:
        options = dict(spec)
        symbol = str(options.pop("symbol"))
        venue.add_asset(symbol, **options)


def scenario_empty(broker: PaperBroker) -> None:
    """No assets, no positions."""


def scenario_default(broker: PaperBroker) -> None:
    """The default assets, no positions."""
    broker.add_default_assets()


#: The client_order_ids the demo scenario's orders carry (``bo`` is the default
#: ``CLIENT_ORDER_ID_PREFIX``): the demo records an attempt for the first and not the second.
DEMO_DRIFT_CLIENT_ORDER_ID = "bo-demo-drift-entry"
DEMO_STRAY_CLIENT_ORDER_ID = "bo-demo-stray-entry"


def scenario_demo(broker: PaperBroker) -> None:
    """The broker side of ``manage.py demo`` (which seeds its broker with this very function):
    the default assets, holdings that agree with the demo's signals (AAPL 10, 0.5 BTC) and one
    of each disagreement its reconciliation shows, and two orders placed under the demo's
    client_order_id prefix.

    - MSFT 5: nobody's signal (UNTRACKED_POSITION);
    - TSLA 7 where the signals expect 10 (QTY_MISMATCH);
    - SPY -5 where the signals expect long 5 (SIDE_MISMATCH);
    - no ETH although a signal expects 2 (ORPHAN_POSITION, on the demo's side);
    - ``bo-demo-drift-entry``: canceled by hand, still open in the demo's records
      (ORDER_STATUS_DRIFT);
    - ``bo-demo-stray-entry``: filled, never recorded by the demo (UNKNOWN_ORDER).
    """
    broker.add_default_assets()
    broker.seed_position("AAPL", Decimal(10), Decimal("180"))
    broker.seed_position("BTC/USD", Decimal("0.5"), Decimal("58000"))
    broker.seed_position("MSFT", Decimal(5), Decimal("400"))
    broker.seed_position("TSLA", Decimal(7), Decimal("240"))
    broker.seed_position("SPY", Decimal(-5), Decimal("515"))
    broker.seed_order("MSFT", 1, client_order_id=DEMO_DRIFT_CLIENT_ORDER_ID, status="canceled")
    broker.seed_order(
        "MSFT",
        2,
        client_order_id=DEMO_STRAY_CLIENT_ORDER_ID,
        status="filled",
        filled_qty="2",
        filled_avg_price="420",
    )


SCENARIOS: dict[str, Callable[[PaperBroker], None]] = {
    "empty": scenario_empty,
    "default": scenario_default,
    "demo": scenario_demo,
}
