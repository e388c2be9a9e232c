"""A signal whose document no longer asks for the order made for it, and orders nobody asks for.

A decision holds only for the document it was made on (docs/design.md sections 3 and 4): every
order-path transition is conditional on the version of the document the decision read. When the
document changed since, the decision is made again on the fresh document:

- it asks for the same order (another field changed): the move goes ahead on the new version;
- it asks for another order (the symbol, side, quantity, type or a price changed, or its id was
  reused for a new intent): that is a **conflict**. A signal id yields one order (its
  client_order_id is derived from the id), so the new document can never get one: the signal
  moves PENDING -> REJECTED with the conflict as its reason (the state for a PENDING document
  whose order cannot be built, docs/design.md section 3), recorded on the attempt. It is never
  adopted by the other document's order, never left PENDING to be retried forever. An order
  just sent for the rewritten document and still open at the broker is canceled first: nobody
  asks for it any more (`order_undo`). An order that ended earlier (a reused id) is history and
  stays as it is.

An order sent for a signal its writer withdrew meanwhile (CANCELED, or the document deleted
between the re-read and the transition after sending) is undone the same way: canceled at the
broker, the request and the answer recorded on the attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from brokerops.alpaca import BrokerError
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import (
    SignalStore,
    SignalStoreError,
    Transition,
    TransitionOutcome,
    TransitionResult,
)
from orders import lifecycle
from orders.lifecycle import SetAside, SignalMove, signals_move_record
from orders.matching import order_differences, quantity_text
from orders.models import OrderAttempt, OrderEvent

from .broker_state import order_attempts_apply_broker_orders
from .events import order_event_build, order_event_record, order_events_append
from .outcomes import Outcome

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

    from .context import AcceptedOrder

logger = logging.getLogger(__name__)


def signals_submitted_after_send(
    *, items: Sequence[AcceptedOrder], store: SignalStore, gateway: AlpacaGateway, actor: str
) -> tuple[list[AcceptedOrder], int]:
    """Move the signals of accepted orders PENDING -> SUBMITTED, each on the version of the
    document its order was sent for (one `transition_many` per round), with their
    SIGNAL_TRANSITION events in one append. Returns the items whose signal stands by its
    order (for the caller's next steps: all but the withdrawn and the conflicts) and how many
    signals moved to SUBMITTED.

    A document changed since (``CHANGED``) is decided again on the fresh copy: the same order
    asked, the move is retried on its version; another order asked, a conflict
    (`signal_conflict_reject`: the open order canceled, the signal REJECTED). A signal
    withdrawn meanwhile (CANCELED, or deleted) gets its order undone (`order_undo`). Their
    outcomes become ``CONFLICT`` and ``WITHDRAWN``. Raises `SignalStoreError` when the store
    fails (the caller records it: the next cycle moves the signal).
    """
    by_signal = {item.signal.id: item for item in items}
    conflicts: list[tuple[AcceptedOrder, Signal, list[str]]] = []
    for item in items:
        # An order adopted by client_order_id (an earlier send landed) was sent for the
        # document as it was then: the one read now may ask for another.
        if diffs := order_differences(item.attempt, item.signal):
            conflicts.append((item, item.signal, diffs))
    conflicted = {item.signal.id for item, _, _ in conflicts}
    moves = [_submitted_move(item) for item in items if item.signal.id not in conflicted]

    def on_changed(move: SignalMove, result: TransitionResult) -> SignalMove | SetAside | None:
        current = result.current
        if not isinstance(current, Signal):
            return None
        item = by_signal[result.signal_id]
        if diffs := order_differences(item.attempt, current):
            conflicts.append((item, current, diffs))
            return SetAside()
        # the same order: on the fresh version
        return replace(move, transition=replace(move.transition, expected_version=current.version))

    final = [
        result
        for _, result in signals_move_record(
            moves=moves, store=store, actor=actor, on_changed=on_changed
        )
    ]
    standing = []
    for result in final:
        item = by_signal[result.signal_id]
        if _withdrawn(result):
            _withdrawn_undo(item, result, store=store, gateway=gateway, actor=actor)
        else:
            standing.append(item)
    _conflicts_reject(conflicts, store=store, gateway=gateway, actor=actor)
    return standing, sum(1 for result in final if result.applied)


def _withdrawn(result: TransitionResult) -> bool:
    """The signal's writer withdrew it before it could move to SUBMITTED: deleted, or
    CANCELED."""
    return result.outcome is TransitionOutcome.NOT_FOUND or (
        result.outcome is TransitionOutcome.STATUS_MOVED
        and result.actual_status is SignalStatus.CANCELED
    )


def _conflicts_reject(
    conflicts: Sequence[tuple[AcceptedOrder, Signal, list[str]]],
    *,
    store: SignalStore,
    gateway: AlpacaGateway,
    actor: str,
) -> None:
    """Each accepted order whose document asks for another order (as read, or as found by
    the move): the order canceled, the signal REJECTED, the outcome CONFLICT with the reason."""
    for item, current, diffs in conflicts:
        item.outcome.reason = signal_conflict_reject(
            attempt=item.attempt,
            signal=current,
            diffs=diffs,
            store=store,
            actor=actor,
            gateway=gateway,
            order_id=item.order.id,
        )
        item.outcome.outcome = Outcome.CONFLICT


def _submitted_move(item: AcceptedOrder) -> SignalMove:
    """PENDING -> SUBMITTED on the version of the document the item's order was sent for."""
    return SignalMove(
        transition=Transition(
            signal_id=item.signal.id,
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.SUBMITTED,
            reason=f"order {item.order.id} accepted by Alpaca"[:500],
            fields={
                "client_order_id": item.attempt.client_order_id,
                "alpaca_order_id": item.order.id,
            },
            expected_version=item.signal.version,
        ),
        attempt=item.attempt,
    )


def _withdrawn_undo(
    item: AcceptedOrder,
    result: TransitionResult,
    *,
    store: SignalStore,
    gateway: AlpacaGateway,
    actor: str,
) -> None:
    """The signal was withdrawn (deleted, or CANCELED) after its order was sent: the order is
    undone and the outcome says WITHDRAWN."""
    how = "deleted" if result.current is None else "moved to CANCELED"
    why = f"signal {result.signal_id!r} {how} by its writer after its order was sent"
    undone = order_undo(
        attempt=item.attempt,
        order_id=item.order.id,
        gateway=gateway,
        store=store,
        actor=actor,
        why=why,
    )
    item.outcome.outcome = Outcome.WITHDRAWN
    item.outcome.reason = f"{why}: {'canceled at the broker' if undone else 'not undone'}"


def conflict_reason(attempt: OrderAttempt, diffs: list[str], *, canceled: bool) -> str:
    """The status_reason of a signal in conflict with its id's order."""
    order = f"{attempt.side} {quantity_text(attempt.qty or attempt.notional)} {attempt.symbol}"
    return (
        f"conflict: this signal id's one order {attempt.client_order_id} ({order}, "
        f"{'canceled at the broker' if canceled else attempt.status}) is not what the "
        f"document asks ({'; '.join(diffs)}): a signal id yields one order; write the new "
        "intent under a new id"
    )[:500]


def signal_conflict_reject(
    *,
    attempt: OrderAttempt,
    signal: Signal,
    diffs: list[str],
    store: SignalStore,
    actor: str,
    gateway: AlpacaGateway | None = None,
    order_id: str = "",
) -> str:
    """The document ``signal`` (as read, with its version) asks for another order than its
    id's: cancel the order ``order_id`` when given and still open (sent for the document as it
    was), then move the signal PENDING -> REJECTED on that version; every step recorded on the
    attempt. Returns the reason (a document changed again is left to the next cycle, which
    decides on it)."""
    canceled = False
    if order_id and gateway is not None:
        canceled = order_undo(
            attempt=attempt,
            order_id=order_id,
            gateway=gateway,
            store=store,
            actor=actor,
            why=f"the document was rewritten after its order was sent ({'; '.join(diffs)})",
        )
    reason = conflict_reason(attempt, diffs, canceled=canceled)
    logger.warning("signal %r: %s", signal.id, reason)
    move = SignalMove(
        transition=Transition(
            signal_id=signal.id,
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.REJECTED,
            reason=reason,
            expected_version=signal.version,
        ),
        attempt=attempt,
        note=reason,
    )
    try:
        signals_move_record(moves=[move], store=store, actor=actor)
    except SignalStoreError as exc:
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.ERROR,
            message=f"signal {signal.id!r}: {reason}; not moved to REJECTED: {exc}"[:2000],
            actor=actor,
        )
        raise
    return reason


def order_undo(
    *,
    attempt: OrderAttempt,
    order_id: str,
    gateway: AlpacaGateway,
    store: SignalStore,
    actor: str,
    why: str,
) -> bool:
    """Cancel at the broker an order nobody asks for any more (``why``), recording the request
    and the answer on the attempt, then take the order's state from one look-up. Returns True
    when the broker accepted the cancel.

    Never raises for the broker: an order that filled first (422: not cancelable) or a broker
    that cannot be reached is recorded as an ERROR event ("not undone") and logged; the
    attempt takes what the look-up says (a fill stays a fill: reconciliation then sees the
    holding no signal explains)."""
    if attempt.status not in lifecycle.OPEN:  # final at the broker: nothing to cancel
        message = f"order {order_id} not undone ({why}): it is {attempt.status} already"
        logger.warning("order %s: %s", attempt.client_order_id, message)
        order_event_record(
            attempt=attempt, kind=OrderEvent.Kind.ERROR, message=message[:2000], actor=actor
        )
        return False
    request = f"DELETE /v2/orders/{order_id}: {why}"
    order_event_record(
        attempt=attempt, kind=OrderEvent.Kind.REQUEST_SENT, message=request[:2000], actor=actor
    )
    try:
        gateway.cancel_order(order_id)
    except BrokerError as exc:
        message = f"order {order_id} not undone: {type(exc).__name__}: {exc}"
        logger.warning("order %s: %s", attempt.client_order_id, message)
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.ERROR,
            http_status=getattr(exc, "status", None),
            message=message[:2000],
            actor=actor,
        )
        _take_state(attempt, order_id, gateway=gateway, store=store, actor=actor)
        return False
    _take_state(
        attempt,
        order_id,
        gateway=gateway,
        store=store,
        actor=actor,
        leading=[
            order_event_build(
                attempt=attempt,
                kind=OrderEvent.Kind.RESPONSE,
                http_status=204,
                message=f"cancel accepted: order {order_id}",
                actor=actor,
            )
        ],
    )
    return True


def _take_state(
    attempt: OrderAttempt,
    order_id: str,
    *,
    gateway: AlpacaGateway,
    store: SignalStore,
    actor: str,
    leading: list[OrderEvent] | None = None,
) -> None:
    """The attempt takes the order's state after the cancel (one look-up); a look-up that fails
    leaves it to the sync and the stream, which follow every open attempt."""
    try:
        current = gateway.get_order(order_id)
    except BrokerError as exc:
        events = [*(leading or [])]
        events.append(
            order_event_build(
                attempt=attempt,
                kind=OrderEvent.Kind.ERROR,
                message=f"look-up after the cancel failed: {exc}"[:2000],
                actor=actor,
            )
        )
        order_events_append(events)
        return
    # The signal is not moved: it was withdrawn (or is in conflict) and stays as its writer left it.
    order_attempts_apply_broker_orders(
        pairs=[(attempt, current)],
        store=store,
        actor=actor,
        move_signals=False,
        leading_events=leading or (),
    )
