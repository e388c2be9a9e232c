"""The order attempt's lifecycle, in one place: its statuses, which are open and which final,
the attempt status each of Alpaca's order statuses means, where an attempt's end takes its
signal, and the one way a signal is moved because of an order (`signals_move_record`: the
conditional transition and its SIGNAL_TRANSITION event on the attempt).

Everything else derives from here: the model's ``status`` field takes its choices from
`AttemptStatus`, and the services, the sync and reconciliation ask these sets rather than
spelling statuses out.

Alpaca adds statuses from time to time; an unknown one is treated as still open (never as a
terminal fact) and kept verbatim in ``OrderAttempt.broker_status``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import models

from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import MAX_WRITE_ATTEMPTS, Transition, TransitionOutcome

if TYPE_CHECKING:
    from brokerops.intent.store import SignalStore, TransitionResult
    from orders.models import OrderAttempt, OrderEvent


class AttemptStatus(models.TextChoices):
    CREATED = "created", "Created (nothing sent yet)"
    UNKNOWN = "unknown", "Outcome unknown (to resolve by client_order_id)"
    OPEN = "open", "Open at the broker"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"
    REJECTED = "rejected", "Rejected (by validation or the broker)"
    MISSING = "missing", "Missing at the broker (404)"


#: Not sent yet, or sent with an unknown outcome: the order cycle's, which resolves them by
#: client_order_id before anything is (re)sent.
NOT_SENT = frozenset({AttemptStatus.CREATED, AttemptStatus.UNKNOWN})
#: Open at the broker: the broker decides their outcome (the sync and reconciliation follow them).
AT_BROKER = frozenset({AttemptStatus.OPEN, AttemptStatus.PARTIALLY_FILLED})
#: Not final: something may still happen to the order.
OPEN = NOT_SENT | AT_BROKER
#: The order has ended: its SUBMITTED signal moves with it.
FINAL = frozenset(AttemptStatus) - OPEN
#: Final by the broker's word: Alpaca's orders never reopen once final.
FINAL_AT_BROKER = FINAL - {AttemptStatus.MISSING}

# Alpaca's final order statuses, and the attempt status each means.
_FINAL_BROKER_STATUSES = {
    "filled": AttemptStatus.FILLED.value,
    "canceled": AttemptStatus.CANCELED.value,
    "expired": AttemptStatus.EXPIRED.value,
    "rejected": AttemptStatus.REJECTED.value,
    # A replaced order lives on as its replacement; this attempt is over.
    "replaced": AttemptStatus.CANCELED.value,
}
TERMINAL_BROKER_STATUSES = frozenset(_FINAL_BROKER_STATUSES)


def attempt_status_for(broker_status: str) -> str:
    """The attempt status that corresponds to Alpaca's order ``broker_status``."""
    status = broker_status.lower()
    if status in _FINAL_BROKER_STATUSES:
        return _FINAL_BROKER_STATUSES[status]
    if status == AttemptStatus.PARTIALLY_FILLED:
        return AttemptStatus.PARTIALLY_FILLED.value
    return AttemptStatus.OPEN.value


def is_terminal(broker_status: str) -> bool:
    return broker_status.lower() in TERMINAL_BROKER_STATUSES


_SIGNAL_FOR_ATTEMPT = {
    AttemptStatus.FILLED: SignalStatus.ACTIVE,
    AttemptStatus.CANCELED: SignalStatus.CANCELED,
    AttemptStatus.EXPIRED: SignalStatus.CANCELED,
    AttemptStatus.REJECTED: SignalStatus.REJECTED,
    AttemptStatus.MISSING: SignalStatus.CANCELED,
}


def signal_status_for(*, status: str, filled_qty: Decimal | None) -> SignalStatus | None:
    """Where the signal of an attempt that ended as ``status`` goes (None: the attempt is still
    open). A canceled or expired order that filled partly still holds: the signal is ACTIVE."""
    if status in (AttemptStatus.CANCELED, AttemptStatus.EXPIRED) and (filled_qty or 0) > 0:
        return SignalStatus.ACTIVE
    return _SIGNAL_FOR_ATTEMPT.get(status)


# --- moving a signal because of an order ----------------------------------------------------


@dataclass(frozen=True)
class SignalMove:
    """One signal transition asked because of an order, and the attempt whose audit trail
    records it (None: the caller records the outcome elsewhere, a reconciliation finding).
    ``note`` is added to the event's message (why, in words)."""

    transition: Transition
    attempt: OrderAttempt | None = None
    note: str = ""


@dataclass(frozen=True)
class SetAside:
    """What `on_changed` answers for a move the caller takes over (a conflict): its result is
    not recorded; ``events`` (built by the caller) are appended with the others instead."""

    events: tuple[OrderEvent, ...] = ()


#: Decides again on a document changed since the read (outcome CHANGED, the fresh document in
#: ``result.current``): the move to try on it, `SetAside`, or None to record the result as is.
OnChanged = Callable[["SignalMove", "TransitionResult"], "SignalMove | SetAside | None"]


def signals_move_record(
    *,
    moves: Sequence[SignalMove],
    store: SignalStore,
    actor: str,
    on_changed: OnChanged | None = None,
    rounds: int = MAX_WRITE_ATTEMPTS,
    leading_events: Sequence[OrderEvent] = (),
) -> list[tuple[SignalMove, TransitionResult]]:
    """Move the signals (one `transition_many` per round), each conditional on the status and
    version its decision read (docs/design.md section 4), and record a SIGNAL_TRANSITION event
    per result on its attempt, all in one append after ``leading_events``. Returns the recorded
    moves with their results, in the order they were decided.

    A document changed since the read is decided again by ``on_changed`` on the fresh copy: a
    move it returns is tried in the next round (at most ``rounds``; after the last one, the
    result is recorded with that move); without ``on_changed`` the result is recorded as is.
    Raises what the store raises (nothing recorded then)."""
    # orders.services.events imports the models, whose status field takes its choices from
    # this module: imported on use, so the models can import this module.
    from orders.models import OrderEvent
    from orders.services.events import order_event_build, order_events_append

    recorded, set_aside = _signals_move_rounds(moves, store, on_changed, rounds)
    events: list[OrderEvent] = [*leading_events, *set_aside]
    events.extend(
        order_event_build(
            attempt=move.attempt,
            kind=OrderEvent.Kind.SIGNAL_TRANSITION,
            status_from=str(result.expected_status),
            status_to=str(result.new_status if result.applied else result.actual_status or ""),
            message=f"signal {result.signal_id!r}: {result.outcome}"
            + (f" ({result.detail})" if result.detail else "")
            + (f"; {move.note}" if move.note else ""),
            actor=actor,
        )
        for move, result in recorded
        if move.attempt is not None
    )
    if events:
        order_events_append(events)
    return recorded


def _signals_move_rounds(
    moves: Sequence[SignalMove],
    store: SignalStore,
    on_changed: OnChanged | None,
    rounds: int,
) -> tuple[list[tuple[SignalMove, TransitionResult]], list[OrderEvent]]:
    """The rounds of `signals_move_record`: one `transition_many` each, a CHANGED document
    decided again by ``on_changed`` for the next round. Returns the moves to record with their
    results, and the events of the moves set aside (`SetAside`), in the order they came."""
    recorded: list[tuple[SignalMove, TransitionResult]] = []
    set_aside: list[OrderEvent] = []
    todo = list(moves)
    for round_no in range(rounds):
        if not todo:
            break
        again = []
        results = store.transition_many([move.transition for move in todo])
        for move, result in zip(todo, results, strict=True):
            if result.outcome is TransitionOutcome.CHANGED and on_changed is not None:
                answer = on_changed(move, result)
                if isinstance(answer, SetAside):
                    set_aside.extend(answer.events)
                    continue
                if answer is not None:
                    if round_no < rounds - 1:
                        again.append(answer)
                        continue
                    move = answer  # no round left: recorded with what was learned
            recorded.append((move, result))
        todo = again
    return recorded, set_aside
