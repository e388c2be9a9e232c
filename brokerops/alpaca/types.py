"""Typed results and requests of the broker gateway.

Frozen dataclasses with ``Decimal`` money and quantities. Enumerated broker values (status,
exchange, side, order type, asset class) are plain ``str``: a value Alpaca adds tomorrow (a new
exchange, a new order status) is carried through, never a reason for a read to fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple

from brokerops.fields import CLIENT_ORDER_ID_MAX
from brokerops.symbols import symbol_key

ORDER_SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIMES_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
MAX_CLIENT_ORDER_ID = CLIENT_ORDER_ID_MAX  # Alpaca's limit, defined once in brokerops/fields.py


def decimal_to_wire(value: Decimal) -> str:
    """A Decimal as Alpaca expects it in a JSON body: a plain string, never exponent notation."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    symbol_key: str
    qty: Decimal  # signed: negative for a short
    side: str  # "long" | "short" (as Alpaca says it)
    avg_entry_price: Decimal | None
    market_value: Decimal | None
    asset_id: str | None
    asset_class: str | None

    @property
    def crypto(self) -> bool:
        """A crypto holding (Alpaca takes a crypto buy's fee in the coin received)."""
        return self.asset_class == "crypto"


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    client_order_id: str
    symbol: str
    side: str
    order_type: str
    time_in_force: str
    status: str
    qty: Decimal | None
    notional: Decimal | None
    filled_qty: Decimal
    filled_avg_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    extended_hours: bool
    created_at: datetime | None
    submitted_at: datetime | None
    updated_at: datetime | None
    filled_at: datetime | None
    canceled_at: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def symbol_key(self) -> str:
        return symbol_key(self.symbol)


class OrderSummary(NamedTuple):
    """What a bulk comparison needs of one listed order (see
    :meth:`~brokerops.alpaca.gateway.AlpacaGateway.list_order_summaries`): the same values as the
    :class:`Order` fields of the same names, without the rest of the order."""

    id: str
    client_order_id: str
    symbol: str
    symbol_key: str
    side: str
    status: str
    qty: Decimal | None
    filled_qty: Decimal


@dataclass(frozen=True, slots=True)
class Asset:
    id: str
    symbol: str
    asset_class: str
    exchange: str
    tradable: bool
    fractionable: bool
    shortable: bool
    easy_to_borrow: bool
    min_order_size: Decimal | None
    min_trade_increment: Decimal | None
    price_increment: Decimal | None
    status: str = "active"

    @property
    def symbol_key(self) -> str:
        return symbol_key(self.symbol)


@dataclass(frozen=True, slots=True)
class Account:
    id: str
    account_number: str | None
    status: str
    currency: str | None
    cash: Decimal | None
    buying_power: Decimal | None
    equity: Decimal | None
    trading_blocked: bool
    shorting_enabled: bool


def _as_decimal(name: str, value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        raise TypeError(f"{name} must be a Decimal (or str/int), not float")
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a Decimal, not bool")
    try:
        result = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"{name} is not a decimal: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"{name} must be finite")
    return result


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What to send to ``POST /v2/orders``. Exactly one of ``qty`` and ``notional``.

    Quantities and prices are ``Decimal`` (``str``/``int`` are converted; ``float`` is refused).
    Only the shape is checked here; business rules (increments, TIF rules, shortability) belong
    to the order service, which knows the asset.
    """

    symbol: str
    side: str
    type: str = "market"
    time_in_force: str = "day"
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    extended_hours: bool = False
    client_order_id: str | None = None

    def __post_init__(self) -> None:
        for name in ("qty", "notional", "limit_price", "stop_price"):
            object.__setattr__(self, name, _as_decimal(name, getattr(self, name)))
        if not self.symbol or not self.symbol.strip():
            raise ValueError("symbol is required")
        if self.side not in ORDER_SIDES:
            raise ValueError(f"side must be one of {sorted(ORDER_SIDES)}")
        if self.type not in ORDER_TYPES:
            raise ValueError(f"type must be one of {sorted(ORDER_TYPES)}")
        if self.time_in_force not in TIMES_IN_FORCE:
            raise ValueError(f"time_in_force must be one of {sorted(TIMES_IN_FORCE)}")
        if (self.qty is None) == (self.notional is None):
            raise ValueError("exactly one of qty and notional is required")
        amount = self.qty if self.qty is not None else self.notional
        if amount is not None and amount <= 0:
            raise ValueError("qty/notional must be positive")
        if self.type in ("limit", "stop_limit") and self.limit_price is None:
            raise ValueError(f"a {self.type} order needs limit_price")
        if self.type in ("stop", "stop_limit") and self.stop_price is None:
            raise ValueError(f"a {self.type} order needs stop_price")
        if self.client_order_id is not None and not (
            0 < len(self.client_order_id) <= MAX_CLIENT_ORDER_ID
        ):
            raise ValueError(f"client_order_id must be 1..{MAX_CLIENT_ORDER_ID} characters")

    def to_body(self) -> dict[str, Any]:
        """The JSON body Alpaca expects; Decimals go out as strings, never floats."""
        body: dict[str, Any] = {
            "symbol": self.symbol.strip(),
            "side": self.side,
            "type": self.type,
            "time_in_force": self.time_in_force,
        }
        for name in ("qty", "notional", "limit_price", "stop_price"):
            value = getattr(self, name)
            if value is not None:
                body[name] = decimal_to_wire(value)
        if self.extended_hours:
            body["extended_hours"] = True
        if self.client_order_id is not None:
            body["client_order_id"] = self.client_order_id
        return body
