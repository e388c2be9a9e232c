"""Records of the paper broker's book and their Alpaca JSON shapes.

Money and quantities are ``Decimal`` inside and strings on the wire; ids are UUID strings;
timestamps are integer nanoseconds since the Unix epoch inside and RFC 3339 in UTC on the wire,
written as Alpaca (Go's ``RFC3339Nano``) writes them: up to nine fractional digits, trailing
zeros dropped (``2026-11-25T18:38:26.123456789Z``, ``...:26.1Z``, ``...:26Z``). Every record has
an ``extra`` dict of raw JSON overrides (set through ``PaperBroker.set_*_fields``): its keys
replace or add keys of the served JSON, and the value :data:`DROP` removes a key. That is how tests
serve values alpaca-py does not know (a new exchange, a new order status) or a malformed record.
Market data (:class:`Trade`) is served with JSON numbers, as Alpaca's data API does.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

ASSET_NAMESPACE = uuid.UUID("5b1f3c1e-8f0a-4c55-9d1e-0a1ca9a0b5e7")

US_EQUITY = "us_equity"
CRYPTO = "crypto"

NANOS_PER_SECOND = 1_000_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: Order statuses that ``status=closed`` selects; every other status (known or not) is open.
CLOSED_STATUSES = frozenset({"filled", "canceled", "expired", "replaced", "rejected"})


class _Drop:
    """Sentinel type of :data:`DROP`."""

    _instance: _Drop | None = None

    def __new__(cls) -> _Drop:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DROP"


#: Value for ``set_*_fields`` that removes the key from the served JSON.
DROP = _Drop()


def fmt_decimal(value: Decimal | None) -> str | None:
    """Alpaca's string form of a number: plain, no trailing zeros (``"150.25"``, ``"10"``)."""
    if value is None:
        return None
    if not value:
        return "0"
    return format(value.normalize(), "f")


def to_nanos(value: datetime) -> int:
    """Nanoseconds since the Unix epoch; a naive datetime is UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NANOS_PER_SECOND + delta.microseconds * 1_000


def from_nanos(nanos: int) -> datetime:
    """The aware UTC datetime of ``nanos`` (truncated to microseconds)."""
    return _EPOCH + timedelta(microseconds=nanos // 1_000)


def fmt_time(value: datetime | int | None) -> str | None:
    """RFC 3339 in UTC as Alpaca writes it: up to nine fractional digits, trailing zeros dropped.

    ``value`` is a datetime or integer nanoseconds since the epoch.
    """
    if value is None:
        return None
    nanos = value if isinstance(value, int) else to_nanos(value)
    seconds, fraction = divmod(nanos, NANOS_PER_SECOND)
    text = _whole_seconds(seconds)
    if fraction:
        return f"{text}.{fraction:09d}".rstrip("0") + "Z"
    return text + "Z"


@functools.lru_cache(maxsize=65_536)
def _whole_seconds(seconds: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` in UTC (cached: listings format the same seconds again and again)."""
    t = time.gmtime(seconds)
    day = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    return f"{day}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


_STAMP = re.compile(r"(?P<head>.*T\d{2}:\d{2}:\d{2})(?:\.(?P<fraction>\d+))?(?P<tail>.*)")


def parse_time(text: str) -> int:
    """Parse an RFC 3339 timestamp or a date, as Alpaca's query strings carry it, to nanoseconds.

    Accepts a ``Z`` suffix, a numeric offset, a ``+`` that URL decoding turned into a space, up to
    nine fractional digits kept (more are truncated), no offset (UTC) and a bare date (midnight
    UTC). Raises ``ValueError``.
    """
    text = text.strip()
    if " " in text and "T" in text:
        text = text.replace(" ", "+")
    if len(text) == 10:
        return to_nanos(datetime.combine(date.fromisoformat(text), datetime.min.time()))
    found = _STAMP.fullmatch(text)
    if found is None:
        raise ValueError(f"not a timestamp: {text!r}")
    parsed = datetime.fromisoformat(found["head"] + found["tail"])
    fraction = int((found["fraction"] or "")[:9].ljust(9, "0"))
    return to_nanos(parsed) + fraction


def asset_id_for(symbol: str) -> str:
    """A stable asset id for a symbol (the same in every run), so tests can hard-code it."""
    return str(uuid.uuid5(ASSET_NAMESPACE, symbol))


def _apply_extra(data: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    for key, value in extra.items():
        if value is DROP:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def _number(value: Decimal) -> int | float:
    """A JSON number for market data: an int when whole, else a float."""
    return int(value) if value == value.to_integral_value() else float(value)


@dataclass(frozen=True, slots=True)
class Trade:
    """The latest trade of a symbol as the market-data endpoints serve it (``at`` in nanoseconds,
    ``id`` Alpaca's integer trade id)."""

    price: Decimal
    size: Decimal
    at: int
    id: int

    def stock_json(self, exchange_code: str, tape: str) -> dict[str, object]:
        """``GET /v2/stocks/trades/latest``: ``{"t", "x", "p", "s", "c", "i", "z"}``."""
        return {
            "t": fmt_time(self.at),
            "x": exchange_code,
            "p": _number(self.price),
            "s": _number(self.size),
            "c": ["@"],
            "i": self.id,
            "z": tape,
        }

    def crypto_json(self) -> dict[str, object]:
        """``GET /v1beta3/crypto/us/latest/trades``: ``{"t", "p", "s", "tks", "i"}``."""
        return {
            "t": fmt_time(self.at),
            "p": _number(self.price),
            "s": _number(self.size),
            "tks": "B",
            "i": self.id,
        }


@dataclass(slots=True)
class Asset:
    """A tradable (or not) instrument; ``symbol`` is ``BTC/USD`` style for crypto.

    Crypto assets also carry ``min_order_size``, ``min_trade_increment`` and ``price_increment``
    (served as strings). ``last_trade`` is what the market-data endpoints serve (None: the symbol
    is absent from their answers).
    """

    id: str
    symbol: str
    asset_class: str
    exchange: str
    name: str
    status: str
    tradable: bool
    marginable: bool
    shortable: bool
    easy_to_borrow: bool
    fractionable: bool
    price: Decimal
    lastday_price: Decimal
    min_order_size: Decimal | None = None
    min_trade_increment: Decimal | None = None
    price_increment: Decimal | None = None
    last_trade: Trade | None = None
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def position_symbol(self) -> str:
        """The symbol positions carry: ``BTCUSD`` for ``BTC/USD``, unchanged for equities."""
        return self.symbol.replace("/", "")

    @property
    def is_crypto(self) -> bool:
        return self.asset_class == CRYPTO

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "id": self.id,
            "class": self.asset_class,
            "exchange": self.exchange,
            "symbol": self.symbol,
            "name": self.name,
            "status": self.status,
            "tradable": self.tradable,
            "marginable": self.marginable,
            "maintenance_margin_requirement": 100 if self.is_crypto else 30,
            "margin_requirement_long": "100" if self.is_crypto else "50",
            "margin_requirement_short": "100" if self.is_crypto else "50",
            "shortable": self.shortable,
            "easy_to_borrow": self.easy_to_borrow,
            "fractionable": self.fractionable,
            "attributes": [],
        }
        if self.is_crypto:
            data["min_order_size"] = fmt_decimal(self.min_order_size)
            data["min_trade_increment"] = fmt_decimal(self.min_trade_increment)
            data["price_increment"] = fmt_decimal(self.price_increment)
        return _apply_extra(data, self.extra) if self.extra else data


@dataclass(slots=True)
class Position:
    """A holding: ``qty`` is signed (shorts negative) and never zero while the record exists."""

    asset: Asset
    qty: Decimal
    avg_entry_price: Decimal
    extra: dict[str, object] = field(default_factory=dict)

    def market_value(self) -> Decimal:
        return self.qty * self.asset.price

    def to_json(self, held_for_orders: Decimal = Decimal(0)) -> dict[str, object]:
        """Alpaca's position; ``held_for_orders``: unsigned quantity open orders would close."""
        asset = self.asset
        qty = self.qty
        price = asset.price
        lastday = asset.lastday_price
        market_value = qty * price
        cost_basis = qty * self.avg_entry_price
        unrealized = market_value - cost_basis
        intraday = (price - lastday) * qty
        change = (price - lastday) / lastday if lastday else Decimal(0)
        plpc = unrealized / abs(cost_basis) if cost_basis else Decimal(0)
        intraday_base = abs(qty * lastday)
        intraday_plpc = intraday / intraday_base if intraday_base else Decimal(0)
        available = abs(qty) - held_for_orders
        if available < 0:
            available = Decimal(0)
        if qty < 0:
            available = -available
        data: dict[str, object] = {
            "asset_id": asset.id,
            "symbol": asset.position_symbol,
            "exchange": asset.exchange,
            "asset_class": asset.asset_class,
            "asset_marginable": asset.marginable,
            "qty": fmt_decimal(qty),
            "avg_entry_price": fmt_decimal(self.avg_entry_price),
            "side": "long" if qty > 0 else "short",
            "market_value": fmt_decimal(market_value),
            "cost_basis": fmt_decimal(cost_basis),
            "unrealized_pl": fmt_decimal(unrealized),
            "unrealized_plpc": fmt_decimal(plpc),
            "unrealized_intraday_pl": fmt_decimal(intraday),
            "unrealized_intraday_plpc": fmt_decimal(intraday_plpc),
            "current_price": fmt_decimal(price),
            "lastday_price": fmt_decimal(lastday),
            "change_today": fmt_decimal(change),
            "qty_available": fmt_decimal(available),
        }
        return _apply_extra(data, self.extra) if self.extra else data


@dataclass(slots=True)
class Order:
    """An order; ``status`` is a plain string so tests can set values alpaca-py does not know.

    Times are nanoseconds since the epoch. ``fillable`` False keeps the fill model away from it
    (seeded orders); ``fill_order`` still works. ``due`` is set while the order waits out the fill
    delay (``pending_new``): the fill model leaves it alone until the book releases it.
    """

    id: str
    client_order_id: str
    asset: Asset
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: str
    created_at: int
    submitted_at: int
    updated_at: int
    seq: int
    extended_hours: bool = False
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    filled_at: int | None = None
    canceled_at: int | None = None
    expired_at: int | None = None
    failed_at: int | None = None
    trail_price: Decimal | None = None
    trail_percent: Decimal | None = None
    position_intent: str | None = None
    order_class: str = "simple"
    fillable: bool = True
    due: float | None = None
    extra: dict[str, object] = field(default_factory=dict)
    _raw: bytes | None = None

    def touch(self) -> None:
        """Forget the cached JSON; call after every change to the order."""
        self._raw = None

    def raw_json(self) -> bytes:
        """The order's JSON, encoded; cached until :meth:`touch` (listing 20,000 stays cheap)."""
        raw = self._raw
        if raw is None:
            raw = self._raw = json.dumps(self.to_json(), separators=(",", ":")).encode()
        return raw

    def snapshot(self) -> dict[str, object]:
        """:meth:`to_json`, also filling the encoded cache (one build for both)."""
        data = self.to_json()
        if self._raw is None:
            self._raw = json.dumps(data, separators=(",", ":")).encode()
        return data

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED_STATUSES

    @property
    def sort_key(self) -> tuple[int, int]:
        return (self.submitted_at, self.seq)

    def remaining_qty(self, price: Decimal) -> Decimal:
        """Quantity still to fill; a notional order's quantity is estimated at ``price``."""
        if self.qty is not None:
            return self.qty - self.filled_qty
        if self.notional is None or not price:
            return Decimal(0)
        return max(Decimal(0), self.notional / price - self.filled_qty)

    def to_json(self) -> dict[str, object]:
        asset = self.asset
        data: dict[str, object] = {
            "id": self.id,
            "client_order_id": self.client_order_id,
            "created_at": fmt_time(self.created_at),
            "updated_at": fmt_time(self.updated_at),
            "submitted_at": fmt_time(self.submitted_at),
            "filled_at": fmt_time(self.filled_at),
            "expired_at": fmt_time(self.expired_at),
            "canceled_at": fmt_time(self.canceled_at),
            "failed_at": fmt_time(self.failed_at),
            "replaced_at": None,
            "replaced_by": None,
            "replaces": None,
            "asset_id": asset.id,
            "symbol": asset.symbol,
            "asset_class": asset.asset_class,
            "notional": fmt_decimal(self.notional),
            "qty": fmt_decimal(self.qty),
            "filled_qty": fmt_decimal(self.filled_qty),
            "filled_avg_price": fmt_decimal(self.filled_avg_price),
            "order_class": self.order_class,
            "order_type": self.type,
            "type": self.type,
            "side": self.side,
            "position_intent": self.position_intent,
            "time_in_force": self.time_in_force,
            "limit_price": fmt_decimal(self.limit_price),
            "stop_price": fmt_decimal(self.stop_price),
            "status": self.status,
            "extended_hours": self.extended_hours,
            "legs": None,
            "trail_percent": fmt_decimal(self.trail_percent),
            "trail_price": fmt_decimal(self.trail_price),
            "hwm": None,
            "subtag": None,
            "source": None,
            "expires_at": None,
        }
        return _apply_extra(data, self.extra) if self.extra else data


def trade_update_json(
    event: str, order: Order, at: int, fields: Mapping[str, object]
) -> dict[str, object]:
    """The ``data`` of one trade_updates message as Alpaca sends it: ``event``, the ``order``
    exactly as the REST API renders it at that moment, the ``timestamp`` of the event, and the
    event's own fields (a fill's ``execution_id``, ``price``, ``qty`` and ``position_qty``, as
    strings); keys sorted, as Alpaca's come."""
    data: dict[str, object] = {
        "event": event,
        "order": order.to_json(),
        "timestamp": fmt_time(at),
        **fields,
    }
    return dict(sorted(data.items()))
