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

from typing import TYPE_CHECKING

from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import MAX_WRITE_ATTEMPTS, TransitionOutcome, TransitionResult
from orders.matching import order_differences
from orders.models import OrderAttempt, OrderEvent

from .broker_state import attempts_read_current, signals_follow_attempts
from .conflicts import signal_conflict_reject
from .events import order_event_record
from .outcomes import Outcome, SignalOutcome

if TYPE_CHECKING:
    from .submit import SubmitContext

Status = OrderAttempt.Status


def attempt_existing_follow(
    *, signal: Signal, attempt: OrderAttempt, cycle: SubmitContext
) -> SignalOutcome:
    """A PENDING signal whose attempt reached the broker (or was rejected) already: the signal
    follows its one order, when the document still asks for that order (else: a conflict)."""
    diffs = order_differences(attempt, signal)
    if diffs:
        return _conflict(signal, attempt, cycle)
    if attempt.status == Status.REJECTED:
        moved = signal_move_on_version(
            signal,
            attempt,
            SignalStatus.PENDING,
            SignalStatus.REJECTED,
            attempt.reason or "order rejected",
            cycle,
        )
        if moved.outcome is TransitionOutcome.CHANGED:
            return _changed(signal, attempt)
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.ALREADY, attempt.reason)
    if attempt.status in (Status.MISSING, Status.CANCELED, Status.EXPIRED) and not (
        attempt.filled_qty or 0
    ):
        # Its order is gone or ended unfilled: this signal's one order will not come.
        moved = signal_move_on_version(
            signal,
            attempt,
            SignalStatus.PENDING,
            SignalStatus.CANCELED,
            f"order {attempt.client_order_id} is {attempt.status}",
            cycle,
        )
        if moved.outcome is TransitionOutcome.CHANGED:
            return _changed(signal, attempt)
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.ALREADY, attempt.status)
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
    if moved.applied and attempt.status not in OrderAttempt.OPEN_STATUSES:
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
    open_at_broker = attempt.status in (Status.OPEN, Status.PARTIALLY_FILLED)
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
    version = signal.version
    for _ in range(MAX_WRITE_ATTEMPTS):
        result = cycle.store.transition(
            signal_id=signal.id,
            expected_status=expected,
            new_status=new,
            reason=reason[:500],
            fields=fields,
            expected_version=version,
        )
        current = result.current
        if (
            result.outcome is not TransitionOutcome.CHANGED
            or not isinstance(current, Signal)
            or order_differences(attempt, current)
        ):
            break
        version = current.version
    order_event_record(
        attempt=attempt,
        kind=OrderEvent.Kind.SIGNAL_TRANSITION,
        status_from=str(expected),
        status_to=str(new if result.applied else result.actual_status or ""),
        message=f"signal {signal.id!r}: {result.outcome}"
        + (f" ({result.detail})" if result.detail else ""),
        actor=cycle.actor,
    )
    return result
