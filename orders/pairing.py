"""Our open order attempts against the broker's order list (pure: no Django, no I/O).

Order sync and reconciliation both ask the same questions, answered once here:
- which orders the bulk read must cover (:func:`orders_read_after`);
- which attempts the list shows, which are absent long enough to be confirmed by one targeted
  look-up, and which are too young to judge (:func:`pair_attempts_with_orders`);
- what a confirmed absence means (:data:`MISSING_REASON`).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

#: What an attempt whose order Alpaca does not know (404 by client_order_id) is marked with.
MISSING_REASON = "order not found at Alpaca (404 by client_order_id): canceled by hand?"

#: Slack before the oldest attempt when choosing the bulk read's start (clock skew, lag).
READ_SLACK = timedelta(minutes=5)


class _HasClientOrderId(Protocol):
    @property
    def client_order_id(self) -> str: ...


class _Attempt(_HasClientOrderId, Protocol):
    @property
    def created_at(self) -> datetime: ...


A = TypeVar("A", bound=_Attempt)
Ord = TypeVar("Ord", bound=_HasClientOrderId)


@dataclass
class Pairing(Generic[A, Ord]):
    """``paired``: (attempt, its order in the list); ``absent``: not in the list and older than
    the grace period (confirm each by client_order_id before acting); ``too_young``: not in the
    list but placed moments ago (the list may lag: leave them alone)."""

    paired: list[tuple[A, Ord]] = field(default_factory=list)
    absent: list[A] = field(default_factory=list)
    too_young: list[A] = field(default_factory=list)


def pair_attempts_with_orders(
    attempts: Iterable[A],
    orders: Mapping[str, Ord] | Iterable[Ord],
    *,
    now: datetime,
    grace: timedelta,
) -> Pairing[A, Ord]:
    """Split ``attempts`` by whether the broker's ``orders`` (a list, or a map by
    client_order_id) show them; see :class:`Pairing`."""
    by_client_id = orders if isinstance(orders, Mapping) else {o.client_order_id: o for o in orders}
    pairing: Pairing[A, Ord] = Pairing()
    for attempt in attempts:
        order = by_client_id.get(attempt.client_order_id)
        if order is not None:
            pairing.paired.append((attempt, order))
        elif now - attempt.created_at < grace:
            pairing.too_young.append(attempt)
        else:
            pairing.absent.append(attempt)
    return pairing


def orders_read_after(
    *, oldest_attempt_at: datetime | None, now: datetime, lookback: timedelta | None = None
) -> datetime:
    """Where a bulk read of orders must start so every attempt's order is in it: the look-back
    (when given) or earlier, reaching back before the oldest open attempt."""
    candidates = [] if lookback is None else [now - lookback]
    if oldest_attempt_at is not None:
        candidates.append(oldest_attempt_at - READ_SLACK)
    if not candidates:
        raise ValueError("orders_read_after needs a look-back or an attempt")
    return min(candidates)
