"""Targeted look-ups that confirm a finding before a terminal action, bounded per run.

The bulk reads can lag (a position that moved a moment ago, an order just placed), so an orphan
is confirmed by one position look-up per symbol, and an order missing from the list by one
look-up by client_order_id. The look-ups run a few at a time (the shared rate limiter still
paces them) and count towards the run's API calls.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from brokerops.alpaca import BrokerNotFound, Order
from orders.services.lookups import PARALLEL_LOOKUPS, order_or_none

from .diff import Finding, ReconciliationErrors

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway, CallCount


@dataclass
class Lookups:
    """What the look-ups found; a key that is absent was not looked up (budget spent)."""

    position_absent: dict[str, bool] = field(default_factory=dict)  # symbol_key -> 404?
    orders: dict[str, Order | None] = field(default_factory=dict)  # client_order_id -> order


def confirm_findings(
    findings: Sequence[Finding], *, gateway: AlpacaGateway, calls: CallCount, budget: int
) -> Lookups:
    """Confirm orphans and missing orders, at most ``budget`` look-ups in all.

    A look-up that fails (not a 404) raises: the run fails rather than act on a guess.
    """
    symbols: list[str] = []
    client_ids: list[str] = []
    for finding in findings:
        if finding.kind is ReconciliationErrors.ORPHAN_POSITION:
            if finding.symbol not in symbols:
                symbols.append(finding.symbol)
        elif finding.kind is ReconciliationErrors.ORDER_NOT_FOUND:
            client_ids.append(finding.client_order_id)
    symbols = symbols[:budget]
    client_ids = client_ids[: max(0, budget - len(symbols))]

    def position_absent(symbol: str) -> bool:
        try:
            gateway.get_position(symbol)
        except BrokerNotFound:
            return True
        return False

    def order_look_up(client_order_id: str) -> Order | None:
        return order_or_none(gateway, client_order_id)

    lookups = Lookups()
    if not symbols and not client_ids:
        return lookups
    with ThreadPoolExecutor(PARALLEL_LOOKUPS, initializer=calls.include_current_thread) as pool:
        absent = _map(pool, position_absent, symbols)
        found = _map(pool, order_look_up, client_ids)
        lookups.position_absent = dict(zip(symbols, absent(), strict=True))
        lookups.orders = dict(zip(client_ids, found(), strict=True))
    return lookups


def _map(pool: ThreadPoolExecutor, fn: Callable, items: list) -> Callable[[], list]:
    futures = [pool.submit(fn, item) for item in items]
    return lambda: [f.result() for f in futures]
