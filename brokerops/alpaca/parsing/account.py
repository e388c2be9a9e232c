"""The account, the assets it can trade, and their latest trade prices (market data)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from ..types import Account, Asset
from .values import (
    ParseError,
    broker_price,
    flag,
    optional_decimal,
    optional_str,
    require_mapping,
    required_str,
)


def parse_asset(data: Any) -> Asset:
    what = "asset"
    data = require_mapping(data, what)
    symbol = required_str(data, "symbol", what)
    what = f"asset {symbol}"
    return Asset(
        id=required_str(data, "id", what),
        symbol=symbol,
        # Alpaca names the field "class" on assets and "asset_class" on positions/orders.
        asset_class=str(data.get("class") or data.get("asset_class") or ""),
        exchange=str(data.get("exchange") or ""),
        tradable=flag(data, "tradable"),
        fractionable=flag(data, "fractionable"),
        shortable=flag(data, "shortable"),
        easy_to_borrow=flag(data, "easy_to_borrow"),
        min_order_size=optional_decimal(data, "min_order_size", what),
        min_trade_increment=optional_decimal(data, "min_trade_increment", what),
        price_increment=optional_decimal(data, "price_increment", what, max_places=None),
        status=str(data.get("status") or ""),
    )


def parse_account(data: Any) -> Account:
    what = "account"
    data = require_mapping(data, what)
    return Account(
        id=required_str(data, "id", what),
        account_number=optional_str(data, "account_number"),
        status=str(data.get("status") or ""),
        currency=optional_str(data, "currency"),
        # Money: bounded in size, not in precision.
        cash=optional_decimal(data, "cash", what, max_places=None),
        buying_power=optional_decimal(data, "buying_power", what, max_places=None),
        equity=optional_decimal(data, "equity", what, max_places=None),
        trading_blocked=flag(data, "trading_blocked"),
        shorting_enabled=flag(data, "shorting_enabled"),
    )


def parse_latest_trades(data: Any, wanted: Mapping[str, str]) -> dict[str, Decimal]:
    """A market-data latest-trades body ``{"trades": {"AAPL": {"p": 187.12, ...}}}`` -> prices
    keyed by symbol key, for the symbols in ``wanted`` (symbol as sent -> its symbol key) only.
    A symbol missing from the map is absent from the result; a price that is not a positive
    figure within :func:`broker_price`'s range makes the whole body malformed."""
    body = require_mapping(data, "latest trades")
    trades = body.get("trades")
    if not isinstance(trades, Mapping):
        raise ParseError("latest trades: missing or invalid 'trades'")
    prices: dict[str, Decimal] = {}
    for symbol, trade in trades.items():
        key = wanted.get(str(symbol))
        if key is None:
            continue  # not asked for
        what = f"trade {symbol}"
        trade = require_mapping(trade, what)
        price = broker_price(trade.get("p"), "p", what)
        if price <= 0:
            raise ParseError(f"{what}: 'p' is not a positive price: {price}")
        prices[key] = price
    return prices
