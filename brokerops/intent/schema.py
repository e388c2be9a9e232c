"""The signal document schema: a parser that never raises, and the names the project imports.

The enums and the parsed forms (`Signal`, `InvalidSignal`, `audit_signal_id`) live in
`brokerops.intent.signal_model`, the number checks in `brokerops.intent.numbers`; this module
re-exports the model's common names. Pure: no I/O, no database, no settings (the one Django-side
import is the shared `CLIENT_ORDER_ID_MAX` constant of `brokerops.fields`). Everything that
reads a signal document (both stores, the loader command, reconciliation) goes through
`parse_signal`, so a document means the same thing everywhere.

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

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from brokerops.accounts import NAME_PATTERN as ACCOUNT_NAME_PATTERN
from brokerops.fields import CLIENT_ORDER_ID_MAX
from brokerops.intent.numbers import decimal_field, timeout_field, type_name
from brokerops.intent.signal_model import (
    CRYPTO_QUOTES,
    TIME_IN_FORCE_VALUES,
    InvalidSignal,
    OrderType,
    Side,
    Signal,
    SignalStatus,
    audit_signal_id,
)
from brokerops.symbols import symbol_key

# The names most of the project imports from here (the model lives in `signal_model`).
__all__ = [
    "InvalidSignal",
    "OrderType",
    "Side",
    "Signal",
    "SignalStatus",
    "audit_signal_id",
    "normalize_symbol",
    "parse_signal",
]

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


def _enum(name: str, value: object, enum: type[StrEnum], reasons: list[str], *, fold: bool):
    if value is None:
        reasons.append(f"{name} is missing")
        return None
    if not isinstance(value, str):
        reasons.append(f"{name} must be a string, not {type_name(value)}")
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
        reasons.append(f"{name} must be a string, not {type_name(value)}")
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
        reasons.append(f"{name} must be a timestamp, not {type_name(value)}")
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
        reasons.append(f"symbol must be a string, not {type_name(value)}")
        return None
    order_symbol = _order_symbol(value)
    if not order_symbol:
        reasons.append("symbol is empty")
        return None
    if len(order_symbol) > _SYMBOL_MAX_LENGTH or not _SYMBOL_RE.match(order_symbol):
        reasons.append(f"symbol {value[:40]!r} is not a ticker or a BASE/QUOTE pair")
        return None
    return order_symbol, normalize_symbol(order_symbol)


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
        reasons.append(f"document must be a map of fields, not {type_name(data)}")
        return InvalidSignal(id=signal_id, reasons=tuple(reasons), raw={}, version=version)
    # A copy only for a document that does not parse (`InvalidSignal.raw`): a plain dict is read
    # as it is, anything else (a Mapping) once, through dict().
    raw = data if type(data) is dict else dict(data)

    # The checks run in the order of the fields below, so the reasons come in that order too.
    symbols = _symbol(raw.get("symbol"), reasons)
    side = _enum("side", raw.get("side"), Side, reasons, fold=True)
    status = _enum("status", raw.get("status"), SignalStatus, reasons, fold=False)
    order_type = _enum("order_type", raw.get("order_type"), OrderType, reasons, fold=True)
    amounts = _amounts(raw, order_type, reasons)
    options = _order_options(raw, reasons)
    records = _records(raw, reasons)

    if reasons:
        return InvalidSignal(id=signal_id, reasons=tuple(reasons), raw=dict(raw), version=version)
    assert symbols is not None and side is not None and status is not None
    assert order_type is not None
    return Signal(
        id=signal_id,
        symbol=symbols[0],
        symbol_key=symbols[1],
        side=side,
        order_type=order_type,
        status=status,
        version=version,
        **amounts,
        **options,
        **records,
    )


def _amounts(
    raw: Mapping[str, Any], order_type: OrderType | None, reasons: list[str]
) -> dict[str, Any]:
    """`qty` / `notional` (exactly one), the prices the order type uses, and `filled_qty`."""
    out = {
        "qty": decimal_field("qty", raw.get("qty"), reasons),
        "notional": decimal_field("notional", raw.get("notional"), reasons),
    }
    has_qty, has_notional = raw.get("qty") is not None, raw.get("notional") is not None
    if has_qty and has_notional:
        reasons.append("qty and notional are both set (exactly one is allowed)")
    elif not has_qty and not has_notional:
        reasons.append("qty or notional is required")

    out["limit_price"] = decimal_field("limit_price", raw.get("limit_price"), reasons)
    out["stop_price"] = decimal_field("stop_price", raw.get("stop_price"), reasons)
    out["filled_qty"] = decimal_field("filled_qty", raw.get("filled_qty"), reasons)
    if order_type is not None:
        needs_limit = order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = order_type in (OrderType.STOP, OrderType.STOP_LIMIT)
        for name, needed in (("limit_price", needs_limit), ("stop_price", needs_stop)):
            present = raw.get(name) is not None
            if needed and not present:
                reasons.append(f"{name} is required for a {order_type.value} order")
            elif present and not needed:
                reasons.append(f"{name} is not used by a {order_type.value} order")
    return out


def _order_options(raw: Mapping[str, Any], reasons: list[str]) -> dict[str, Any]:
    """`time_in_force`, `timeout_seconds` and `extended_hours`."""
    time_in_force = _optional_str("time_in_force", raw.get("time_in_force"), reasons)
    if time_in_force is not None:
        time_in_force = time_in_force.strip().lower()
        if time_in_force not in TIME_IN_FORCE_VALUES:
            allowed = ", ".join(sorted(TIME_IN_FORCE_VALUES))
            reasons.append(f"unknown time_in_force {time_in_force[:40]!r} (expected {allowed})")

    timeout_seconds = timeout_field(raw.get("timeout_seconds"), reasons)

    extended_hours = raw.get("extended_hours")
    if extended_hours is None:
        extended_hours = False
    elif not isinstance(extended_hours, bool):
        reasons.append(f"extended_hours must be true or false, not {extended_hours!r}")
    return {
        "time_in_force": time_in_force,
        "timeout_seconds": timeout_seconds,
        "extended_hours": bool(extended_hours),
    }


def _records(raw: Mapping[str, Any], reasons: list[str]) -> dict[str, Any]:
    """What brokerops and the producer recorded on the document: ids, reason, timestamps."""
    return {
        "client_order_id": _optional_str(
            "client_order_id", raw.get("client_order_id"), reasons, CLIENT_ORDER_ID_MAX
        ),
        "alpaca_order_id": _optional_str("alpaca_order_id", raw.get("alpaca_order_id"), reasons),
        "status_reason": _optional_str("status_reason", raw.get("status_reason"), reasons, 10_000),
        "created_at": _datetime("created_at", raw.get("created_at"), reasons),
        "updated_at": _datetime("updated_at", raw.get("updated_at"), reasons),
        "account": _account(raw.get("account"), reasons),
        "followed_activities": _followed(raw.get("followed_activities"), reasons),
    }


def _followed(value: object, reasons: list[str]) -> tuple[str, ...]:
    """The activities the signal has followed: written by brokerops as one id a line."""
    text = _optional_str("followed_activities", value, reasons, 1_000_000)
    return tuple(line for line in (text or "").splitlines() if line)


def _account(value: object, reasons: list[str]) -> str | None:
    """The account the signal names: an account's name, or None (absent or empty: the default
    account, docs/design.md section 16)."""
    name = _optional_str("account", value, reasons, 100)
    if not name:
        return None
    if not ACCOUNT_NAME_PATTERN.fullmatch(name):
        reasons.append(f"account {name[:40]!r} is not an account name (1-32 of a-z, 0-9, '-')")
        return None
    return name
