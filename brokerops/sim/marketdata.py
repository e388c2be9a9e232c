"""Alpaca's market-data "latest trades" answers, served from the book's last trades.

Two endpoints on the paper broker's port, authenticated, counted and rate-limited like the
trading routes (Alpaca serves them from ``data.alpaca.markets``; alpaca-py's
``StockHistoricalDataClient``/``CryptoHistoricalDataClient`` reach them with ``url_override``):

- ``GET /v2/stocks/trades/latest?symbols=AAPL,MSFT[&feed=iex]`` ->
  ``{"trades": {"AAPL": {"t": "<RFC 3339, ns>", "x": "V", "p": 187.12, "s": 100, "c": ["@"],
  "i": 52983525029461, "z": "C"}}}``;
- ``GET /v1beta3/crypto/us/latest/trades?symbols=BTC/USD,ETH/USD`` ->
  ``{"trades": {"BTC/USD": {"t": ..., "p": 65000.1, "s": 0.01, "tks": "B", "i": 123}}}``.

Prices and sizes are JSON numbers (not strings, unlike the Trading API). A symbol that is unknown,
of the other asset class, or whose market data was removed (``PaperBroker.set_market_data(symbol,
None)``) is simply absent from the map. ``x`` is ``V`` (IEX) for ``feed=iex``, else the listing
exchange's code; ``z`` is the tape of the listing exchange.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ApiError
from .model import Asset

STOCK_FEEDS = frozenset({"iex", "sip", "delayed_sip", "otc", "boats", "overnight"})
EXCHANGE_CODES = {"NASDAQ": "Q", "NYSE": "N", "ARCA": "P", "AMEX": "A", "BATS": "Z"}
TAPES = {"NASDAQ": "C", "NYSE": "A"}


def invalid_query(message: str) -> ApiError:
    """The data API's refusal of a bad query: 400 with code 40010001."""
    return ApiError(400, 40010001, message)


def parse_symbols(text: str | None) -> list[str]:
    """The ``symbols`` query parameter (comma-separated); 400 when missing or empty."""
    symbols = [s.strip() for s in (text or "").split(",") if s.strip()]
    if not symbols:
        raise invalid_query("missing symbols")
    return symbols


def check_feed(feed: str | None) -> str:
    """The stock ``feed`` (default ``sip``); 400 ``invalid feed`` for an unknown one."""
    if feed is None or feed == "":
        return "sip"
    if feed.lower() not in STOCK_FEEDS:
        raise invalid_query(f"invalid feed: {feed}")
    return feed.lower()


def stock_trades(assets: Iterable[Asset], feed: str) -> dict[str, object]:
    """``{"trades": {symbol: trade}}`` for the equities among ``assets`` that have market data."""
    trades: dict[str, object] = {}
    for asset in assets:
        trade = asset.last_trade
        if asset.is_crypto or trade is None:
            continue
        code = "V" if feed == "iex" else EXCHANGE_CODES.get(asset.exchange, "V")
        trades[asset.symbol] = trade.stock_json(code, TAPES.get(asset.exchange, "B"))
    return {"trades": trades}


def crypto_trades(assets: Iterable[Asset]) -> dict[str, object]:
    """``{"trades": {symbol: trade}}`` for the crypto pairs among ``assets`` with market data."""
    trades: dict[str, object] = {}
    for asset in assets:
        trade = asset.last_trade
        if not asset.is_crypto or trade is None:
            continue
        trades[asset.symbol] = trade.crypto_json()
    return {"trades": trades}
