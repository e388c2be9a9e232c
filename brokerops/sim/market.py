"""The paper broker's market: assets, their prices, and the latest trades the market-data
endpoints serve. Knows nothing of orders or positions: the venue moves those in every book when
a price or an asset changes. Not locked itself (``venue.py`` says who guards it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from . import marketdata
from .errors import not_found
from .model import CRYPTO, US_EQUITY, Asset, Trade, asset_id_for
from .stamps import Stamps, stamp

#: Plain attributes ``set_*_fields`` changes on the record itself (and so in the book's logic).
ASSET_ATTRIBUTES = frozenset(
    {
        "exchange",
        "name",
        "status",
        "tradable",
        "marginable",
        "shortable",
        "easy_to_borrow",
        "fractionable",
    }
)
#: Crypto size rules served on assets unless ``add_asset`` says otherwise (BTC/USD and ETH/USD
#: have Alpaca's own in ``scenarios.DEFAULT_ASSETS``).
CRYPTO_MIN_ORDER_SIZE = Decimal("0.000000002")
CRYPTO_MIN_TRADE_INCREMENT = Decimal("0.000000001")
CRYPTO_PRICE_INCREMENT = Decimal("0.01")
#: Sizes of the trades the market-data endpoints report.
STOCK_TRADE_SIZE = Decimal(100)
CRYPTO_TRADE_SIZE = Decimal("0.01")


class Market:
    """Assets by symbol (either crypto spelling, any case) and id, with their prices."""

    def __init__(self, stamps: Stamps) -> None:
        self._stamps = stamps
        self._assets: dict[str, Asset] = {}
        self._lookup: dict[str, Asset] = {}

    # ------------------------------------------------------------------ assets

    def add(
        self,
        symbol: str,
        *,
        asset_class: str = US_EQUITY,
        tradable: bool = True,
        fractionable: bool = True,
        shortable: bool = True,
        easy_to_borrow: bool = True,
        marginable: bool = True,
        exchange: str | None = None,
        name: str | None = None,
        status: str = "active",
        price: Decimal = Decimal(100),
        lastday_price: Decimal | None = None,
        asset_id: str | None = None,
        min_order_size: Decimal | None = None,
        min_trade_increment: Decimal | None = None,
        price_increment: Decimal | None = None,
    ) -> tuple[Asset, Asset | None]:
        """Add or replace an asset; returns it and the asset it replaced (whose orders and
        position the book moves over to it), if any. See :meth:`Venue.add_asset`."""
        if asset_class == CRYPTO and "/" not in symbol:
            raise ValueError(f"crypto symbols are written BASE/QUOTE, got {symbol!r}")
        price = Decimal(price)
        if price <= 0:
            raise ValueError("price must be positive")
        existing = self._lookup.get(symbol.upper())
        if existing is not None:
            self._forget_keys(existing)
        asset = Asset(
            id=asset_id or (existing.id if existing else asset_id_for(symbol)),
            symbol=symbol,
            asset_class=asset_class,
            exchange=exchange or ("CRYPTO" if asset_class == CRYPTO else "NASDAQ"),
            name=name or symbol,
            status=status,
            tradable=tradable,
            marginable=marginable and asset_class != CRYPTO,
            shortable=shortable and asset_class != CRYPTO,
            easy_to_borrow=easy_to_borrow and asset_class != CRYPTO,
            fractionable=fractionable,
            price=price,
            lastday_price=Decimal(lastday_price) if lastday_price is not None else price,
        )
        if asset.is_crypto:
            asset.min_order_size = _decimal_or(min_order_size, CRYPTO_MIN_ORDER_SIZE)
            asset.min_trade_increment = _decimal_or(min_trade_increment, CRYPTO_MIN_TRADE_INCREMENT)
            asset.price_increment = _decimal_or(price_increment, CRYPTO_PRICE_INCREMENT)
        asset.last_trade = self._trade(asset, price)
        self._assets[asset.id] = asset
        self._lookup[asset.symbol.upper()] = asset
        self._lookup[asset.position_symbol.upper()] = asset
        self._lookup[asset.id] = asset
        return asset, existing

    def _forget_keys(self, asset: Asset) -> None:
        for key in (asset.symbol.upper(), asset.position_symbol.upper(), asset.id):
            self._lookup.pop(key, None)

    def find(self, ref: str) -> Asset | None:
        """The asset for a symbol (``BTC/USD`` or ``BTCUSD``, any case) or an asset id."""
        return self._lookup.get(ref.strip().upper()) or self._lookup.get(ref.strip().lower())

    def get(self, ref: str) -> Asset:
        """As :meth:`find`; ``KeyError`` when unknown (the Python handle's error)."""
        asset = self.find(ref)
        if asset is None:
            raise KeyError(f"unknown asset {ref!r}")
        return asset

    def assets(self) -> list[Asset]:
        return list(self._assets.values())

    def asset_json(self, ref: str) -> dict[str, object]:
        """``GET /v2/assets/{symbol_or_id}``; 404 when unknown."""
        asset = self.find(ref)
        if asset is None:
            raise not_found(f"asset not found for {ref}")
        return asset.to_json()

    def assets_json(
        self, *, status: str | None = None, asset_class: str | None = None
    ) -> list[dict[str, object]]:
        """``GET /v2/assets`` with Alpaca's ``status`` and ``asset_class`` filters."""
        return [
            asset.to_json()
            for asset in self._assets.values()
            if (status is None or asset.status == status)
            and (asset_class is None or asset.asset_class == asset_class)
        ]

    def set_fields(self, symbol: str, fields: dict[str, object]) -> dict[str, object]:
        """Raw values: plain attributes change the record, anything else overrides the JSON."""
        asset = self.get(symbol)
        for key, value in fields.items():
            if key in ASSET_ATTRIBUTES:
                setattr(asset, key, value)
            else:
                asset.extra[key] = value
        return asset.to_json()

    # ------------------------------------------------------------------ prices and trades

    def move_price(self, asset: Asset, price: Decimal, lastday_price: Decimal | None) -> None:
        """A new price (the book revalues the position around it, then records the trade)."""
        asset.price = price
        if lastday_price is not None:
            asset.lastday_price = Decimal(lastday_price)

    def record_trade(self, asset: Asset, price: Decimal) -> None:
        """The asset's latest trade for the market-data endpoints, at ``price`` now."""
        asset.last_trade = self._trade(asset, price)

    def _trade(
        self, asset: Asset, price: Decimal, size: Decimal | None = None, at: int | None = None
    ) -> Trade:
        default_size = CRYPTO_TRADE_SIZE if asset.is_crypto else STOCK_TRADE_SIZE
        return Trade(
            price=price,
            size=default_size if size is None else size,
            at=self._stamps.now() if at is None else at,
            id=self._stamps.next_trade_id(),
        )

    def set_market_data(
        self,
        symbol: str,
        price: Decimal | None,
        *,
        size: Decimal | None = None,
        at: datetime | str | None = None,
    ) -> dict[str, object] | None:
        """See :meth:`Venue.set_market_data`."""
        asset = self.get(symbol)
        if price is None:
            asset.last_trade = None
            return None
        asset.last_trade = self._trade(
            asset, Decimal(price), Decimal(size) if size is not None else None, stamp(at)
        )
        trades = (
            marketdata.crypto_trades([asset])
            if asset.is_crypto
            else marketdata.stock_trades([asset], "sip")
        )["trades"]
        return trades.get(asset.symbol)  # type: ignore[union-attr, return-value]

    def latest_trades_json(
        self, symbols: Iterable[str], *, crypto: bool, feed: str = "sip"
    ) -> dict[str, object]:
        """The market-data latest trades of ``symbols`` (see ``marketdata.py``): symbols are
        matched as the asset is written (``BTC/USD``, any case); unknown ones are left out."""
        assets = []
        for symbol in symbols:
            asset = self._lookup.get(symbol.strip().upper())
            if asset is not None and asset.symbol.upper() == symbol.strip().upper():
                assets.append(asset)
        if crypto:
            return marketdata.crypto_trades(assets)
        return marketdata.stock_trades(assets, feed)


def _decimal_or(value: Decimal | str | None, default: Decimal) -> Decimal:
    return default if value is None else Decimal(value)
