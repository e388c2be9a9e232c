"""Repairs: one handler per kind of repair, fed by the pure plan (:mod:`reconciliation.plan`).

The service stores every finding's ``Mismatch`` row (``repair_started`` for a repair) before any
handler runs, then completes the rows with what the handlers report, so a crash in between leaves
a visible "repair started" row, never a silent change. A handler gets all planned repairs of its
kind and returns one :class:`RepairOutcome` per item, in order.

One finding's repair never fails the others (:func:`repairs_apply`): a handler that raises for a
batch is tried again one finding at a time, so the failure is recorded (``repair_failed``, with
the reason) on the finding that fails alone; an outage (the broker or the store unavailable)
fails the findings it reaches without trying each. Handlers are safe to try again: each decision
is conditional on the state it was made on (a signal's version, an attempt still open, an order
not yet adopted).

Every repair is the run's account's (docs/design.md section 16): a signal is closed only while it
is still that account's, an adopted order joins that account's attempts.
"""

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace

from django.db import transaction

from brokerops.alpaca import BrokerError
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import (
    AccountScope,
    SignalStore,
    SignalStoreError,
    Transition,
    TransitionOutcome,
    TransitionResult,
)
from orders import lifecycle
from orders.lifecycle import SignalMove, signals_move_record
from orders.models import OrderAttempt
from orders.pairing import MISSING_REASON
from orders.services import (
    order_attempt_adopt,
    order_attempts_apply_broker_orders,
    order_attempts_mark_missing,
)

from .diff import ReconciliationErrors
from .models import Mismatch
from .plan import PlannedRepair, Repair, Verdict

logger = logging.getLogger(__name__)
Action = Mismatch.Action
#: Failures of a service we depend on (broker down, store down), not of one finding: an operator
#: acts on them; they are logged in one line, without a traceback.
OUTAGES = (BrokerError, SignalStoreError)


@dataclass(frozen=True)
class RepairOutcome:
    action: str  # a Mismatch.Action value
    detail: str = ""


@dataclass(frozen=True)
class RepairContext:
    run_id: int
    store: SignalStore
    signals_by_id: dict[str, Signal]  # as the run read them
    scope: AccountScope  # the run's account, and the signals that are its

    @property
    def actor(self) -> str:
        return f"reconciliation run #{self.run_id}"

    @property
    def account(self) -> str:
        return self.scope.name

    @property
    def client_order_id_prefix(self) -> str:
        return self.scope.accounts.get(self.account).client_order_id_prefix


Handler = Callable[[Sequence[PlannedRepair], RepairContext], list[RepairOutcome]]


def close_signals(items: Sequence[PlannedRepair], ctx: RepairContext) -> list[RepairOutcome]:
    """ORPHAN_POSITION: ACTIVE -> CLOSED_MANUAL, conditional on the version the run read.

    When the document changed since the read, the decision is re-evaluated on the fresh copy:
    still ACTIVE on the same symbol (Alpaca's absence was confirmed for that symbol) -> closed on
    the fresh version; anything else (symbol changed, status moved) -> left to the next run.
    """
    for item in items:
        logger.critical(
            "%s: %s signal %s expects %s, Alpaca holds none (run %s)",
            ReconciliationErrors.ORPHAN_POSITION,
            item.finding.symbol,
            item.finding.signal_id,
            item.finding.expected_qty,
            ctx.run_id,
        )
    moves = [SignalMove(transition=_close_transition(item, ctx)) for item in items]
    symbols = {item.finding.signal_id: item.finding.symbol for item in items}

    def on_changed(move: SignalMove, result: TransitionResult) -> SignalMove | None:
        current = result.current
        if current is None or ctx.scope.take(current) is not current:
            return None  # moved to another account since the read: not this run's to close
        if not _still_orphan(current, symbols[result.signal_id]):
            return None
        return replace(
            move, transition=replace(move.transition, expected_version=result.current.version)
        )

    # No order event: the finding's Mismatch row records the outcome. One retry on a fresh copy.
    recorded = signals_move_record(
        moves=moves, store=ctx.store, actor=ctx.actor, on_changed=on_changed, rounds=2
    )
    results = {result.signal_id: result for _, result in recorded}
    return [_close_outcome(item, results[item.finding.signal_id]) for item in items]


def _close_transition(item: PlannedRepair, ctx: RepairContext) -> Transition:
    read = ctx.signals_by_id.get(item.finding.signal_id)
    return Transition(
        signal_id=item.finding.signal_id,
        expected_status=SignalStatus.ACTIVE,
        new_status=SignalStatus.CLOSED_MANUAL,
        reason=f"reconciliation run #{ctx.run_id}: {ReconciliationErrors.ORPHAN_POSITION}, "
        f"Alpaca holds no {item.finding.symbol}",
        expected_version=read.version if read is not None else None,
    )


def _still_orphan(current: object, symbol: str) -> bool:
    return (
        isinstance(current, Signal)
        and current.status is SignalStatus.ACTIVE
        and current.symbol_key == symbol
    )


def _close_outcome(item: PlannedRepair, result: TransitionResult) -> RepairOutcome:
    if result.applied:
        return RepairOutcome(Action.SIGNAL_CLOSED_MANUAL)
    if result.outcome is TransitionOutcome.CHANGED:
        current = result.current
        now = f"{current.symbol_key} {current.status}" if isinstance(current, Signal) else "?"
        return RepairOutcome(
            Action.REPAIR_SKIPPED,
            f"signal changed since the read (now {now}): left to the next run",
        )
    return RepairOutcome(
        Action.REPAIR_SKIPPED, f"signal not moved: {result.outcome} {result.detail}".strip()
    )


def mark_orders_missing(items: Sequence[PlannedRepair], ctx: RepairContext) -> list[RepairOutcome]:
    """ORDER_NOT_FOUND confirmed by a 404: the attempt is MISSING, its signal CANCELED (an
    attempt no longer open, whatever closed it, is left as it is)."""
    attempts = _attempts_by_client_id(items)
    still_open = {
        i.finding.client_order_id: attempts[i.finding.client_order_id]
        for i in items
        if attempts[i.finding.client_order_id].status in lifecycle.OPEN
    }
    marked = {
        change.client_order_id
        for change in order_attempts_mark_missing(
            attempts=list(still_open.values()),
            store=ctx.store,
            actor=ctx.actor,
            why=MISSING_REASON,
        )
    }
    return [
        RepairOutcome(Action.ATTEMPT_MARKED_MISSING)
        if i.finding.client_order_id in marked
        else RepairOutcome(
            Action.REPAIR_SKIPPED,
            f"order {attempts[i.finding.client_order_id].status} since the look-up: "
            "left to the next run",
        )
        for i in items
    ]


def apply_broker_orders(items: Sequence[PlannedRepair], ctx: RepairContext) -> list[RepairOutcome]:
    """ORDER_STATUS_DRIFT: the attempt (and its signal) take the broker's order state."""
    attempts = _attempts_by_client_id(items)
    order_attempts_apply_broker_orders(
        pairs=[(attempts[i.finding.client_order_id], i.order) for i in items],
        store=ctx.store,
        actor=ctx.actor,
    )
    return [RepairOutcome(Action.ATTEMPT_STATUS_UPDATED) for _ in items]


def adopt_orders(items: Sequence[PlannedRepair], ctx: RepairContext) -> list[RepairOutcome]:
    """UNKNOWN_ORDER: an order with the account's prefix we never recorded joins the account's
    audit trail (one transaction per order, a savepoint inside another: an order that cannot be
    adopted fails its own finding only)."""
    outcomes = []
    for item in items:
        try:
            with transaction.atomic():
                order_attempt_adopt(
                    order=item.order,
                    actor=ctx.actor,
                    prefix=ctx.client_order_id_prefix,
                    account=ctx.account,
                )
        except Exception as exc:  # noqa: BLE001 - recorded on its finding (repair_failed), logged
            outcomes.append(_failed(Repair.ADOPT_ORDER, exc, ctx))
        else:
            outcomes.append(RepairOutcome(Action.ORDER_ADOPTED))
    return outcomes


def _attempts_by_client_id(items: Sequence[PlannedRepair]) -> dict[str, OrderAttempt]:
    ids = [i.finding.client_order_id for i in items]
    return {a.client_order_id: a for a in OrderAttempt.objects.filter(client_order_id__in=ids)}


HANDLERS: dict[Repair, Handler] = {
    Repair.CLOSE_SIGNAL: close_signals,
    Repair.MARK_ORDER_MISSING: mark_orders_missing,
    Repair.APPLY_BROKER_ORDER: apply_broker_orders,
    Repair.ADOPT_ORDER: adopt_orders,
}


def repairs_apply(items: Sequence[PlannedRepair], ctx: RepairContext) -> dict[int, RepairOutcome]:
    """Run each kind's handler on its planned repairs; returns item index -> outcome.

    A handler that raises for its batch is run again on each finding alone (in a savepoint when
    the caller holds a transaction), so a finding that cannot be repaired is recorded
    ``repair_failed`` with the reason and every other finding is repaired. An outage fails the
    findings it reaches: trying each against a service that is down would only wait longer.
    """
    by_repair: dict[Repair, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        if item.verdict is Verdict.REPAIR and item.repair is not None:
            by_repair[item.repair].append(index)
    outcomes: dict[int, RepairOutcome] = {}
    for repair, indexes in by_repair.items():
        handler = HANDLERS[repair]
        try:
            results = handler([items[i] for i in indexes], ctx)
        except Exception as exc:  # noqa: BLE001 - recorded on the findings it fails, logged
            if isinstance(exc, OUTAGES) or len(indexes) == 1:
                failed = _failed(repair, exc, ctx)
                outcomes.update({i: failed for i in indexes})
                continue
            logger.warning(
                "reconciliation run %s: %s failed for its batch of %s (%s: %s); "
                "trying each finding alone",
                ctx.run_id,
                repair,
                len(indexes),
                type(exc).__name__,
                exc,
            )
            outcomes.update(_one_by_one(handler, repair, items, indexes, ctx))
            continue
        outcomes.update(zip(indexes, results, strict=True))
    return outcomes


def _one_by_one(
    handler: Handler,
    repair: Repair,
    items: Sequence[PlannedRepair],
    indexes: Sequence[int],
    ctx: RepairContext,
) -> dict[int, RepairOutcome]:
    outcomes: dict[int, RepairOutcome] = {}
    outage: RepairOutcome | None = None
    for index in indexes:
        if outage is not None:
            outcomes[index] = outage
            continue
        try:
            with _savepoint():
                (outcomes[index],) = handler([items[index]], ctx)
        except Exception as exc:  # noqa: BLE001 - recorded on its finding (repair_failed), logged
            outcomes[index] = _failed(repair, exc, ctx)
            if isinstance(exc, OUTAGES):
                outage = outcomes[index]
    return outcomes


def _savepoint() -> AbstractContextManager:
    """A savepoint when the caller holds a transaction (a failed statement would otherwise spoil
    it on PostgreSQL); none otherwise: each handler's writes are their own transactions, and a
    transaction around one would stay open across the signal store's calls."""
    return transaction.atomic() if transaction.get_connection().in_atomic_block else nullcontext()


def _failed(repair: Repair, exc: Exception, ctx: RepairContext) -> RepairOutcome:
    """A finding's failed repair: its outcome (the reason), logged (a traceback unless an
    outage)."""
    error = f"{repair} failed: {type(exc).__name__}: {exc}"
    logger.error("reconciliation run %s: %s", ctx.run_id, error)
    logger.log(
        logging.DEBUG if isinstance(exc, OUTAGES) else logging.ERROR, "traceback", exc_info=exc
    )
    return RepairOutcome(Action.REPAIR_FAILED, error)
