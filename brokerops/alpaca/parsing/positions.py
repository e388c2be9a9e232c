"""Positions: ``GET /v2/positions`` and ``GET /v2/positions/{symbol}``."""

from __future__ import annotations

from typing import Any

from ..types import Position, symbol_key
from .values import ParseError, bounded_decimal, broker_price, require_list, require_mapping


def parse_position(data: Any) -> Position:
    # The helpers (required_str, optional_decimal, optional_str) written out: a list of 100,000
    # positions goes through here. Same checks, in the same order, with the same errors.
    if type(data) is not dict:
        data = require_mapping(data, "position")
    get = data.get
    symbol = get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise ParseError("position: missing or invalid 'symbol'")
    what = f"position {symbol}"
    qty = bounded_decimal(get("qty"), "qty", what)
    side = str(get("side") or "").lower()
    # Alpaca reports a short as side "short" with a negative qty; accept a positive qty too.
    if side == "short":
        signed = -abs(qty)
    elif side == "long":
        if qty < 0:
            raise ParseError(f"{what}: side 'long' with negative qty")
        signed = qty
    else:
        signed = qty
        side = "short" if qty < 0 else "long"
    key = symbol_key(symbol)
    avg_entry_price = get("avg_entry_price")
    if avg_entry_price is not None and avg_entry_price != "":
        avg_entry_price = broker_price(avg_entry_price, "avg_entry_price", what)
    else:
        avg_entry_price = None
    market_value = get("market_value")
    if market_value is not None and market_value != "":
        market_value = broker_price(market_value, "market_value", what)
    else:
        market_value = None
    asset_id, asset_class = get("asset_id"), get("asset_class")
    return Position(
        symbol=symbol,
        symbol_key=key,
        qty=signed,
        side=side,
        avg_entry_price=avg_entry_price,
        market_value=market_value,
        asset_id=None if asset_id is None else str(asset_id),
        asset_class=None if asset_class is None else str(asset_class),
    )


def parse_positions(rows: Any) -> list[Position]:
    """``GET /v2/positions``: one position per symbol. Two for one symbol (``BTCUSD`` and
    ``BTC/USD`` count as one) make the list malformed: summing them would hide a broker fault."""
    positions = [parse_position(row) for row in require_list(rows, "positions")]
    seen: set[str] = set()
    for position in positions:
        if position.symbol_key in seen:
            raise ParseError(f"positions: more than one position for {position.symbol_key}")
        seen.add(position.symbol_key)
    return positions
