"""The signal's vocabulary and its parsed forms: the enums, `Signal`, `InvalidSignal`, and the
form of a signal id in an audit column (`audit_signal_id`).

Pure: no I/O, no database, no settings. `brokerops.intent.schema` builds these from documents
(`parse_signal`) and re-exports them, so most code imports them from there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar

from brokerops.fields import SIGNAL_ID_MAX


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

#: Firestore's limit on a document id: 1,500 bytes of UTF-8 (see `brokerops.intent.store`).
DOCUMENT_ID_MAX_BYTES = 1500

#: Prefix of the hashed form of a signal id in audit columns (see `audit_signal_id`).
AUDIT_ID_HASH_PREFIX = "sha256:"
#: Length of that form: the prefix and 64 hex digits.
AUDIT_ID_HASHED_LENGTH = len(AUDIT_ID_HASH_PREFIX) + 64

#: Fields a status transition may set besides `status`, `status_reason` and `updated_at`.
TRANSITION_WRITABLE_FIELDS = frozenset(
    # ``symbol`` and ``followed_activities``: a signal following a corporate action
    # (`brokerops.intent.follow`, docs/design.md section 18.4).
    {"client_order_id", "alpaca_order_id", "filled_qty", "symbol", "followed_activities"}
)


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
    account: str | None = None
    """The account the document names (docs/design.md section 16); None: the default account.
    Whether it is configured is the reader's question (`brokerops.intent.store.AccountScope`)."""
    followed_activities: tuple[str, ...] = ()
    """Alpaca's ids of the account activities this signal's expected holding has followed
    (a split, a merger, a posted coin fee: `brokerops.intent.follow`), each followed once."""

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
            elif isinstance(value, tuple):
                value = list(value)
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
    def raw_account(self) -> str | None:
        """The document's `account` if it is a non-empty string, else None."""
        value = self.raw.get("account")
        return value if isinstance(value, str) and value else None

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
        raise TypeError(f"signal id must be a string, not {type(signal_id).__name__}")
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
