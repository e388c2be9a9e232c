"""Deterministic client_order_id: the same signal and leg always give the same id.

That is what makes a resend harmless (Alpaca answers 422 "client_order_id must be unique" and the
order service adopts the earlier order) and what lets reconciliation recognise our orders.
"""

import hashlib
import re

from brokerops.fields import CLIENT_ORDER_ID_MAX as MAX_LENGTH  # Alpaca's limit

LEGS = frozenset({"entry", "exit"})
_READABLE = re.compile(r"[A-Za-z0-9_.:-]+")


def client_order_id_for(*, signal_id: str, leg: str = "entry", prefix: str) -> str:
    """``{prefix}-{signal_id}-{leg}``, or ``{prefix}-h{sha256(signal_id)[:40]}-{leg}`` when that
    would pass 128 characters or carry characters beyond ``[A-Za-z0-9_.:-]``.

    Unambiguous: the prefix has no ``-`` and the leg is what follows the last ``-``, so the
    signal id is what lies between (``parse_client_order_id``).
    """
    if leg not in LEGS:
        raise ValueError(f"leg must be one of {sorted(LEGS)}, not {leg!r}")
    if not prefix or "-" in prefix:
        raise ValueError("CLIENT_ORDER_ID_PREFIX must be non-empty and contain no '-'")
    readable = f"{prefix}-{signal_id}-{leg}"
    if _READABLE.fullmatch(signal_id) and len(readable) <= MAX_LENGTH:
        return readable
    digest = hashlib.sha256(signal_id.encode()).hexdigest()[:40]
    return f"{prefix}-h{digest}-{leg}"[:MAX_LENGTH]


def parse_client_order_id(client_order_id: str, *, prefix: str) -> tuple[str, str] | None:
    """``(signal_id, leg)`` of a readable id this system made, else None (hashed or foreign)."""
    head, sep, rest = client_order_id.partition("-")
    signal_id, sep2, leg = rest.rpartition("-")
    if head != prefix or not sep or not sep2 or leg not in LEGS or not signal_id:
        return None
    if signal_id.startswith("h") and len(signal_id) == 41 and signal_id[1:].isalnum():
        return None  # a hash: the signal id is not recoverable
    return signal_id, leg
