"""A PENDING signal whose attempt exists already: the signal follows its one order.

The order cycle and the watcher meet signals whose attempt reached the broker before (a
post-send move that failed, a signal put back to PENDING by its writer, an id reused) or was
rejected. Such a signal follows its order (SUBMITTED, and on when the order ended; CANCELED
when the order is gone; REJECTED when it was rejected), each move conditional on the version
of the document decided on (docs/design.md section 4). A document that asks for another order
than its id's is a conflict (`orders.services.conflicts`): REJECTED with the reason, never
adopted.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import Transition, TransitionOutcome, TransitionResult
from orders import lifecycle
from orders.lifecycle import SignalMove, signals_move_record
from orders.matching import order_differences
from orders.models import OrderAttempt

from .broker_state import attempts_read_current, signals_follow_attempts
from .conflicts import signal_conflict_reject
from .outcomes import Outcome, SignalOutcome

if TYPE_CHECKING:
    from .context import SubmitContext


def attempt_existing_follow(
    *, signal: Signal, attempt: OrderAttempt, cycle: SubmitContext
) -> SignalOutcome:
    """A PENDING signal whose attempt reached the broker (or was rejected) already: the signal
    follows its one order, when the document still asks for that order (else: a conflict)."""
    diffs = order_differences(attempt, signal)
    if diffs:
        return _conflict(signal, attempt, cycle)
    # Where the attempt's end takes the signal (None: the order is still open).
    target = lifecycle.signal_status_for(status=attempt.status, filled_qty=attempt.filled_qty)
    if target is SignalStatus.REJECTED:
        reason = attempt.reason or "order rejected"
        return _signal_end(signal, attempt, cycle, target, reason, already=attempt.reason)
    if target is SignalStatus.CANCELED and not (attempt.filled_qty or 0):
        # Its order is gone or ended unfilled: this signal's one order will not come.
        reason = f"order {attempt.client_order_id} is {attempt.status}"
        return _signal_end(signal, attempt, cycle, target, reason, already=attempt.status)
    return _signal_submitted(signal, attempt, cycle)


def _signal_end(
    signal: Signal,
    attempt: OrderAttempt,
    cycle: SubmitContext,
    end: SignalStatus,
    reason: str,
    *,
    already: str,
) -> SignalOutcome:
    """PENDING -> ``end`` (its order was rejected, or will not come): the signal's one order
    decides it. ``already`` is the outcome's reason when the signal had moved anyway."""
    moved = signal_move_on_version(signal, attempt, SignalStatus.PENDING, end, reason, cycle)
    if moved.outcome is TransitionOutcome.CHANGED:
        return _changed(signal, attempt)
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.ALREADY, already)


def _signal_submitted(signal: Signal, attempt: OrderAttempt, cycle: SubmitContext) -> SignalOutcome:
    """PENDING -> SUBMITTED with its order's ids, then on with the order as it stands: a fill
    or an end the PENDING signal could not take is applied now."""
    moved = signal_move_on_version(
        signal,
        attempt,
        SignalStatus.PENDING,
        SignalStatus.SUBMITTED,
        f"order {attempt.alpaca_order_id} at Alpaca",
        cycle,
        fields={
            "client_order_id": attempt.client_order_id,
            "alpaca_order_id": attempt.alpaca_order_id,
        },
    )
    if moved.outcome is TransitionOutcome.CHANGED:
        return _changed(signal, attempt)
    if moved.applied:
        # A fill applied while the signal was PENDING could not move it: read the attempt as
        # stored now that it is SUBMITTED (a later fill moves it itself).
        attempts_read_current([attempt])
    if moved.applied and attempt.status not in lifecycle.OPEN:
        signals_follow_attempts([attempt], store=cycle.store, actor=cycle.actor)
    return SignalOutcome(
        signal.id,
        attempt.client_order_id,
        Outcome.ALREADY,
        attempt.broker_status,
        attempt.alpaca_order_id,
    )


def _conflict(signal: Signal, attempt: OrderAttempt, cycle: SubmitContext) -> SignalOutcome:
    """The document asks for another order than its id's (a reused id, a rewrite after the
    send): decided on the document as stored now (one read: an order may be canceled on it),
    recorded, the signal REJECTED (`conflicts.signal_conflict_reject`)."""
    fresh = cycle.store.get(signal.id)
    if not isinstance(fresh, Signal) or fresh.status is not SignalStatus.PENDING:
        why = "the document changed since it was read (no longer PENDING): left as it is"
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.ALREADY, why)
    diffs = order_differences(attempt, fresh)
    if not diffs:  # rewritten back to its order meanwhile: decided again next cycle
        return _changed(signal, attempt)
    open_at_broker = attempt.status in lifecycle.AT_BROKER
    reason = signal_conflict_reject(
        attempt=attempt,
        signal=fresh,
        diffs=diffs,
        store=cycle.store,
        actor=cycle.actor,
        gateway=cycle.gateway,
        order_id=attempt.alpaca_order_id if open_at_broker else "",
    )
    return SignalOutcome(
        signal.id, attempt.client_order_id, Outcome.CONFLICT, reason, attempt.alpaca_order_id
    )


def _changed(signal: Signal, attempt: OrderAttempt) -> SignalOutcome:
    why = "the document changed since it was read: decided again on the new one next cycle"
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.DEFERRED, why)


def signal_move_on_version(
    signal: Signal,
    attempt: OrderAttempt,
    expected: SignalStatus,
    new: SignalStatus,
    reason: str,
    cycle: SubmitContext,
    fields: dict | None = None,
) -> TransitionResult:
    """Move the signal on the version of the document decided on (`signal.version`). A
    document changed since that still asks for the attempt's order is moved on its new
    version; one that asks for another is left (`CHANGED`) to be decided again."""
    transition = Transition(
        signal_id=signal.id,
        expected_status=expected,
        new_status=new,
        reason=reason[:500],
        fields=fields,
        expected_version=signal.version,
    )

    def on_changed(move: SignalMove, result: TransitionResult) -> SignalMove | None:
        current = result.current
        if not isinstance(current, Signal) or order_differences(attempt, current):
            return None
        return replace(move, transition=replace(move.transition, expected_version=current.version))

    ((_, result),) = signals_move_record(
        moves=[SignalMove(transition=transition, attempt=attempt)],
        store=cycle.store,
        actor=cycle.actor,
        on_changed=on_changed,
    )
    return result
