"""Apply what the broker says about orders to our attempts, and the signals behind them.

Alpaca is the truth for orders: an attempt takes Alpaca's status, fills and order id; a signal
moves with its order (SUBMITTED -> ACTIVE on a fill, -> CANCELED / REJECTED when the broker says
so, -> CANCELED when the order is gone). Signal moves are conditional on the status read, so a
signal somebody changed meanwhile is left alone (and the skip recorded).
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from brokerops.accounts import rows_owner_name
from brokerops.alpaca import Order
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import (
    SignalStore,
    Transition,
    TransitionResult,
)
from brokerops.text import db_field_text, db_text
from orders import lifecycle
from orders.client_order_id import parse_client_order_id
from orders.lifecycle import SetAside, SignalMove, attempt_status_for, signals_move_record
from orders.matching import order_differences
from orders.models import OrderAttempt, OrderEvent

from .events import order_event_build, order_events_append

logger = logging.getLogger(__name__)

Status = OrderAttempt.Status


@dataclass(frozen=True)
class AttemptChange:
    client_order_id: str
    status_from: str
    status_to: str
    signal_outcome: str = ""  # TransitionOutcome value when the signal was asked to move


def _changes(
    attempts: Sequence[OrderAttempt], befores: Mapping[str, str], outcomes: Mapping[str, str]
) -> list[AttemptChange]:
    """One `AttemptChange` per attempt: its status before (``befores``) and now, and what its
    signal's move came to (``outcomes``, by client_order_id; "" when it was not asked to move)."""
    return [
        AttemptChange(
            a.client_order_id,
            befores[a.client_order_id],
            a.status,
            outcomes.get(a.client_order_id, ""),
        )
        for a in attempts
    ]


def _signal_target(attempt: OrderAttempt) -> SignalStatus | None:
    """Where the attempt's signal goes (an entry's: an exit leg moves none)."""
    if not attempt.signal_id or attempt.leg != "entry":
        return None
    return lifecycle.signal_status_for(status=attempt.status, filled_qty=attempt.filled_qty)


def _is_stale(attempt: OrderAttempt, order: Order) -> bool:
    """An order state older than what the attempt holds (a late or repeated stream event):
    Alpaca's orders never reopen once final, and their filled quantity never goes down."""
    if attempt.status in lifecycle.FINAL_AT_BROKER and attempt_status_for(order.status) in (
        lifecycle.OPEN
    ):
        return True
    return (
        order.filled_qty is not None
        and attempt.filled_qty is not None
        and order.filled_qty < attempt.filled_qty
    )


def _take_broker_order(attempt: OrderAttempt, order: Order) -> None:
    attempt.alpaca_order_id = db_field_text(OrderAttempt, "alpaca_order_id", order.id)
    attempt.broker_status = db_field_text(OrderAttempt, "broker_status", order.status)
    attempt.status = attempt_status_for(order.status)
    attempt.filled_qty = order.filled_qty
    attempt.filled_avg_price = order.filled_avg_price
    attempt.submitted_at = attempt.submitted_at or order.submitted_at or order.created_at


# What a broker answer changes on an attempt: read again under the row lock before comparing.
_TAKEN_FROM_ORDER = (  # what `_take_broker_order` sets
    "alpaca_order_id",
    "broker_status",
    "status",
    "filled_qty",
    "filled_avg_price",
    "submitted_at",
)
_BROKER_STATE = (*_TAKEN_FROM_ORDER, "reason", "updated_at")
_LOCK_CHUNK = 5000


def attempts_lock_current(attempts: Sequence[OrderAttempt]) -> None:
    """Lock the attempts' rows (in primary-key order, so two writers never deadlock) for the
    caller's transaction, and bring the given objects to their stored broker state.

    Every writer of an attempt's broker state (the stream, the order service after a send, the
    sync, a re-sync) decides against the row as it is when it writes, never against an earlier
    read: a fill another process applied in between is never taken back by an older answer.
    """
    _attempts_take_stored(attempts, lock=True)


def _attempts_take_stored(attempts: Sequence[OrderAttempt], *, lock: bool) -> None:
    by_pk: dict[int, list[OrderAttempt]] = {}
    for attempt in attempts:
        by_pk.setdefault(attempt.pk, []).append(attempt)
    pks = sorted(by_pk)
    for start in range(0, len(pks), _LOCK_CHUNK):
        # FOR NO KEY UPDATE: the lock an UPDATE takes anyway. Unlike FOR UPDATE it lets rows
        # referencing the attempt (its audit events, executions) be inserted meanwhile, so a
        # writer holding the audit chain's lock is never left waiting for these rows.
        queryset = (
            OrderAttempt.objects.select_for_update(no_key=True) if lock else OrderAttempt.objects
        )
        rows = (
            queryset.filter(pk__in=pks[start : start + _LOCK_CHUNK])
            .order_by("pk")
            .values("pk", *_BROKER_STATE)
        )
        for row in rows:
            for attempt in by_pk[row["pk"]]:
                for name in _BROKER_STATE:
                    setattr(attempt, name, row[name])


def attempts_read_current(attempts: Sequence[OrderAttempt]) -> None:
    """Bring the given objects to their stored broker state, without locking (a decision that
    must see what another writer committed since they were read, and writes nothing on it)."""
    _attempts_take_stored(attempts, lock=False)


def order_attempts_apply_broker_orders(
    *,
    pairs: Sequence[tuple[OrderAttempt, Order]],
    store: SignalStore,
    actor: str,
    move_signals: bool = True,
    leading_events: Sequence[OrderEvent] = (),
) -> list[AttemptChange]:
    """Bring each attempt to its broker order; returns the attempts that changed.

    One bulk update for the attempts, one bulk insert for the events (``leading_events``, built
    by the caller, first: the broker's answers the order service records with them), one
    batched signal transition for the signals whose order reached a final state.
    """
    now = timezone.now()
    changed: list[OrderAttempt] = []
    events: list[OrderEvent] = list(leading_events)
    befores: dict[str, str] = {}
    with transaction.atomic():
        attempts_lock_current([attempt for attempt, _ in pairs])
        for attempt, order in pairs:
            taken = _attempt_take_order(attempt, order, now=now, actor=actor)
            if taken is None:
                continue
            befores[attempt.client_order_id], event = taken
            changed.append(attempt)
            events.append(event)
        OrderAttempt.objects.bulk_update(
            changed, [*_TAKEN_FROM_ORDER, "last_synced_at", "updated_at"], batch_size=500
        )
        changed_pks = {a.pk for a in changed}
        synced = [a.pk for a, _ in pairs if a.pk not in changed_pks]
        for start in range(0, len(synced), 5000):
            OrderAttempt.objects.filter(pk__in=synced[start : start + 5000]).update(
                last_synced_at=now
            )
        order_events_append(events)  # last: the chain's lock is held until the commit
    outcomes = signals_follow_attempts(changed, store=store, actor=actor) if move_signals else {}
    return _changes(changed, befores, outcomes)


def _attempt_take_order(
    attempt: OrderAttempt, order: Order, *, now: datetime, actor: str
) -> tuple[str, OrderEvent] | None:
    """The attempt (locked, as stored) takes its broker order's state, in memory: returns the
    status it had and its STATUS_CHANGED event, or None when the order says nothing new (a
    stale state, or the one held: only its sync time moves)."""
    if _is_stale(attempt, order):
        logger.info(
            "order %s: stale state ignored (Alpaca said %s, filled %s; we hold %s, filled %s)",
            attempt.client_order_id,
            order.status,
            order.filled_qty,
            attempt.status,
            attempt.filled_qty,
        )
        return None
    before = (attempt.status, attempt.broker_status, attempt.filled_qty, attempt.alpaca_order_id)
    status_from = attempt.status
    _take_broker_order(attempt, order)
    attempt.last_synced_at = now
    if before == (
        attempt.status,
        attempt.broker_status,
        attempt.filled_qty,
        attempt.alpaca_order_id,
    ):
        return None
    attempt.updated_at = now
    event = order_event_build(
        attempt=attempt,
        kind=OrderEvent.Kind.STATUS_CHANGED,
        status_from=status_from,
        status_to=attempt.status,
        message=f"Alpaca says {order.status} (filled {order.filled_qty})",
        payload=order.raw,
        actor=actor,
    )
    return status_from, event


def order_attempts_mark_missing(
    *, attempts: Sequence[OrderAttempt], store: SignalStore, actor: str, why: str
) -> list[AttemptChange]:
    """Alpaca has no such order (confirmed by a targeted look-up): the attempt is MISSING and
    its SUBMITTED signal CANCELED. Expected when somebody canceled it by hand.

    An attempt whose stored status is no longer the one the caller read (a send or a fill
    recorded since) is left as it is: the look-up answered about an older state."""
    now = timezone.now()
    befores = {a.client_order_id: a.status for a in attempts}
    events = []
    with transaction.atomic():
        attempts_lock_current(attempts)
        unchanged = []
        for attempt in attempts:
            if attempt.status == befores[attempt.client_order_id]:
                unchanged.append(attempt)
                continue
            logger.info(
                "order %s: not marked missing, it is %s now (was %s when looked up)",
                attempt.client_order_id,
                attempt.status,
                befores[attempt.client_order_id],
            )
        attempts = unchanged
        for attempt in attempts:
            events.append(
                order_event_build(
                    attempt=attempt,
                    kind=OrderEvent.Kind.STATUS_CHANGED,
                    status_from=attempt.status,
                    status_to=Status.MISSING,
                    http_status=404,
                    message=why,
                    actor=actor,
                )
            )
            attempt.status = Status.MISSING
            attempt.reason = db_text(why)
            attempt.updated_at = attempt.last_synced_at = now
        OrderAttempt.objects.bulk_update(
            attempts, ["status", "reason", "updated_at", "last_synced_at"], batch_size=500
        )
        order_events_append(events)
    outcomes = signals_follow_attempts(list(attempts), store=store, actor=actor)
    return _changes(attempts, befores, outcomes)


def order_attempt_adopt(
    *, order: Order, actor: str, prefix: str, account: str | None = None
) -> OrderAttempt:
    """Record an order that carries our prefix but that we never recorded (idempotent): an
    attempt of ``account``, the account whose broker has the order and whose prefix ``prefix``
    is (None: the rows' owner, `brokerops.accounts.rows_owner_name`)."""
    parsed = parse_client_order_id(order.client_order_id, prefix=prefix)
    signal_id, leg = parsed if parsed else ("", "entry")
    if signal_id and OrderAttempt.objects.filter(signal_id=signal_id, leg=leg).exists():
        signal_id = ""  # the id pattern matched by accident: keep the one row per signal-leg

    # One transaction: the adopted attempt and its ADOPTED event exist together or not at all.
    def fit(name: str, value: str) -> str:  # the broker's text, made safe for its column
        return db_field_text(OrderAttempt, name, value)

    with transaction.atomic():
        attempt, created = OrderAttempt.objects.get_or_create(
            client_order_id=fit("client_order_id", order.client_order_id),
            defaults=dict(
                account=account or rows_owner_name(),
                signal_id=signal_id,
                leg=leg,
                symbol=fit("symbol", order.symbol),
                side=fit("side", order.side),
                order_type=fit("order_type", order.order_type),
                time_in_force=fit("time_in_force", order.time_in_force),
                qty=order.qty,
                notional=order.notional,
                limit_price=order.limit_price,
                stop_price=order.stop_price,
                extended_hours=order.extended_hours,
                adopted=True,
                reason="found at Alpaca with our prefix; not recorded by brokerops",
            ),
        )
        if created:
            _take_broker_order(attempt, order)
            attempt.last_synced_at = timezone.now()
            attempt.save()
            order_events_append(
                [
                    order_event_build(
                        attempt=attempt,
                        kind=OrderEvent.Kind.ADOPTED,
                        status_to=attempt.status,
                        message="adopted into the audit trail",
                        payload=order.raw,
                        actor=actor,
                    )
                ]
            )
    return attempt


def _fields_for(attempt: OrderAttempt, target: SignalStatus) -> dict[str, str] | None:
    """What the signal learns from its order: the order id, and on a fill what it received
    (the quantity an ACTIVE signal stands for from then on)."""
    fields = {"alpaca_order_id": attempt.alpaca_order_id} if attempt.alpaca_order_id else {}
    if target is SignalStatus.ACTIVE and attempt.filled_qty:
        fields["filled_qty"] = format(attempt.filled_qty.normalize(), "f")
    return fields or None


def signals_follow_attempts(
    attempts: Sequence[OrderAttempt], *, store: SignalStore, actor: str
) -> dict[str, str]:
    """Move each attempt's SUBMITTED signal to where its order ended (if it ended); returns the
    transition outcome per client_order_id.

    A decision holds only for the document it was made on (docs/design.md section 4): the
    documents are read first (one bulk read) and each move is conditional on the version read.
    A document that asks for another order than the attempt's (rewritten while SUBMITTED) is a
    recorded conflict and stays as it is (``CONFLICT``): it never takes another order's fill.
    A document changed otherwise since the read is moved on its new version."""
    by_signal: dict[str, tuple[OrderAttempt, SignalStatus]] = {}
    for attempt in attempts:
        target = _signal_target(attempt)
        signal_id = attempt.store_signal_id
        if target is not None and signal_id not in by_signal:
            by_signal[signal_id] = (attempt, target)
    if not by_signal:
        return {}
    docs = store.get_many(list(by_signal))
    conflicts: list[OrderEvent] = []
    outcomes: dict[str, str] = {}
    moves: list[SignalMove] = []
    for signal_id, (attempt, target) in by_signal.items():
        if conflict := _conflict_event(attempt, docs.get(signal_id), signal_id, actor):
            conflicts.append(conflict)
            outcomes[attempt.client_order_id] = CONFLICT
            continue
        doc = docs.get(signal_id)
        transition = Transition(
            signal_id=signal_id,
            expected_status=SignalStatus.SUBMITTED,
            new_status=target,
            reason=f"order {attempt.client_order_id} is "
            f"{attempt.broker_status or attempt.status} at Alpaca",
            fields=_fields_for(attempt, target),
            expected_version=doc.version if doc is not None else None,
        )
        moves.append(SignalMove(transition=transition, attempt=attempt))

    def on_changed(move: SignalMove, result: TransitionResult) -> SignalMove | SetAside:
        attempt, current = move.attempt, result.current
        if conflict := _conflict_event(attempt, current, result.signal_id, actor):
            outcomes[attempt.client_order_id] = CONFLICT
            return SetAside(events=(conflict,))
        return replace(move, transition=replace(move.transition, expected_version=current.version))

    recorded = signals_move_record(
        moves=moves, store=store, actor=actor, on_changed=on_changed, leading_events=conflicts
    )
    for move, result in recorded:
        if not result.applied:
            logger.info(
                "signal %s not moved: %s %s", result.signal_id, result.outcome, result.detail
            )
        outcomes[move.attempt.client_order_id] = str(result.outcome)
    return outcomes


#: The outcome `signals_follow_attempts` reports for a document in conflict with its order.
CONFLICT = "CONFLICT"


def _conflict_event(
    attempt: OrderAttempt, doc: Signal | InvalidSignal | None, signal_id: str, actor: str
) -> OrderEvent | None:
    """The conflict's event (unsaved) when ``doc``, SUBMITTED, asks for another order than
    the attempt's; None otherwise (the transition decides the rest)."""
    if not isinstance(doc, Signal) or doc.status is not SignalStatus.SUBMITTED:
        return None
    diffs = order_differences(attempt, doc)
    if not diffs:
        return None
    why = (
        f"signal {signal_id!r}: {CONFLICT}: not moved: its document asks for another order "
        f"than {attempt.client_order_id} ({'; '.join(diffs)}); a conflict: left SUBMITTED "
        "for a person to resolve (a signal id yields one order)"
    )
    logger.warning("%s", why)
    return order_event_build(
        attempt=attempt,
        kind=OrderEvent.Kind.SIGNAL_TRANSITION,
        status_from=str(SignalStatus.SUBMITTED),
        status_to=str(SignalStatus.SUBMITTED),
        message=why[:2000],
        actor=actor,
    )
