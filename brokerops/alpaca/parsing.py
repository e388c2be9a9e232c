"""Parse Alpaca's JSON (plain dicts from alpaca-py's ``raw_data=True``) into the gateway's types.

Strict where the project depends on a field (ids, symbols, quantities: a missing or non-numeric
quantity is a malformed response), lenient about everything else: enumerated values stay strings
and unknown fields are ignored, so a new exchange or order status never breaks a read.
Every failure is a :class:`ParseError` (a ``ValueError``), mapped by the gateway to
``BrokerMalformedResponse``.

Every quantity, price and money figure goes through :func:`bounded_decimal`: finite, less than
``1e12`` in magnitude, no finer than ``1e-9``. A figure outside that range fails the read (it
could not be stored without overflow or silent rounding); it is never clipped or rounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .types import Account, Asset, Order, Position, symbol_key

_ZERO = timedelta(0)

#: Figures must be strictly smaller than this in magnitude.
MAX_MAGNITUDE = Decimal("1e12")
#: Figures may carry at most this many decimal places (after dropping trailing zeros).
MAX_PLACES = 9
_MAX_SHOWN = 24  # characters of an offending value quoted in a message


class ParseError(ValueError):
    """A broker body that does not have the shape we rely on."""


def _require_mapping(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise ParseError(f"{what}: expected an object, got {type(data).__name__}")
    return data


def require_list(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise ParseError(f"{what}: expected a list, got {type(data).__name__}")
    return data


def _str(data: Mapping[str, Any], key: str, what: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ParseError(f"{what}: missing or invalid {key!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    return str(value)


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def bounded_decimal(
    value: Any,
    key: str,
    what: str,
    *,
    max_places: int | None = MAX_PLACES,
) -> Decimal:
    """``value`` (a string, int, float or Decimal from a broker body) as an exact ``Decimal``
    within the project's bounds, or :class:`ParseError` naming ``what`` and ``key``.

    In bounds: finite, ``abs(x) < 1e12``, and at most ``max_places`` (9) decimal places once
    trailing zeros are dropped (``"1.500"`` is fine, ``"1e-10"`` is not). ``max_places=None``
    skips the precision check (for derived totals such as qty x price). Floats (JSON numbers)
    are read through ``str()`` so no binary digits leak in. Never rounds, never raises anything
    but ``ParseError``, whatever the decimal context traps (``"1e999999999"`` is refused by
    comparison, before any arithmetic could overflow). Reused by the intent schema's checks.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        if value is None:
            raise ParseError(f"{what}: {key!r} is missing")
        raise ParseError(f"{what}: {key!r} is not a decimal: {_shown(value)!r}")
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ParseError(f"{what}: {key!r} is not a decimal: {_shown(value)}")
    try:
        # Alpaca sends strings; a bare JSON number goes through str() so no float digits leak.
        result = (
            value
            if isinstance(value, Decimal)
            else Decimal(value if isinstance(value, str | int) else str(value))
        )
    except (InvalidOperation, TypeError, ValueError, ArithmeticError):
        raise ParseError(f"{what}: {key!r} is not a decimal: {_shown(value)!r}") from None
    if not result.is_finite():
        raise ParseError(f"{what}: {key!r} is not finite: {_shown(value)!r}")
    # Comparisons and as_tuple() are exact and never trap, unlike normalize()/quantize().
    if result.copy_abs() >= MAX_MAGNITUDE:
        raise ParseError(f"{what}: {key!r} is at least 1e12 in magnitude: {_shown(value)!r}")
    if not result:
        return Decimal(0)
    sign, digits, exponent = result.as_tuple()
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    if max_places is not None and exponent + trailing < -max_places:
        raise ParseError(f"{what}: {key!r} is finer than 1e-{max_places}: {_shown(value)!r}")
    if trailing and exponent < 0:
        # Drop trailing zeros below the point (1.500 -> 1.5): same value, no rounding.
        kept = digits[: len(digits) - min(trailing, -exponent)]
        result = Decimal((sign, kept, exponent + min(trailing, -exponent)))
    return result


def _decimal(value: Any, key: str, what: str, *, max_places: int | None = MAX_PLACES) -> Decimal:
    return bounded_decimal(value, key, what, max_places=max_places)


def _req_decimal(data: Mapping[str, Any], key: str, what: str) -> Decimal:
    return _decimal(data.get(key), key, what)


def _opt_decimal(
    data: Mapping[str, Any], key: str, what: str, *, max_places: int | None = MAX_PLACES
) -> Decimal | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    return _decimal(value, key, what, max_places=max_places)


def _bool(data: Mapping[str, Any], key: str, default: bool = False) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def parse_timestamp(value: Any, key: str = "timestamp", what: str = "value") -> datetime | None:
    """RFC 3339 (``Z`` or offset, up to nanoseconds) -> aware UTC datetime (microseconds)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ParseError(f"{what}: {key!r} is not a timestamp")
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 takes "Z" and long fractions
    except ValueError:
        parsed = _parse_timestamp_slow(value, key, what)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed if parsed.utcoffset() == _ZERO else parsed.astimezone(UTC)


def _parse_timestamp_slow(value: str, key: str, what: str) -> datetime:
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Keep at most 6 fractional digits (Alpaca may send nanoseconds).
    if "." in text:
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        frac, tail = rest[:digits], rest[digits:]
        text = f"{head}.{frac[:6].ljust(6, '0')}{tail}" if frac else head + tail
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ParseError(f"{what}: {key!r} is not a timestamp") from None


def parse_position(data: Any) -> Position:
    what = "position"
    data = _require_mapping(data, what)
    symbol = _str(data, "symbol", what)
    what = f"position {symbol}"
    qty = _req_decimal(data, "qty", what)
    side = str(data.get("side") or "").lower()
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
    return Position(
        symbol=symbol,
        symbol_key=symbol_key(symbol),
        qty=signed,
        side=side,
        avg_entry_price=_opt_decimal(data, "avg_entry_price", what),
        # qty x price: carries the places of both (never stored); size still bounded.
        market_value=_opt_decimal(data, "market_value", what, max_places=None),
        asset_id=_opt_str(data, "asset_id"),
        asset_class=_opt_str(data, "asset_class"),
    )


def parse_order(data: Any) -> Order:
    what = "order"
    data = _require_mapping(data, what)
    order_id = _str(data, "id", what)
    what = f"order {order_id}"

    def ts(key: str) -> datetime | None:
        return parse_timestamp(data.get(key), key, what)

    filled_qty = _opt_decimal(data, "filled_qty", what)
    return Order(
        id=order_id,
        client_order_id=_str(data, "client_order_id", what),
        symbol=_str(data, "symbol", what),
        side=_str(data, "side", what),
        # "order_type" is deprecated: "type" wins when both are present.
        order_type=str(data.get("type") or data.get("order_type") or ""),
        time_in_force=str(data.get("time_in_force") or ""),
        status=_str(data, "status", what),
        qty=_opt_decimal(data, "qty", what),
        notional=_opt_decimal(data, "notional", what),
        filled_qty=filled_qty if filled_qty is not None else Decimal(0),
        filled_avg_price=_opt_decimal(data, "filled_avg_price", what),
        limit_price=_opt_decimal(data, "limit_price", what),
        stop_price=_opt_decimal(data, "stop_price", what),
        extended_hours=_bool(data, "extended_hours"),
        created_at=ts("created_at"),
        submitted_at=ts("submitted_at"),
        updated_at=ts("updated_at"),
        filled_at=ts("filled_at"),
        canceled_at=ts("canceled_at"),
        raw=dict(data),
    )


def parse_asset(data: Any) -> Asset:
    what = "asset"
    data = _require_mapping(data, what)
    symbol = _str(data, "symbol", what)
    what = f"asset {symbol}"
    return Asset(
        id=_str(data, "id", what),
        symbol=symbol,
        # Alpaca names the field "class" on assets and "asset_class" on positions/orders.
        asset_class=str(data.get("class") or data.get("asset_class") or ""),
        exchange=str(data.get("exchange") or ""),
        tradable=_bool(data, "tradable"),
        fractionable=_bool(data, "fractionable"),
        shortable=_bool(data, "shortable"),
        easy_to_borrow=_bool(data, "easy_to_borrow"),
        min_order_size=_opt_decimal(data, "min_order_size", what),
        min_trade_increment=_opt_decimal(data, "min_trade_increment", what),
        price_increment=_opt_decimal(data, "price_increment", what),
        status=str(data.get("status") or ""),
    )


def parse_account(data: Any) -> Account:
    what = "account"
    data = _require_mapping(data, what)
    return Account(
        id=_str(data, "id", what),
        account_number=_opt_str(data, "account_number"),
        status=str(data.get("status") or ""),
        currency=_opt_str(data, "currency"),
        # Account totals are sums of qty x price: bounded in size, not in precision.
        cash=_opt_decimal(data, "cash", what, max_places=None),
        buying_power=_opt_decimal(data, "buying_power", what, max_places=None),
        equity=_opt_decimal(data, "equity", what, max_places=None),
        trading_blocked=_bool(data, "trading_blocked"),
        shorting_enabled=_bool(data, "shorting_enabled"),
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


def parse_latest_trades(data: Any, wanted: Mapping[str, str]) -> dict[str, Decimal]:
    """A market-data latest-trades body ``{"trades": {"AAPL": {"p": 187.12, ...}}}`` -> prices
    keyed by symbol key, for the symbols in ``wanted`` (symbol as sent -> its symbol key) only.
    A symbol missing from the map is absent from the result; a price that is not a positive
    figure within :func:`bounded_decimal`'s range makes the whole body malformed."""
    body = _require_mapping(data, "latest trades")
    trades = body.get("trades")
    if not isinstance(trades, Mapping):
        raise ParseError("latest trades: missing or invalid 'trades'")
    prices: dict[str, Decimal] = {}
    for symbol, trade in trades.items():
        key = wanted.get(str(symbol))
        if key is None:
            continue  # not asked for
        what = f"trade {symbol}"
        trade = _require_mapping(trade, what)
        price = _req_decimal(trade, "p", what)
        if price <= 0:
            raise ParseError(f"{what}: 'p' is not a positive price: {price}")
        prices[key] = price
    return prices
