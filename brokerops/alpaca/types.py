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


#: Alpaca's activity types (as sent, older codes included) -> the family the ledger acts on
#: (docs/design.md section 18). A type not listed is ``OTHER``: stored and shown, never a failure.
ACTIVITY_FAMILIES: dict[str, str] = {
    "FILL": "FILL",
    "TRD": "FILL",  # the Activity SSE's name for a fill
    "SPLIT": "SPLIT",
    "SSP": "SPLIT",  # older records of a split
    "SPIN": "SPIN",
    "SSO": "SPIN",  # older records of a spin-off
    "MA": "MA",
    "NC": "NC",
    "CFEE": "CFEE",
    "FEE": "FEE",
    "JNLS": "JNLS",
    "REORG": "REORG",
    "CSD": "CASH",
    "CSW": "CASH",
    "CSR": "CASH",
    "JNLC": "CASH",
    "INT": "CASH",
    "ACATC": "CASH",
}
#: Families that move a holding without an order of ours.
POSITION_FAMILIES = frozenset({"SPLIT", "SPIN", "MA", "NC", "CFEE", "JNLS", "REORG"})


@dataclass(frozen=True, slots=True)
class Activity:
    """One account activity (``GET /v2/account/activities``), in the shape the ledger stores.

    ``id`` is Alpaca's (unique per account; the read's cursor). ``activity_type`` is as sent
    (``FILL``, ``SPLIT``, ``SSP``, an unknown ``XYZ`` ...); ``sub_type`` is the fill's ``type``
    (``fill``/``partial_fill``) or the non-trade ``activity_sub_type`` (``FSPLIT``, ``RSPLIT``,
    ``CDIV`` ...), else None. ``qty`` is signed as Alpaca sends it (a split's REMOVE leg and a
    CFEE are negative; a fill's qty is positive, its ``side`` says which way) and exact at any
    precision; ``time`` is the execution time, else the activity's date at midnight UTC. Every
    field may be None but ``id``, ``activity_type`` and ``raw`` (the body as received).
    """

    id: str
    activity_type: str
    sub_type: str | None
    symbol: str | None
    qty: Decimal | None
    price: Decimal | None
    net_amount: Decimal | None
    time: datetime | None
    order_id: str | None
    side: str | None
    status: str | None
    description: str | None
    raw: dict[str, Any] = field(repr=False, compare=False, hash=False)

    @property
    def family(self) -> str:
        """``FILL``, ``SPLIT``, ``SPIN``, ``MA``, ``NC``, ``CFEE``, ``FEE``, ``JNLS``, ``REORG``,
        ``DIV`` (every ``DIV*``), ``CASH`` or ``OTHER`` (a type this code does not know)."""
        kind = self.activity_type.upper()
        family = ACTIVITY_FAMILIES.get(kind)
        if family is not None:
            return family
        return "DIV" if kind.startswith("DIV") else "OTHER"

    @property
    def known(self) -> bool:
        return self.family != "OTHER"

    @property
    def moves_position(self) -> bool:
        """A corporate action, journal or coin fee: the holding changes without our order."""
        return self.family in POSITION_FAMILIES

    @property
    def leg(self) -> str | None:
        """A split's (or merger's, name change's) side: ``REMOVE`` (the old quantity leaves) or
        ``ADD`` (the new one arrives); the description's word when it has one, else the sign."""
        words = (self.description or "").split(",", 1)[0].strip().upper()
        if words in ("REMOVE", "ADD"):
            return words
        if self.qty is None or not self.qty:
            return None
        return "REMOVE" if self.qty < 0 else "ADD"

    @property
    def symbol_key(self) -> str | None:
        return symbol_key(self.symbol) if self.symbol else None
