"""The gateway's market-data reads: latest trade prices in bulk, for the risk check of market
orders by quantity, through the same session as the trading calls (timeout, limiter, counting,
retries, error mapping)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal

from ..errors import BrokerMalformedResponse, BrokerUnavailable, map_http_error
from ..parsing.account import parse_latest_trades
from ..types import symbol_key
from .reads import AccountReads

#: Symbols per market-data request (they travel in the query string).
DATA_CHUNK = 100
STOCK_TRADES_PATH = "/v2/stocks/trades/latest"
CRYPTO_TRADES_PATH = "/v1beta3/crypto/us/latest/trades"


class MarketDataReads(AccountReads):
    """Latest trade prices from ``data_url`` (a crypto symbol is known from the asset list)."""

    data_url: str
    _data_headers: dict[str, str]

    def latest_trade_prices(self, symbols: Iterable[str]) -> dict[str, Decimal]:
        """The latest trade price of each symbol, keyed by symbol key (``BTC/USD`` -> ``BTCUSD``),
        read in bulk from the market-data API (for the risk check of market orders by quantity).

        Equities: ``GET {data_url}/v2/stocks/trades/latest?symbols=A,B``; crypto (a symbol with
        a ``/``, or one the asset list says is crypto, e.g. ``BTCUSD``): ``GET {data_url}/v1beta3/
        crypto/us/latest/trades?symbols=BTC/USD``; at most :data:`DATA_CHUNK` symbols per request.
        A symbol without a ``/`` is looked up in the cached asset list (read once if not cached,
        as :meth:`find_asset` would). A symbol the broker has no trade for is absent from the
        result. Prices are exact decimals from the JSON text, bounded like every broker figure and
        positive, or the whole read is :class:`BrokerMalformedResponse`. An idempotent read:
        retried like the others.
        """
        wanted = [(text, symbol_key(text)) for text in (str(s).strip().upper() for s in symbols)]
        wanted = [(text, key) for text, key in wanted if key]
        known = self._asset_cache(refresh=False)[1] if any("/" not in t for t, _ in wanted) else {}
        stocks: dict[str, str] = {}  # symbol as sent -> symbol key
        crypto: dict[str, str] = {}
        for text, key in wanted:
            asset = known.get(key)
            if "/" in text:
                crypto.setdefault(text, key)
            elif asset is not None and asset.asset_class == "crypto" and "/" in asset.symbol:
                crypto.setdefault(asset.symbol.strip().upper(), key)
            else:
                stocks.setdefault(key, key)
        prices: dict[str, Decimal] = {}
        for path, wanted in ((STOCK_TRADES_PATH, stocks), (CRYPTO_TRADES_PATH, crypto)):
            sent = list(wanted)
            for start in range(0, len(sent), DATA_CHUNK):
                chunk = {s: wanted[s] for s in sent[start : start + DATA_CHUNK]}
                prices.update(self._read(path, lambda p=path, c=chunk: self._trades(p, c)))
        return prices

    def _trades(self, path: str, wanted: dict[str, str]) -> dict[str, Decimal]:
        response = self._client._session.get(
            self.data_url + path,
            params={"symbols": ",".join(wanted)},
            headers=self._data_headers,
            allow_redirects=False,  # the key headers must never follow a redirect elsewhere
        )
        status = response.status_code
        if status >= 400:
            raise map_http_error(
                method="GET",
                path=path,
                status=status,
                body_text=response.text,
                headers=response.headers,
                now=self._wall_clock,
                secrets=self._secrets,
                max_pause_s=self.max_pause_s,
            )
        if 300 <= status < 400:
            raise BrokerUnavailable(
                f"GET {path} -> HTTP {status}: no market data (redirects are not followed)",
                status=status,
            )
        try:
            # Prices from the JSON text itself: 187.12 stays 187.12, 1e308 stays out of range.
            body = json.loads(response.text, parse_float=Decimal)
        except (ValueError, RecursionError):
            raise BrokerMalformedResponse(f"GET {path}: response body is not JSON") from None
        return parse_latest_trades(body, wanted)
