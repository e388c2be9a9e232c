"""The post-send work of accepted orders, done together (docs/design.md section 5).

Once the broker has an order for a signal, its attempt takes the order's state, the signal
moves PENDING -> SUBMITTED on the version its order was sent for (and on when the order is
final already), with their audit rows. The order cycle does this in batches; the watcher on
its own thread while its workers send.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.utils import timezone

from brokerops.intent.store import SignalStore, SignalStoreError
from orders import lifecycle
from orders.models import OrderAttempt, OrderEvent

from .broker_state import (
    attempts_read_current,
    order_attempts_apply_broker_orders,
    signals_follow_attempts,
)
from .conflicts import signals_submitted_after_send
from .context import AcceptedOrder
from .events import order_event_build, order_events_append

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)


def orders_accepted_finish(
    *,
    accepted: Sequence[AcceptedOrder],
    store: SignalStore,
    gateway: AlpacaGateway,
    actor: str,
) -> int:
    """The post-send work of accepted orders, together: each attempt takes its order's state
    (one bulk update; the RESPONSE and STATUS_CHANGED events in one append), the signals move
    PENDING -> SUBMITTED on the version their order was sent for (one `transition_many`: on
    Firestore one read and one batched commit), with their SIGNAL_TRANSITION events in one
    append, then those whose order is final already move on (a market order that filled).
    A signal rewritten meanwhile to ask for another order is a conflict, one withdrawn
    meanwhile gets its order canceled (`conflicts.signals_submitted_after_send`). Returns how
    many signals stand by their order (SUBMITTED).

    A signal store that fails here leaves the signals PENDING with their attempts at the
    broker (an ERROR event on each says so): the next cycle (or watcher) finds the attempt and
    moves the signal; nothing is sent again.
    """
    if not accepted:
        return 0
    by_signal: dict[str, AcceptedOrder] = {}
    for item in accepted:  # one attempt per signal: a repeat would be the same order
        by_signal.setdefault(item.signal.id, item)
    items = list(by_signal.values())
    _attempts_take_orders(items, store=store, actor=actor)
    try:
        standing, moved = signals_submitted_after_send(
            items=items, store=store, gateway=gateway, actor=actor
        )
    except Exception as exc:  # noqa: BLE001 - logged and recorded on each attempt just below
        _signals_not_moved(items, exc, actor=actor)
        return 0
    # A fill the stream or a sync applied meanwhile found the signal PENDING and could not move
    # it: read the attempts as stored now, after the move to SUBMITTED (a later fill moves the
    # signal itself), so the order's end moves the signal in this batch, not at a later sync.
    attempts_read_current([i.attempt for i in standing])
    final = [i.attempt for i in standing if i.attempt.status not in lifecycle.OPEN]
    if final:  # final already: apply the signal move the order implies
        signals_follow_attempts(final, store=store, actor=actor)
    return moved


def _attempts_take_orders(items: list[AcceptedOrder], *, store: SignalStore, actor: str) -> None:
    """Each attempt takes its order's state (one bulk update, its RESPONSE event leading when
    the order is the answer to our request) and is stamped as submitted."""
    # The stream consumer or a sync may have applied a fill since the send: the apply below
    # compares with the attempts as stored under their row locks, so the order state the send
    # saw never takes a fill back.
    responses = [
        order_event_build(
            attempt=item.attempt,
            kind=OrderEvent.Kind.RESPONSE,
            http_status=200,
            message=f"accepted: order {item.order.id} ({item.order.status})",
            payload=item.order.raw,
            actor=actor,
        )
        for item in items
        if item.response
    ]
    order_attempts_apply_broker_orders(
        pairs=[(item.attempt, item.order) for item in items],
        store=store,
        actor=actor,
        move_signals=False,
        leading_events=responses,
    )
    now = timezone.now()
    unstamped = [item.attempt for item in items if item.attempt.submitted_at is None]
    for attempt in unstamped:
        attempt.submitted_at = now
    if unstamped:
        OrderAttempt.objects.bulk_update(unstamped, ["submitted_at"])


def _signals_not_moved(items: list[AcceptedOrder], exc: Exception, *, actor: str) -> None:
    """The signals stay PENDING with their orders at the broker: an ERROR event on each says
    so, and the next cycle (or watcher) finds the attempt and moves the signal."""
    why = f"signal not moved to SUBMITTED: {type(exc).__name__}: {exc}"
    logger.warning("%d order(s) accepted, %s; the next cycle moves them", len(items), why)
    expected = isinstance(exc, SignalStoreError)
    logger.log(logging.DEBUG if expected else logging.ERROR, "traceback", exc_info=exc)
    order_events_append(
        [
            order_event_build(
                attempt=item.attempt,
                kind=OrderEvent.Kind.ERROR,
                message=why[:2000],
                actor=actor,
            )
            for item in items
        ]
    )
