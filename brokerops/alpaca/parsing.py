"""Parse Alpaca's JSON (plain dicts from alpaca-py's ``raw_data=True``) into the gateway's types.

Strict where the project depends on a field (ids, symbols, quantities: a missing or non-numeric
quantity is a malformed response), lenient about everything else: enumerated values stay strings
and unknown fields are ignored, so a new exchange or order status never breaks a read.
Every failure is a :class:`ParseError` (a ``ValueError``), mapped by the gateway to
``BrokerMalformedResponse``.

Every quantity, price and money figure goes through :func:`bounded_decimal`: finite and less
than ``1e12`` in magnitude. Quantities are also no finer than ``1e-9`` (the signal bound); prices
and money (:func:`broker_price`) come at any precision and are kept exact: a real crypto
position's ``avg_entry_price`` has 16 decimals (docs/design.md section 6). A figure outside its
range fails the read; it is never clipped or rounded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from .types import Account, Asset, Order, OrderSummary, Position, symbol_key

_ZERO = timedelta(0)
_ORDER_FIGURES = ("qty", "notional", "filled_qty", "filled_avg_price", "limit_price", "stop_price")
# Of those, the prices and money: exact at any precision (the others are quantities).
_ORDER_PRICES = frozenset({"notional", "filled_avg_price", "limit_price", "stop_price"})
_fromisoformat = datetime.fromisoformat

#: Figures must be strictly smaller than this in magnitude.
MAX_MAGNITUDE = Decimal("1e12")
#: Figures may carry at most this many decimal places (after dropping trailing zeros).
MAX_PLACES = 9
_MAX_SHOWN = 24  # characters of an offending value quoted in a message
_DECIMAL_ZERO = Decimal(0)
# Plain decimal text already inside the bounds and already in its final form: at most 12 integer
# digits (so below 1e12), at most 9 decimal places, no trailing zero after the point. Such a
# string is exactly the Decimal it spells; everything else takes the general path.
_FINAL_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,11})(?:\.[0-9]{0,8}[1-9])?").fullmatch
# Strings seen by the fast path -> their Decimal (immutable, so shared). Broker bodies repeat
# the same figures (quantities, "0") thousands of times; the cache stops growing when full.
_DECIMAL_CACHE: dict[str, Decimal] = {}
_DECIMAL_CACHE_MAX = 50_000


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
    if type(value) is str and (max_places is None or max_places >= MAX_PLACES):
        cached = _DECIMAL_CACHE.get(value)
        if cached is not None:
            return cached
        if _FINAL_DECIMAL(value):  # in bounds and final (the common case): exact as is
            result = Decimal(value) or _DECIMAL_ZERO  # "-0" -> 0, as below
            if len(_DECIMAL_CACHE) < _DECIMAL_CACHE_MAX:
                _DECIMAL_CACHE[value] = result
            return result
    return _bounded_decimal(value, key, what, max_places=max_places)


def _bounded_decimal(value: Any, key: str, what: str, *, max_places: int | None) -> Decimal:
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


def broker_price(value: Any, key: str, what: str) -> Decimal:
    """A price or money figure from the broker: exact at any precision, finite, under ``1e12``
    in magnitude (a quantity goes through :func:`bounded_decimal` with its 9-decimal bound)."""
    return bounded_decimal(value, key, what, max_places=None)


def _decimal(value: Any, key: str, what: str, *, max_places: int | None = MAX_PLACES) -> Decimal:
    return bounded_decimal(value, key, what, max_places=max_places)


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
    # The helpers (_str, _opt_decimal, _opt_str) written out: a list of 100,000
    # positions goes through here. Same checks, in the same order, with the same errors.
    if type(data) is not dict:
        data = _require_mapping(data, "position")
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


def parse_order(data: Any) -> Order:
    """One order object -> :class:`Order` (``raw`` is a copy of ``data``)."""
    return _parse_order(data, owned=False)


def parse_orders(rows: Any) -> list[Order]:
    """A list of order objects freshly decoded from a body (nobody else holds them: each becomes
    its order's ``raw`` as it is, without a copy)."""
    return [_parse_order(row, owned=True) for row in require_list(rows, "orders")]


def _parse_order(data: Any, *, owned: bool) -> Order:
    if type(data) is not dict:
        data = dict(_require_mapping(data, "order"))
    elif not owned:
        data = dict(data)
    get = data.get
    order_id = get("id")
    if not isinstance(order_id, str) or not order_id:
        raise ParseError("order: missing or invalid 'id'")
    what = f"order {order_id}"
    client_order_id, symbol, side, status = (
        get("client_order_id"),
        get("symbol"),
        get("side"),
        get("status"),
    )
    for key, value in (
        ("client_order_id", client_order_id),
        ("symbol", symbol),
        ("side", side),
        ("status", status),
    ):
        if not isinstance(value, str) or not value:
            raise ParseError(f"{what}: missing or invalid {key!r}")
    figures = []
    for key in _ORDER_FIGURES:
        value = get(key)
        figures.append(
            None
            if value is None or value == ""
            else bounded_decimal(
                value, key, what, max_places=None if key in _ORDER_PRICES else MAX_PLACES
            )
        )
    qty, notional, filled_qty, filled_avg_price, limit_price, stop_price = figures
    stamps = []
    for key in ("created_at", "submitted_at", "updated_at", "filled_at", "canceled_at"):
        value = get(key)
        if value is None or value == "":
            stamps.append(None)
            continue
        if type(value) is str:
            try:
                parsed = _fromisoformat(value)
            except ValueError:
                pass
            else:
                if parsed.tzinfo is UTC:  # "Z" or +00:00: already what parse_timestamp returns
                    stamps.append(parsed)
                    continue
        stamps.append(parse_timestamp(value, key, what))
    created_at, submitted_at, updated_at, filled_at, canceled_at = stamps
    return Order(
        id=order_id,
        client_order_id=client_order_id,
        symbol=symbol,
        side=side,
        # "order_type" is deprecated: "type" wins when both are present.
        order_type=str(get("type") or get("order_type") or ""),
        time_in_force=str(get("time_in_force") or ""),
        status=status,
        qty=qty,
        notional=notional,
        filled_qty=filled_qty if filled_qty is not None else _DECIMAL_ZERO,
        filled_avg_price=filled_avg_price,
        limit_price=limit_price,
        stop_price=stop_price,
        extended_hours=_bool(data, "extended_hours"),
        created_at=created_at,
        submitted_at=submitted_at,
        updated_at=updated_at,
        filled_at=filled_at,
        canceled_at=canceled_at,
        raw=data,
    )


_ORDER_STAMPS = ("created_at", "submitted_at", "updated_at", "filled_at", "canceled_at")
_ORDER_TEXTS = ("type", "order_type", "time_in_force")


class SharedStrings:
    """Strings seen during one bulk read (statuses, sides, symbols and their keys), so that
    equal values are held once rather than once per order."""

    __slots__ = ("symbols", "words")

    def __init__(self) -> None:
        self.symbols: dict[str, tuple[str, str]] = {}  # symbol -> (symbol, its symbol key)
        self.words: dict[str, str] = {}


def parse_order_summaries(
    rows: Any, *, shared: SharedStrings | None = None
) -> tuple[list[OrderSummary], list[tuple[datetime | None, datetime | None]]]:
    """A list of order objects -> one :class:`OrderSummary` per order, and each order's
    ``(submitted_at, created_at)`` (what paging needs).

    Every order is checked exactly as :func:`parse_order` checks it (same bounds, same
    timestamps, same errors): an order :func:`parse_order` refuses fails the whole list, and a
    summary holds the values :func:`parse_order` gives. Orders in the common form (every figure a
    plain decimal string already in bounds, every timestamp in UTC) are checked here without
    building an :class:`Order`; any other goes through :func:`parse_order` itself. ``shared``
    (one per bulk read) holds equal strings once.
    """
    fields, stamps = parse_order_summary_fields(rows, shared=shared)
    return [OrderSummary._make(f) for f in fields], stamps


def parse_order_summary_fields(
    rows: Any, *, shared: SharedStrings | None = None
) -> tuple[list[tuple[Any, ...]], list[tuple[datetime | None, datetime | None]]]:
    """:func:`parse_order_summaries` with each summary as a plain tuple of
    :class:`OrderSummary`'s fields: the garbage collector stops tracking a plain tuple of strings
    and decimals (never a tuple subclass), so a bulk read of 200,000 orders adds nothing to the
    full collections that happen while it is held."""
    if shared is None:
        shared = SharedStrings()
    summaries: list[tuple[Any, ...]] = []
    stamps: list[tuple[datetime | None, datetime | None]] = []
    for row in require_list(rows, "orders"):
        summary = _order_summary(row, shared)
        if summary is None:  # not in the common form: the general parser decides
            order = _parse_order(row, owned=True)
            summary = (
                (
                    order.id,
                    order.client_order_id,
                    order.symbol,
                    symbol_key(order.symbol),
                    order.side,
                    order.status,
                    order.qty,
                    order.filled_qty,
                ),
                order.submitted_at,
                order.created_at,
            )
        summaries.append(summary[0])
        stamps.append((summary[1], summary[2]))
    return summaries, stamps


def _order_summary(
    row: Any, shared: SharedStrings
) -> tuple[tuple[Any, ...], datetime | None, datetime | None] | None:
    """``row`` checked as :func:`_parse_order` checks it, when it is in the common form; None
    when it is not (the general parser then gives the answer, or the error)."""
    if type(row) is not dict:
        return None
    get = row.get
    order_id, client_order_id, symbol, side, status = (
        get("id"),
        get("client_order_id"),
        get("symbol"),
        get("side"),
        get("status"),
    )
    if not (
        type(order_id) is str
        and order_id
        and type(client_order_id) is str
        and client_order_id
        and type(symbol) is str
        and symbol
        and type(side) is str
        and side
        and type(status) is str
        and status
    ):
        return None
    cached = _DECIMAL_CACHE.get
    figures = []
    for key in _ORDER_FIGURES:
        value = get(key)
        if value is None or value == "":
            figures.append(None)
            continue
        if type(value) is not str:
            return None
        figure = cached(value)
        if figure is None:
            if not _FINAL_DECIMAL(value):
                if key not in _ORDER_PRICES:
                    return None
                try:  # a price at any precision: checked here as the general path checks it
                    figure = broker_price(value, key, "order")
                except ParseError:
                    return None  # the general parser gives the error, naming the order
            else:
                figure = bounded_decimal(value, key, "order")  # in bounds: cannot raise
        figures.append(figure)
    parsed = []
    for key in _ORDER_STAMPS:
        value = get(key)
        if value is None or value == "":
            parsed.append(None)
            continue
        if type(value) is not str:
            return None
        try:
            stamp = _fromisoformat(value)
        except ValueError:
            return None
        if stamp.tzinfo is not UTC:
            return None
        parsed.append(stamp)
    for key in _ORDER_TEXTS:  # str() of anything but a string or null is the general path's
        value = get(key)
        if value is not None and type(value) is not str:
            return None
    symbols, words = shared.symbols, shared.words
    known = symbols.get(symbol)
    if known is None:
        known = symbols[symbol] = (symbol, symbol_key(symbol))
    filled_qty = figures[2]
    return (
        (  # OrderSummary's fields
            order_id,
            client_order_id,
            known[0],
            known[1],
            words.setdefault(side, side),
            words.setdefault(status, status),
            figures[0],
            filled_qty if filled_qty is not None else _DECIMAL_ZERO,
        ),
        parsed[1],
        parsed[0],
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
        price_increment=_opt_decimal(data, "price_increment", what, max_places=None),
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
        # Money: bounded in size, not in precision.
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
    figure within :func:`broker_price`'s range makes the whole body malformed."""
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
        price = broker_price(trade.get("p"), "p", what)
        if price <= 0:
            raise ParseError(f"{what}: 'p' is not a positive price: {price}")
        prices[key] = price
    return prices
