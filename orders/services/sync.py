"""Order sync: refresh open attempts from the broker in bulk."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from brokerops.boundaries import broker_gateway, signal_store
from brokerops.intent.store import SignalStore
from orders.models import OrderAttempt
from orders.pairing import MISSING_REASON, orders_read_after, pair_attempts_with_orders

from .broker_state import order_attempts_apply_broker_orders, order_attempts_mark_missing
from .lookups import orders_confirm_absent

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)

# Attempts whose outcome the broker decides. CREATED and UNKNOWN belong to the submit cycle,
# which resolves them by client_order_id before anything is (re)sent.
SYNCED_STATUSES = (OrderAttempt.Status.OPEN, OrderAttempt.Status.PARTIALLY_FILLED)


@dataclass
class SyncResult:
    attempts_seen: int = 0
    orders_listed: int = 0
    api_calls: int = 0
    changes: Counter = field(default_factory=Counter)  # status_to -> count
    missing: int = 0
    unconfirmed: int = 0

    def counts(self) -> dict[str, int]:
        return {
            "attempts_seen": self.attempts_seen,
            "orders_listed": self.orders_listed,
            "api_calls": self.api_calls,
            "updated": sum(self.changes.values()),
            "missing": self.missing,
            "unconfirmed": self.unconfirmed,
            **{f"now_{status}": n for status, n in sorted(self.changes.items())},
        }


def order_attempts_sync(
    *,
    attempt_ids: Sequence[int] | None = None,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
    actor: str = "order-sync",
) -> SyncResult:
    """Refresh open attempts (or the given ones) from one paginated bulk read of orders.

    An attempt absent from the list (and older than ``ORDER_GRACE_S``) is looked up by
    client_order_id, at most ``RECONCILE_MAX_CONFIRMATIONS`` per call; a 404 marks it MISSING
    (canceled by hand, most likely) and its signal CANCELED. Safe to run concurrently and to
    repeat: applying the same broker state twice changes nothing.
    """
    gateway = gateway or broker_gateway()
    store = store or signal_store()
    attempts_qs = OrderAttempt.objects.all()
    if attempt_ids is None:
        attempts_qs = attempts_qs.filter(status__in=SYNCED_STATUSES)
    else:
        attempts_qs = attempts_qs.filter(pk__in=list(attempt_ids))
    attempts = list(attempts_qs.order_by("created_at"))
    result = SyncResult(attempts_seen=len(attempts))
    if not attempts:
        return result
    now = timezone.now()
    with gateway.count_calls(current_thread_only=True) as calls:
        after = orders_read_after(oldest_attempt_at=attempts[0].created_at, now=now)
        orders = gateway.list_orders(status="all", after=after)
        result.orders_listed = len(orders)
        pairing = pair_attempts_with_orders(
            attempts, orders, now=now, grace=timedelta(seconds=settings.ORDER_GRACE_S)
        )
        check = orders_confirm_absent(
            pairing.absent,
            gateway=gateway,
            calls=calls,
            budget=settings.RECONCILE_MAX_CONFIRMATIONS,
        )
        result.unconfirmed = len(check.unconfirmed)
    result.api_calls = calls.total
    pairs = pairing.paired + check.found
    for change in order_attempts_apply_broker_orders(pairs=pairs, store=store, actor=actor):
        result.changes[change.status_to] += 1
    if check.missing:
        order_attempts_mark_missing(
            attempts=check.missing, store=store, actor=actor, why=MISSING_REASON
        )
        result.missing = len(check.missing)
    return result
