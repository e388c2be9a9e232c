"""The signal document schema: enums, the parsed `Signal`, and a parser that never raises.

Pure: no Django, no I/O. Everything that reads a signal document (both stores, the loader command,
reconciliation) goes through `parse_signal`, so a document means the same thing everywhere.

Parsing rules, in short (`parse_signal` lists every violated rule, not just the first):

- required: `symbol`, `side`, `status`, `order_type`, and exactly one of `qty` / `notional`;
- `status` must be one of `SignalStatus` exactly (upper-case): it is the field the stores query
  on, so a near miss such as ``"active"`` is reported rather than guessed;
- `side`, `order_type` and `time_in_force` are accepted in any case and normalised to lower-case;
- quantities and prices may be int, float, `Decimal` or a numeric string; floats go through
  ``str()`` so ``0.1`` becomes ``Decimal("0.1")``; booleans, NaN, infinities, zero and negative
  values are rejected;
- `limit` and `stop_limit` need `limit_price`, `stop` and `stop_limit` need `stop_price`; a price
  the order type does not use is rejected (ambiguous intent);
- `created_at` / `updated_at` may be timezone-aware datetimes (Firestore timestamps included) or
  ISO 8601 strings with an offset; naive values are rejected;
- a field that is absent and a field that is ``null`` mean the same;
- fields the schema does not know are ignored, so producers can add fields without breaking runs.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, ClassVar

from brokerops.symbols import symbol_key


class SignalStatus(StrEnum):
    """Lifecycle of a signal: PENDING -> SUBMITTED -> ACTIVE -> CLOSED, plus terminal exits.

    `SignalStatus.TERMINAL` is the frozenset of statuses a signal never leaves in normal operation.
    """

    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    ACTIVE = "ACTIVE"
    CLOSED = "CLOSED"
    CLOSED_MANUAL = "CLOSED_MANUAL"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"

    TERMINAL: ClassVar[frozenset[SignalStatus]]

    @property
    def is_terminal(self) -> bool:
        return self in SignalStatus.TERMINAL


SignalStatus.TERMINAL = frozenset(
    {
        SignalStatus.CLOSED,
        SignalStatus.CLOSED_MANUAL,
        SignalStatus.CANCELED,
        SignalStatus.REJECTED,
    }
)


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"


#: Alpaca's time-in-force values (lower-case).
TIME_IN_FORCE_VALUES = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})

#: Quote currencies that mark a pair as crypto: ``BTC-USD`` is rewritten to ``BTC/USD``.
CRYPTO_QUOTES = frozenset({"USD", "USDT", "USDC", "BTC"})

#: Alpaca limits client_order_id to 128 characters.
CLIENT_ORDER_ID_MAX_LENGTH = 128

#: Fields a status transition may set besides `status`, `status_reason` and `updated_at`.
TRANSITION_WRITABLE_FIELDS = frozenset({"client_order_id", "alpaca_order_id"})

_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9./-]*$")
_SYMBOL_MAX_LENGTH = 32


normalize_symbol = symbol_key  # the schema's name for the shared comparison form


def _order_symbol(symbol: str) -> str:
    """The symbol as an order is sent: upper-case; crypto ``BASE-QUOTE`` becomes ``BASE/QUOTE``.

    A concatenated pair (``BTCUSD``) is left alone: it cannot be told from an equity ticker
    without the asset list, and Alpaca accepts it for crypto orders.
    """
    upper = symbol.strip().upper()
    base, dash, quote = upper.partition("-")
    if dash and quote in CRYPTO_QUOTES and base.isalnum():
        return f"{base}/{quote}"
    return upper


@dataclasses.dataclass(frozen=True, slots=True)
class Signal:
    """One parsed, valid signal document. Build it with `parse_signal`, not by hand."""

    id: str
    symbol: str
    symbol_key: str
    side: Side
    qty: Decimal | None
    notional: Decimal | None
    order_type: OrderType
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str | None
    timeout_seconds: int | None
    extended_hours: bool
    status: SignalStatus
    client_order_id: str | None
    alpaca_order_id: str | None
    created_at: datetime | None
    updated_at: datetime | None
    status_reason: str | None

    @property
    def signed_qty(self) -> Decimal | None:
        """`qty`, negative for a sell; None for a notional signal (its quantity is unknown)."""
        if self.qty is None:
            return None
        return -self.qty if self.side is Side.SELL else self.qty

    def as_json_dict(self) -> dict[str, Any]:
        """JSON-ready dict: decimals as strings, datetimes as ISO 8601, enums as their values."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, StrEnum):
                value = value.value
            out[field.name] = value
        return out


@dataclasses.dataclass(frozen=True, slots=True)
class InvalidSignal:
    """A document that does not parse. `reasons` lists every problem found; `raw` is a copy."""

    id: str
    reasons: tuple[str, ...]
    raw: dict[str, Any]

    @property
    def raw_status(self) -> str | None:
        """The document's `status` if it is a string (possibly not a known status), else None."""
        value = self.raw.get("status")
        return value if isinstance(value, str) else None

    @property
    def raw_symbol(self) -> str | None:
        """The document's `symbol` if it is a string, else None (for reports)."""
        value = self.raw.get("symbol")
        return value if isinstance(value, str) else None

    def as_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reasons": list(self.reasons),
            "status": self.raw_status,
            "symbol": self.raw_symbol,
        }


def _type_name(value: object) -> str:
    return type(value).__name__


def _decimal(name: str, value: object, reasons: list[str]) -> Decimal | None:
    """A positive, finite Decimal from int/float/Decimal/numeric str; appends a reason otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        reasons.append(f"{name} must be a number, not a boolean")
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            reasons.append(f"{name} must be finite, not {value!r}")
            return None
        number = Decimal(str(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            reasons.append(f"{name} is not numeric: {value[:40]!r}")
            return None
    else:
        reasons.append(f"{name} must be a number, not {_type_name(value)}")
        return None
    if not number.is_finite():
        reasons.append(f"{name} must be finite, not {value!r}")
        return None
    if number <= 0:
        reasons.append(f"{name} must be positive, not {number}")
        return None
    return number


def _enum(name: str, value: object, enum: type[StrEnum], reasons: list[str], *, fold: bool):
    if value is None:
        reasons.append(f"{name} is missing")
        return None
    if not isinstance(value, str):
        reasons.append(f"{name} must be a string, not {_type_name(value)}")
        return None
    key = value.strip().lower() if fold else value
    try:
        return enum(key)
    except ValueError:
        allowed = ", ".join(member.value for member in enum)
        reasons.append(f"unknown {name} {value[:40]!r} (expected one of {allowed})")
        return None


def _optional_str(name: str, value: object, reasons: list[str], max_length: int = 1000):
    if value is None:
        return None
    if not isinstance(value, str):
        reasons.append(f"{name} must be a string, not {_type_name(value)}")
        return None
    if len(value) > max_length:
        reasons.append(f"{name} is longer than {max_length} characters")
        return None
    return value


def _datetime(name: str, value: object, reasons: list[str]) -> datetime | None:
    """Aware datetime from a datetime (Firestore's DatetimeWithNanoseconds is one) or ISO str."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            reasons.append(f"{name} is not an ISO 8601 timestamp: {value[:40]!r}")
            return None
    else:
        reasons.append(f"{name} must be a timestamp, not {_type_name(value)}")
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        reasons.append(f"{name} has no timezone")
        return None
    return parsed


def _symbol(value: object, reasons: list[str]) -> tuple[str, str] | None:
    if value is None:
        reasons.append("symbol is missing")
        return None
    if not isinstance(value, str):
        reasons.append(f"symbol must be a string, not {_type_name(value)}")
        return None
    order_symbol = _order_symbol(value)
    if not order_symbol:
        reasons.append("symbol is empty")
        return None
    if len(order_symbol) > _SYMBOL_MAX_LENGTH or not _SYMBOL_RE.match(order_symbol):
        reasons.append(f"symbol {value[:40]!r} is not a ticker or a BASE/QUOTE pair")
        return None
    return order_symbol, normalize_symbol(order_symbol)


def _timeout_seconds(value: object, reasons: list[str]) -> int | None:
    if value is None:
        return None
    number: int | None = None
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value.strip())
    if number is None:
        reasons.append(f"timeout_seconds must be a whole number of seconds, not {value!r}")
        return None
    if number <= 0:
        reasons.append(f"timeout_seconds must be positive, not {number}")
        return None
    return number


def parse_signal(doc_id: object, data: object) -> Signal | InvalidSignal:
    """Parse one stored document into a `Signal`, or an `InvalidSignal` listing every problem.

    Never raises, whatever `doc_id` and `data` are (see the module docstring for the rules): one
    broken document must not stop a run that reads thousands.
    """
    try:
        return _parse(doc_id, data)
    except Exception as exc:  # noqa: BLE001 - reported as an invalid document, not swallowed
        raw = dict(data) if isinstance(data, dict) else {}
        reason = f"document could not be parsed ({type(exc).__name__}: {exc})"
        return InvalidSignal(id=str(doc_id), reasons=(reason,), raw=raw)


def _parse(doc_id: object, data: object) -> Signal | InvalidSignal:
    reasons: list[str] = []
    if isinstance(doc_id, str) and doc_id:
        signal_id = doc_id
    else:
        signal_id = str(doc_id)
        reasons.append(f"document id must be a non-empty string, not {doc_id!r}")
    if not isinstance(data, Mapping):
        reasons.append(f"document must be a map of fields, not {_type_name(data)}")
        return InvalidSignal(id=signal_id, reasons=tuple(reasons), raw={})
    raw = dict(data)

    symbols = _symbol(raw.get("symbol"), reasons)
    side = _enum("side", raw.get("side"), Side, reasons, fold=True)
    status = _enum("status", raw.get("status"), SignalStatus, reasons, fold=False)
    order_type = _enum("order_type", raw.get("order_type"), OrderType, reasons, fold=True)

    qty = _decimal("qty", raw.get("qty"), reasons)
    notional = _decimal("notional", raw.get("notional"), reasons)
    has_qty, has_notional = raw.get("qty") is not None, raw.get("notional") is not None
    if has_qty and has_notional:
        reasons.append("qty and notional are both set (exactly one is allowed)")
    elif not has_qty and not has_notional:
        reasons.append("qty or notional is required")

    limit_price = _decimal("limit_price", raw.get("limit_price"), reasons)
    stop_price = _decimal("stop_price", raw.get("stop_price"), reasons)
    if order_type is not None:
        needs_limit = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        for name, needed in (("limit_price", needs_limit), ("stop_price", needs_stop)):
            present = raw.get(name) is not None
            if needed and not present:
                reasons.append(f"{name} is required for a {order_type.value} order")
            elif present and not needed:
                reasons.append(f"{name} is not used by a {order_type.value} order")

    time_in_force = _optional_str("time_in_force", raw.get("time_in_force"), reasons)
    if time_in_force is not None:
        time_in_force = time_in_force.strip().lower()
        if time_in_force not in TIME_IN_FORCE_VALUES:
            allowed = ", ".join(sorted(TIME_IN_FORCE_VALUES))
            reasons.append(f"unknown time_in_force {time_in_force[:40]!r} (expected {allowed})")

    timeout_seconds = _timeout_seconds(raw.get("timeout_seconds"), reasons)

    extended_hours = raw.get("extended_hours")
    if extended_hours is None:
        extended_hours = False
    elif not isinstance(extended_hours, bool):
        reasons.append(f"extended_hours must be true or false, not {extended_hours!r}")

    client_order_id = _optional_str(
        "client_order_id", raw.get("client_order_id"), reasons, CLIENT_ORDER_ID_MAX_LENGTH
    )
    alpaca_order_id = _optional_str("alpaca_order_id", raw.get("alpaca_order_id"), reasons)
    status_reason = _optional_str("status_reason", raw.get("status_reason"), reasons, 10_000)
    created_at = _datetime("created_at", raw.get("created_at"), reasons)
    updated_at = _datetime("updated_at", raw.get("updated_at"), reasons)

    if reasons:
        return InvalidSignal(id=signal_id, reasons=tuple(reasons), raw=raw)
    assert symbols is not None and side is not None and status is not None
    assert order_type is not None
    return Signal(
        id=signal_id,
        symbol=symbols[0],
        symbol_key=symbols[1],
        side=side,
        qty=qty,
        notional=notional,
        order_type=order_type,
        limit_price=limit_price,
        stop_price=stop_price,
        time_in_force=time_in_force,
        timeout_seconds=timeout_seconds,
        extended_hours=bool(extended_hours),
        status=status,
        client_order_id=client_order_id,
        alpaca_order_id=alpaca_order_id,
        created_at=created_at,
        updated_at=updated_at,
        status_reason=status_reason,
    )
