"""The signal document schema: enums, the parsed `Signal`, and a parser that never raises.

Pure: no I/O, no database, no settings (the one Django-side import is the shared
`CLIENT_ORDER_ID_MAX` constant of `brokerops.fields`). Everything that reads a signal document
(both stores, the loader command, reconciliation) goes through `parse_signal`, so a document means
the same thing everywhere.

Parsing rules, in short (`parse_signal` lists every violated rule, not just the first):

- required: `symbol`, `side`, `status`, `order_type`, and exactly one of `qty` / `notional`;
- `status` must be one of `SignalStatus` exactly (upper-case): it is the field the stores query
  on, so a near miss such as ``"active"`` is reported rather than guessed;
- `side`, `order_type` and `time_in_force` are accepted in any case and normalised to lower-case;
- quantities and prices (`qty`, `notional`, `limit_price`, `stop_price`) may be int, float,
  `Decimal` or a numeric string; floats go through ``str()`` so ``0.1`` becomes ``Decimal("0.1")``.
  They have bounds (docs/design.md section 3): finite, positive, no finer than 1e-9 (a digit past
  the ninth decimal place: ``"1e-10"``, ``"1.0000000001"``; trailing zeros are fine) and less than
  1e12 in magnitude. A numeric string is ASCII decimal notation (``"12.5"``, ``"+1E3"``, ``".5"``)
  of at most `NUMBER_MAX_CHARS` characters: no digit-group underscores or non-ASCII digits (which
  `Decimal` would take). Booleans, NaN and infinities are rejected. None of this raises or takes
  long, whatever the input (``"1e999999999"``, a 10 MB digit string, a 5,000-digit integer): the
  checks use integer comparisons and exact `Decimal` operations in a local context with every trap
  off;
- `timeout_seconds` is a whole, positive number of seconds below 1e12;
- `limit` and `stop_limit` need `limit_price`, `stop` and `stop_limit` need `stop_price`; a price
  the order type does not use is rejected (ambiguous intent);
- `created_at` / `updated_at` may be timezone-aware datetimes (Firestore timestamps included) or
  ISO 8601 strings with an offset; naive values are rejected;
- a field that is absent and a field that is ``null`` mean the same;
- fields the schema does not know are ignored, so producers can add fields without breaking runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Context, Decimal
from enum import StrEnum
from typing import Any, ClassVar

from brokerops.fields import CLIENT_ORDER_ID_MAX, SIGNAL_ID_MAX
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

#: Quantities, notionals and prices must be below this in magnitude (docs/design.md section 3).
NUMBER_MAX = Decimal(10) ** 12
#: ... and no finer than this: nothing past the ninth decimal place (the audit columns' scale).
NUMBER_RESOLUTION = Decimal("1e-9")
#: Longest numeric string considered (a longer one is not a number a producer means).
NUMBER_MAX_CHARS = 100

#: Firestore's limit on a document id: 1,500 bytes of UTF-8 (see `brokerops.intent.store`).
DOCUMENT_ID_MAX_BYTES = 1500

#: Prefix of the hashed form of a signal id in audit columns (see `audit_signal_id`).
AUDIT_ID_HASH_PREFIX = "sha256:"
#: Length of that form: the prefix and 64 hex digits.
AUDIT_ID_HASHED_LENGTH = len(AUDIT_ID_HASH_PREFIX) + 64

#: Fields a status transition may set besides `status`, `status_reason` and `updated_at`.
TRANSITION_WRITABLE_FIELDS = frozenset({"client_order_id", "alpaca_order_id", "filled_qty"})

_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9./-]*$")
_SYMBOL_MAX_LENGTH = 32
# ASCII decimal notation only (`Decimal` also takes "1_000", Arabic-Indic digits and NaN payloads).
_NUMBER_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NOT_FINITE_RE = re.compile(r"[+-]?(?:s?nan[0-9]*|inf|infinity)", re.IGNORECASE)
# Exact work on bounded numbers: with |x| < 1e12 quantizing to 1e-9 needs at most 21 digits.
_EXACT = Context(prec=40, traps=[])


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
    version: str | None = None
    """The stored document's version when read from a store (opaque: Firestore's update time,
    the local store's revision); pass it as `Transition.expected_version`. None otherwise."""
    filled_qty: Decimal | None = None
    """What the signal's order received, written by brokerops when the fill moves it to ACTIVE
    (a partial fill that ended, a notional order); None until then."""

    @property
    def signed_qty(self) -> Decimal | None:
        """The holding this signal stands for, negative for a sell: what its order received
        (`filled_qty`) once recorded, else `qty`; None for a notional signal not filled yet."""
        qty = self.filled_qty if self.filled_qty is not None else self.qty
        if qty is None:
            return None
        return -qty if self.side is Side.SELL else qty

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
    """A document that does not parse. `reasons` lists every problem found; `raw` is a copy;
    `version` as for `Signal`."""

    id: str
    reasons: tuple[str, ...]
    raw: dict[str, Any]
    version: str | None = None

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
            "version": self.version,
        }


def audit_signal_id(signal_id: str, max_length: int = SIGNAL_ID_MAX) -> str:
    """The form of a signal id for an audit column of `max_length` characters.

    Audit columns hold any id Firestore accepts whole (`SIGNAL_ID_MAX` characters), so this is
    the id itself, searchable as written (a single space included), except where the column
    cannot hold it: longer than `max_length`, or carrying a NUL (PostgreSQL text cannot store
    one). Then it is ``"sha256:"`` followed by the 64 lower-case hex digits of the SHA-256 of
    its UTF-8 bytes (71 characters); an id that itself starts with ``"sha256:"`` is hashed too,
    so a plain id never looks like a hashed one. The full id belongs in the row's payload.
    Pure; never raises for a string (a lone surrogate included). `max_length` must leave room
    for the hashed form.
    """
    if not isinstance(signal_id, str):
        raise TypeError(f"signal id must be a string, not {_type_name(signal_id)}")
    if max_length < AUDIT_ID_HASHED_LENGTH:
        raise ValueError(f"max_length must be at least {AUDIT_ID_HASHED_LENGTH}, not {max_length}")
    if (
        0 < len(signal_id) <= max_length
        and "\x00" not in signal_id
        and not signal_id.startswith(AUDIT_ID_HASH_PREFIX)
        and signal_id.encode("utf-8", "surrogatepass").decode("utf-8", "replace") == signal_id
    ):
        return signal_id
    digest = hashlib.sha256(signal_id.encode("utf-8", "surrogatepass")).hexdigest()
    return AUDIT_ID_HASH_PREFIX + digest


def _type_name(value: object) -> str:
    return type(value).__name__


def _shown(value: object) -> str:
    """A short rendering of a value for a reason (never the whole of a huge input)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**40:
        return f"an integer of {value.bit_length()} bits"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: Numeric strings already accepted by `_decimal` -> their Decimal (immutable, so shared).
#: Signal documents repeat the same few quantities; the cache stops growing when full.
_NUMBER_CACHE: dict[str, Decimal] = {}
_NUMBER_CACHE_MAX = 20_000


def _decimal(name: str, value: object, reasons: list[str]) -> Decimal | None:
    """A bounded, positive Decimal from int/float/Decimal/numeric str (see the module docstring);
    appends one reason naming the field otherwise."""
    if value is None:
        return None
    if type(value) is str:
        cached = _NUMBER_CACHE.get(value)
        if cached is not None:
            return cached
        number = _checked_decimal(name, value, reasons)
        if number is not None and len(_NUMBER_CACHE) < _NUMBER_CACHE_MAX:
            _NUMBER_CACHE[value] = number
        return number
    return _checked_decimal(name, value, reasons)


def _checked_decimal(name: str, value: object, reasons: list[str]) -> Decimal | None:
    if isinstance(value, bool):
        reasons.append(f"{name} must be a number, not a boolean")
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        if value <= 0:
            reasons.append(f"{name} must be positive, not {_shown(value)}")
            return None
        if value >= NUMBER_MAX:  # before Decimal(): a 5,000-digit int stays an int compare
            reasons.append(f"{name} must be less than 1e12, not {_shown(value)}")
            return None
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            reasons.append(f"{name} must be finite, not {value!r}")
            return None
        number = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > NUMBER_MAX_CHARS:
            reasons.append(
                f"{name} is too long to be a number ({len(text)} characters, "
                f"at most {NUMBER_MAX_CHARS}): {_shown(text)}"
            )
            return None
        if _NOT_FINITE_RE.fullmatch(text):
            reasons.append(f"{name} must be finite, not {_shown(value)}")
            return None
        if not _NUMBER_RE.fullmatch(text):
            reasons.append(f"{name} is not numeric: {_shown(value)}")
            return None
        try:
            number = Decimal(text)
        except ArithmeticError:  # an exponent beyond what Decimal represents
            reasons.append(f"{name} is out of range: {_shown(value)}")
            return None
    else:
        reasons.append(f"{name} must be a number, not {_type_name(value)}")
        return None
    if not number.is_finite():
        reasons.append(f"{name} must be finite, not {_shown(value)}")
        return None
    if number <= 0:  # an exact comparison: no context, no trap
        reasons.append(f"{name} must be positive, not {_shown(number)}")
        return None
    if number.adjusted() >= 12:  # the exponent of the leading digit: exact, whatever the size
        reasons.append(f"{name} must be less than 1e12, not {_shown(number)}")
        return None
    if number.quantize(NUMBER_RESOLUTION, context=_EXACT) != number:
        reasons.append(f"{name} is finer than 1e-9: {_shown(number)}")
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
    member = enum._value2member_map_.get(key)  # what enum(key) looks up first
    if member is not None:
        return member
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
    elif isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit():  # "²".isdigit() is true too
            if len(text) > 12:
                reasons.append(f"timeout_seconds must be less than 1e12, not {_shown(value)}")
                return None
            number = int(text)
    if number is None:
        reasons.append(f"timeout_seconds must be a whole number of seconds, not {_shown(value)}")
        return None
    if number <= 0:
        reasons.append(f"timeout_seconds must be positive, not {_shown(number)}")
        return None
    if number >= NUMBER_MAX:
        reasons.append(f"timeout_seconds must be less than 1e12, not {_shown(number)}")
        return None
    return number


def parse_signal(
    doc_id: object, data: object, *, version: str | None = None
) -> Signal | InvalidSignal:
    """Parse one stored document into a `Signal`, or an `InvalidSignal` listing every problem.

    `version` is the stored document's version, carried as is (stores pass it; see
    `Signal.version`). Never raises, whatever `doc_id` and `data` are (see the module docstring
    for the rules): one broken document must not stop a run that reads thousands.
    """
    try:
        return _parse(doc_id, data, version)
    except Exception as exc:  # noqa: BLE001 - reported as an invalid document, not swallowed
        raw = dict(data) if isinstance(data, dict) else {}
        reason = f"document could not be parsed ({type(exc).__name__}: {str(exc)[:200]})"
        return InvalidSignal(id=str(doc_id), reasons=(reason,), raw=raw, version=version)


def _parse(doc_id: object, data: object, version: str | None) -> Signal | InvalidSignal:
    reasons: list[str] = []
    if isinstance(doc_id, str) and doc_id:
        signal_id = doc_id
    else:
        signal_id = str(doc_id)
        reasons.append(f"document id must be a non-empty string, not {doc_id!r}")
    if not isinstance(data, Mapping):
        reasons.append(f"document must be a map of fields, not {_type_name(data)}")
        return InvalidSignal(id=signal_id, reasons=tuple(reasons), raw={}, version=version)
    # A copy only for a document that does not parse (`InvalidSignal.raw`): a plain dict is read
    # as it is, anything else (a Mapping) once, through dict().
    raw = data if type(data) is dict else dict(data)

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
    filled_qty = _decimal("filled_qty", raw.get("filled_qty"), reasons)
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
        "client_order_id", raw.get("client_order_id"), reasons, CLIENT_ORDER_ID_MAX
    )
    alpaca_order_id = _optional_str("alpaca_order_id", raw.get("alpaca_order_id"), reasons)
    status_reason = _optional_str("status_reason", raw.get("status_reason"), reasons, 10_000)
    created_at = _datetime("created_at", raw.get("created_at"), reasons)
    updated_at = _datetime("updated_at", raw.get("updated_at"), reasons)

    if reasons:
        return InvalidSignal(id=signal_id, reasons=tuple(reasons), raw=dict(raw), version=version)
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
        version=version,
        filled_qty=filled_qty,
    )
