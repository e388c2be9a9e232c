"""Targeted order look-ups by client_order_id: the one way an absence is confirmed.

A bulk list can lag (an order placed a moment ago), so every terminal decision about a single
order rests on one look-up: Alpaca's JSON 404 means "no such order"; anything else that fails
raises (the caller fails or defers rather than act on a guess).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from brokerops.alpaca import BrokerNotFound, Order

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway, CallCount

PARALLEL_LOOKUPS = 4
A = TypeVar("A")


def order_or_none(gateway: AlpacaGateway, client_order_id: str) -> Order | None:
    """The order with this client_order_id, or None when Alpaca says it has none (404)."""
    try:
        return gateway.get_order_by_client_id(client_order_id)
    except BrokerNotFound:
        return None


@dataclass
class AbsenceCheck(Generic[A]):
    """``found``: listed late, found by look-up; ``missing``: confirmed absent (404);
    ``unconfirmed``: not looked up (over the budget): left for the next pass."""

    found: list[tuple[A, Order]] = field(default_factory=list)
    missing: list[A] = field(default_factory=list)
    unconfirmed: list[A] = field(default_factory=list)


def orders_confirm_absent(
    attempts: Sequence[A], *, gateway: AlpacaGateway, calls: CallCount | None, budget: int
) -> AbsenceCheck[A]:
    """Look each attempt's order up by client_order_id (a few at a time, at most ``budget``).

    ``attempts`` are objects with a ``client_order_id``. A look-up that fails other than by a
    404 raises :class:`~brokerops.alpaca.BrokerError`.
    """
    check: AbsenceCheck[A] = AbsenceCheck(unconfirmed=list(attempts[budget:]))
    chosen = attempts[:budget]
    if not chosen:
        return check
    initializer = calls.include_current_thread if calls is not None else None
    with ThreadPoolExecutor(PARALLEL_LOOKUPS, initializer=initializer) as pool:
        futures = [
            pool.submit(order_or_none, gateway, attempt.client_order_id)  # type: ignore[attr-defined]
            for attempt in chosen
        ]
        for attempt, future in zip(chosen, futures, strict=True):
            order = future.result()
            if order is None:
                check.missing.append(attempt)
            else:
                check.found.append((attempt, order))
    return check
