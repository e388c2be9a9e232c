"""Repairs: one handler per kind of repair, fed by the pure plan (:mod:`reconciliation.plan`).

The service stores every finding's ``Mismatch`` row (``repair_started`` for a repair) before any
handler runs, then completes the rows with what the handlers report, so a crash in between leaves
a visible "repair started" row, never a silent change. A handler gets all planned repairs of its
kind and returns one :class:`RepairOutcome` per item, in order; one that raises fails only its own
items (recorded ``repair_failed``), never the other handlers.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import SignalStore, Transition, TransitionOutcome, TransitionResult
from orders.models import OrderAttempt
from orders.pairing import MISSING_REASON
from orders.services import (
    order_attempt_adopt,
    order_attempts_apply_broker_orders,
    order_attempts_mark_missing,
)

from .diff import ReconciliationErrors
from .models import Mismatch
from .plan import PlannedRepair, Repair

logger = logging.getLogger(__name__)
Action = Mismatch.Action


@dataclass(frozen=True)
class RepairOutcome:
    action: str  # a Mismatch.Action value
    detail: str = ""


@dataclass(frozen=True)
class RepairContext:
    run_id: int
    store: SignalStore
    signals_by_id: dict[str, Signal]  # as the run read them
    client_order_id_prefix: str

    @property
    def actor(self) -> str:
        return f"reconciliation run #{self.run_id}"


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
    transitions = [_close_transition(item, ctx) for item in items]
    results = ctx.store.transition_many(transitions)
    retry = [
        (i, replace(transitions[i], expected_version=result.current.version))
        for i, result in enumerate(results)
        if result.outcome is TransitionOutcome.CHANGED
        and _still_orphan(result.current, items[i].finding.symbol)
    ]
    if retry:
        for (i, _), result in zip(
            retry, ctx.store.transition_many([t for _, t in retry]), strict=True
        ):
            results[i] = result
    return [_close_outcome(item, result) for item, result in zip(items, results, strict=True)]


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
    """ORDER_NOT_FOUND confirmed by a 404: the attempt is MISSING, its signal CANCELED."""
    attempts = _attempts_by_client_id(items)
    marked = {
        change.client_order_id
        for change in order_attempts_mark_missing(
            attempts=[attempts[i.finding.client_order_id] for i in items],
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
    """UNKNOWN_ORDER: an order with our prefix we never recorded joins the audit trail."""
    for item in items:
        order_attempt_adopt(order=item.order, actor=ctx.actor, prefix=ctx.client_order_id_prefix)
    return [RepairOutcome(Action.ORDER_ADOPTED) for _ in items]


def _attempts_by_client_id(items: Sequence[PlannedRepair]) -> dict[str, OrderAttempt]:
    ids = [i.finding.client_order_id for i in items]
    return {a.client_order_id: a for a in OrderAttempt.objects.filter(client_order_id__in=ids)}


HANDLERS: dict[Repair, Handler] = {
    Repair.CLOSE_SIGNAL: close_signals,
    Repair.MARK_ORDER_MISSING: mark_orders_missing,
    Repair.APPLY_BROKER_ORDER: apply_broker_orders,
    Repair.ADOPT_ORDER: adopt_orders,
}
