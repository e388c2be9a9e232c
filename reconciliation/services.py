"""The reconciliation run: read both sides in bulk, diff, confirm, repair, record.

One run = one bulk read of positions, a paginated bulk read of orders, one read of the relevant
signals and one query of our open attempts; then the pure diff (:mod:`reconciliation.diff`),
targeted look-ups only to confirm a finding before a terminal action (bounded per run), repairs,
and the ``Mismatch`` rows in one bulk insert. A read that fails fails the run before anything is
repaired: a failed read is never taken for "no positions" or "no orders".
"""

import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from brokerops.alpaca import AlpacaGateway, CallCount, Order, symbol_key
from brokerops.boundaries import broker_gateway, signal_store
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStore, Transition
from brokerops.locks import single_flight
from orders.models import OrderAttempt
from orders.services import (
    order_attempt_adopt,
    order_attempts_apply_broker_orders,
    order_attempts_mark_missing,
)

from .confirm import confirm_findings
from .diff import (
    AttemptFact,
    DiffInput,
    Finding,
    InvalidSignalFact,
    OrderFact,
    PositionFact,
    ReconciliationErrors,
    SignalFact,
    diff,
)
from .models import Mismatch, ReconciliationRun

logger = logging.getLogger(__name__)
LOCK_NAME = "reconciliation"
Action = Mismatch.Action
RELEVANT_SIGNAL_STATUSES = (SignalStatus.ACTIVE, SignalStatus.SUBMITTED)
# Attempts whose order the broker decides. CREATED and UNKNOWN ones belong to the order cycle,
# which resolves them by client_order_id before anything is (re)sent.
CHECKED_ATTEMPT_STATUSES = (OrderAttempt.Status.OPEN, OrderAttempt.Status.PARTIALLY_FILLED)


class ReconciliationFailed(Exception):
    """A run could not complete; the run row holds the error."""


@dataclass
class _Outcome:
    finding: Finding
    action: str
    detail: str = ""


def reconciliation_run(
    *,
    trigger: str,
    requested_by_id: int | None = None,
    rerun_of_id: int | None = None,
    dry_run: bool = False,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
) -> ReconciliationRun:
    """Run one reconciliation now, in this process; returns its (finished) run row.

    Single-flight across workers: when another run holds the lock, a SKIPPED row is recorded
    and returned. A run that raised is recorded FAILED with the error (and the exception is not
    re-raised: the row is the result). ``dry_run`` reports without repairing anything.
    """
    requested_by = None
    if requested_by_id is not None:
        requested_by = get_user_model().objects.filter(pk=requested_by_id).first()
    fields = dict(
        trigger=trigger,
        requested_by=requested_by,
        requested_by_username=requested_by.get_username() if requested_by else "",
        rerun_of_id=rerun_of_id,
        dry_run=dry_run,
        worker=f"{socket.gethostname()}:{os.getpid()}",
    )
    ttl = settings.CELERY_TASK_TIME_LIMIT + 60
    with single_flight(LOCK_NAME, ttl_s=ttl) as acquired:
        if not acquired:
            now = timezone.now()
            return ReconciliationRun.objects.create(
                **fields,
                status=ReconciliationRun.Status.SKIPPED,
                started_at=now,
                finished_at=now,
                error="another reconciliation run holds the lock",
            )
        _fail_abandoned_runs()
        run = ReconciliationRun.objects.create(**fields, status=ReconciliationRun.Status.RUNNING)
        _execute(run, gateway=gateway or broker_gateway(), store=store or signal_store())
        return run


def _fail_abandoned_runs() -> None:
    """We hold the lock, so any run still RUNNING belongs to a worker that died."""
    ReconciliationRun.objects.filter(status=ReconciliationRun.Status.RUNNING).update(
        status=ReconciliationRun.Status.FAILED,
        finished_at=timezone.now(),
        error="abandoned: its worker stopped before finishing (found by the next run)",
    )


def _execute(run: ReconciliationRun, *, gateway: AlpacaGateway, store: SignalStore) -> None:
    outcomes: list[_Outcome] = []
    timings: dict[str, float] = {}
    with gateway.count_calls(current_thread_only=True) as calls:
        try:
            with _phase(timings, "read_s"):
                facts, orders = _read_both_sides(run, gateway=gateway, store=store, calls=calls)
            with _phase(timings, "diff_s"):
                findings = diff(facts)
            with _phase(timings, "confirm_and_repair_s"):
                outcomes = _confirm_and_repair(
                    run, findings, orders, gateway=gateway, store=store, calls=calls
                )
        except Exception as exc:  # any failure is recorded on the run (the row is the result)
            run.status = ReconciliationRun.Status.FAILED
            run.error = f"{type(exc).__name__}: {exc}"
            logger.exception("reconciliation run %s failed", run.pk)
        else:
            run.status = ReconciliationRun.Status.SUCCEEDED
    run.api_calls = calls.total
    run.summary["timings"] = timings
    _record(run, outcomes)


@contextmanager
def _phase(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 3)


def _read_both_sides(
    run: ReconciliationRun, *, gateway: AlpacaGateway, store: SignalStore, calls: CallCount
) -> tuple[DiffInput, list[Order]]:
    now = timezone.now()
    attempts = list(
        OrderAttempt.objects.filter(status__in=CHECKED_ATTEMPT_STATUSES).values(
            "client_order_id",
            "symbol",
            "status",
            "broker_status",
            "created_at",
            "alpaca_order_id",
            "signal_id",
        )
    )
    after = now - timedelta(hours=settings.RECONCILE_ORDER_LOOKBACK_HOURS)
    if attempts:  # reach back to the oldest open attempt so its order is in the list
        after = min(after, min(a["created_at"] for a in attempts) - timedelta(minutes=5))
    # The two broker reads run beside the signal read (the broker's wait overlaps ours); any
    # failure propagates and fails the run before anything is repaired.
    with ThreadPoolExecutor(2, initializer=calls.include_current_thread) as pool:
        positions_read = pool.submit(gateway.list_positions)
        orders_read = pool.submit(gateway.list_orders, status="all", after=after)
        read = store.read(statuses=RELEVANT_SIGNAL_STATUSES, include_unknown_status=True)
        positions, orders = positions_read.result(), orders_read.result()
    run.positions_seen = len(positions)
    run.orders_seen = len(orders)
    run.signals_seen = len(read)

    recorded = _recorded_client_order_ids(
        o.client_order_id
        for o in orders
        if o.client_order_id.startswith(f"{settings.CLIENT_ORDER_ID_PREFIX}-")
    )
    known_attempts = [
        AttemptFact(
            client_order_id=a["client_order_id"],
            symbol_key=symbol_key(a["symbol"]),
            status=a["status"],
            broker_status=a["broker_status"],
            created_at=a["created_at"],
            alpaca_order_id=a["alpaca_order_id"],
            signal_id=a["signal_id"],
        )
        for a in attempts
    ]
    # Closed attempts matter only to tell "ours" from "unknown": give the diff their ids.
    open_ids = {a.client_order_id for a in known_attempts}
    known_attempts += [
        AttemptFact(
            client_order_id=coid, symbol_key="", status="closed", broker_status="", created_at=now
        )
        for coid in recorded - open_ids
    ]
    facts = DiffInput(
        positions=[PositionFact(p.symbol_key, p.qty) for p in positions],
        orders=[
            OrderFact(
                id=o.id,
                client_order_id=o.client_order_id,
                symbol_key=o.symbol_key,
                status=o.status,
                side=o.side,
                qty=o.qty,
                filled_qty=o.filled_qty,
            )
            for o in orders
        ],
        signals=[
            SignalFact(
                id=s.id,
                symbol_key=s.symbol_key,
                status=str(s.status),
                signed_qty=s.signed_qty,
                side=str(s.side),
                client_order_id=s.client_order_id,
            )
            for s in read.signals
        ],
        invalid_signals=[InvalidSignalFact(i.id, tuple(i.reasons)) for i in read.invalid],
        attempts=known_attempts,
        client_order_id_prefix=settings.CLIENT_ORDER_ID_PREFIX,
        now=now,
        grace=timedelta(seconds=settings.ORDER_GRACE_S),
    )
    return facts, orders


def _recorded_client_order_ids(candidates: Iterable[str]) -> set[str]:
    """Which of these client_order_ids we have attempts for (in batches of 2,000 ids)."""
    candidates = list(candidates)
    found: set[str] = set()
    for start in range(0, len(candidates), 2000):
        found.update(
            OrderAttempt.objects.filter(
                client_order_id__in=candidates[start : start + 2000]
            ).values_list("client_order_id", flat=True)
        )
    return found


def _confirm_and_repair(
    run: ReconciliationRun,
    findings: list[Finding],
    orders: list[Order],
    *,
    gateway: AlpacaGateway,
    store: SignalStore,
    calls: CallCount,
) -> list[_Outcome]:
    lookups = confirm_findings(
        findings, gateway=gateway, calls=calls, budget=settings.RECONCILE_MAX_CONFIRMATIONS
    )
    outcomes: list[_Outcome] = []
    orphans: list[Finding] = []
    missing: list[tuple[Finding, OrderAttempt]] = []
    drift: list[tuple[Finding, OrderAttempt, Order]] = []
    adopt: list[tuple[Finding, Order]] = []
    orders_by_coid = {o.client_order_id: o for o in orders}
    attempts = {
        a.client_order_id: a
        for a in OrderAttempt.objects.filter(
            client_order_id__in=[
                f.client_order_id
                for f in findings
                if f.kind
                in (ReconciliationErrors.ORDER_NOT_FOUND, ReconciliationErrors.ORDER_STATUS_DRIFT)
            ]
        )
    }
    over_budget = "confirmation budget spent: next run"

    for finding in findings:
        kind = finding.kind
        if kind is ReconciliationErrors.ORPHAN_POSITION:
            absent = lookups.position_absent.get(finding.symbol)
            if absent is None:
                outcomes.append(_Outcome(finding, Action.REPAIR_SKIPPED, over_budget))
            elif absent:
                orphans.append(finding)
            else:
                outcomes.append(
                    _Outcome(
                        finding,
                        Action.REPAIR_SKIPPED,
                        "targeted look-up found the position: bulk read lagged",
                    )
                )
        elif kind is ReconciliationErrors.ORDER_NOT_FOUND:
            attempt = attempts[finding.client_order_id]
            if finding.client_order_id not in lookups.orders:
                outcomes.append(_Outcome(finding, Action.REPAIR_SKIPPED, over_budget))
            elif (order := lookups.orders[finding.client_order_id]) is None:
                missing.append((finding, attempt))
            else:  # it exists after all: whatever its state, take it
                drift.append(
                    (
                        replace(
                            finding,
                            kind=ReconciliationErrors.ORDER_STATUS_DRIFT,
                            broker_status=order.status,
                            alpaca_order_id=order.id,
                            detail="absent from the list, found by look-up",
                        ),
                        attempt,
                        order,
                    )
                )
        elif kind is ReconciliationErrors.ORDER_STATUS_DRIFT:
            drift.append(
                (
                    finding,
                    attempts[finding.client_order_id],
                    orders_by_coid[finding.client_order_id],
                )
            )
        elif kind is ReconciliationErrors.UNKNOWN_ORDER:
            adopt.append((finding, orders_by_coid[finding.client_order_id]))
        else:
            outcomes.append(_Outcome(finding, Action.FLAGGED))

    for finding in orphans:
        logger.critical(
            "%s: %s signal %s expects %s, Alpaca holds none (run %s)",
            ReconciliationErrors.ORPHAN_POSITION,
            finding.symbol,
            finding.signal_id,
            finding.expected_qty,
            run.pk,
        )
    if run.dry_run:
        outcomes += [_Outcome(f, Action.DRY_RUN) for f in orphans]
        outcomes += [_Outcome(f, Action.DRY_RUN) for f, _ in missing]
        outcomes += [_Outcome(f, Action.DRY_RUN) for f, _, _ in drift]
        outcomes += [_Outcome(f, Action.DRY_RUN) for f, _ in adopt]
        return outcomes

    actor = f"reconciliation run #{run.pk}"
    outcomes += _close_orphans(run, orphans, store=store)
    if missing:
        order_attempts_mark_missing(
            attempts=[a for _, a in missing],
            store=store,
            actor=actor,
            why="order not found at Alpaca (confirmed by client_order_id): canceled by hand?",
        )
        outcomes += [_Outcome(f, Action.ATTEMPT_MARKED_MISSING) for f, _ in missing]
    if drift:
        order_attempts_apply_broker_orders(
            pairs=[(a, o) for _, a, o in drift], store=store, actor=actor
        )
        outcomes += [_Outcome(f, Action.ATTEMPT_STATUS_UPDATED) for f, _, _ in drift]
    for finding, order in adopt:
        order_attempt_adopt(order=order, actor=actor, prefix=settings.CLIENT_ORDER_ID_PREFIX)
        outcomes.append(_Outcome(finding, Action.ORDER_ADOPTED))
    return outcomes


def _close_orphans(
    run: ReconciliationRun, orphans: list[Finding], *, store: SignalStore
) -> list[_Outcome]:
    if not orphans:
        return []
    results = store.transition_many(
        [
            Transition(
                signal_id=f.signal_id,
                expected_status=SignalStatus.ACTIVE,
                new_status=SignalStatus.CLOSED_MANUAL,
                reason=f"reconciliation run #{run.pk}: {ReconciliationErrors.ORPHAN_POSITION}, "
                f"Alpaca holds no {f.symbol}",
            )
            for f in orphans
        ]
    )
    return [
        _Outcome(f, Action.SIGNAL_CLOSED_MANUAL)
        if r.applied
        else _Outcome(f, Action.REPAIR_SKIPPED, f"signal not moved: {r.outcome} {r.detail}".strip())
        for f, r in zip(orphans, results, strict=True)
    ]


def _record(run: ReconciliationRun, outcomes: list[_Outcome]) -> None:
    now = timezone.now()
    rows = [
        Mismatch(
            run=run,
            kind=o.finding.kind.value,
            severity=o.finding.severity.value,
            symbol=o.finding.symbol[:32],
            signal_id=o.finding.signal_id[:255],
            client_order_id=o.finding.client_order_id,
            alpaca_order_id=o.finding.alpaca_order_id,
            expected_qty=o.finding.expected_qty,
            actual_qty=o.finding.actual_qty,
            action=o.action,
            detail="; ".join(x for x in (o.finding.detail, o.detail) if x),
            created_at=now,
        )
        for o in outcomes
    ]
    run.mismatches_found = len(rows)
    run.repairs_applied = sum(
        o.action
        not in (Action.FLAGGED, Action.DRY_RUN, Action.REPAIR_SKIPPED, Action.REPAIR_FAILED)
        for o in outcomes
    )
    run.finished_at = now
    run.summary = {
        **run.summary,
        "by_kind": _count(o.finding.kind.value for o in outcomes),
        "by_action": _count(o.action for o in outcomes),
    }
    with transaction.atomic():
        Mismatch.objects.bulk_create(rows, batch_size=1000)
        run.save()


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))


def run_as_json(run: ReconciliationRun) -> dict:
    """The JSON object ``manage.py reconcile --json`` prints (DESIGN.md section 10)."""
    return {
        "run_id": run.pk,
        "status": run.status,
        "dry_run": run.dry_run,
        "positions_seen": run.positions_seen,
        "signals_seen": run.signals_seen,
        "orders_seen": run.orders_seen,
        "api_calls": run.api_calls,
        "duration_s": round(run.duration_s or 0.0, 3),
        "error": run.error or None,
        "mismatches": [
            {
                "kind": m.kind,
                "symbol": m.symbol,
                "signal_id": m.signal_id,
                "client_order_id": m.client_order_id,
                "expected_qty": None if m.expected_qty is None else _plain(m.expected_qty),
                "actual_qty": None if m.actual_qty is None else _plain(m.actual_qty),
                "action": m.action,
            }
            for m in run.mismatches.order_by("id")
        ],
    }


def _plain(value) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def reconciliation_request_rerun(*, run_id: int | None, user_id: int) -> None:
    """Enqueue a rerun for an operator (the admin's action and button), after commit."""
    from .tasks import reconciliation_run_task

    transaction.on_commit(
        lambda: reconciliation_run_task.delay(
            trigger=ReconciliationRun.Trigger.ADMIN, requested_by_id=user_id, rerun_of_id=run_id
        )
    )
