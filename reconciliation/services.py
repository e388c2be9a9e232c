"""The reconciliation run: read, diff, confirm, plan, record, repair, complete.

The steps live in their own modules; this one orders them and keeps the run's row, which changes
only here (and in :mod:`reconciliation.reruns`, which runs an operator's queued run through this
module) and each time with a ``RunEvent`` (started, abandoned, finished). Every finished run
records the heads of the audit chains (:func:`audit.services.chain_heads_record`).
- :mod:`reconciliation.facts` reads both sides in bulk (a failed read fails the run before
  anything is repaired: it is never taken for "no positions" or "no orders");
- :mod:`reconciliation.diff` finds the mismatches (pure);
- :mod:`reconciliation.confirm` confirms terminal findings by bounded targeted look-ups;
- :mod:`reconciliation.plan` decides what to do about each finding (pure);
- :mod:`reconciliation.records` stores every ``Mismatch`` row *before* any repair, and appends
  the repair's outcome after, so no repair ever happens without its audit row;
- :mod:`reconciliation.repairs` applies the repairs, one handler per kind;
- :mod:`reconciliation.report` gives a finished run as JSON (``manage.py reconcile --json``).

A run is one account's (docs/design.md section 16): its broker, its signals (the account's
:class:`~brokerops.intent.store.AccountScope`), its attempts, under its own single-flight lock
(:func:`run_lock_name`); every row it writes carries the account. Runs of different accounts run
side by side; one account's failure (broker down, keys refused) is that account's run's only.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import chain_heads_record
from brokerops import metrics
from brokerops.accounts import DEFAULT_ACCOUNT
from brokerops.alpaca import broker_gateway
from brokerops.alpaca.accounts import account_or_default
from brokerops.intent.factory import get_signal_store
from brokerops.intent.store import AccountScope, SignalStore
from brokerops.locks import LockUnavailable, single_flight
from brokerops.logs import log_context
from brokerops.text import db_text

from .breaks import breaks_close_explained, breaks_close_repaired
from .confirm import confirm_findings
from .diff import diff
from .explain import annotate
from .explained import activities_explain
from .facts import reconciliation_facts_read
from .incremental import BaseUpdate, base_record
from .models import Mismatch, ReconciliationRun, RunEvent
from .plan import PlannedRepair, repair_plan
from .records import (
    initial_action,
    mismatches_complete,
    mismatches_record,
    run_event_record,
    run_events_record_many,
)
from .repairs import OUTAGES, RepairContext, repairs_apply
from .signals import run_finished

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)
#: The single-flight lock of an account's runs is this name, ":" and the account's.
LOCK_NAME = "reconciliation"
#: A rerun still QUEUED this long after it was asked for lost its task (see _fail_abandoned_runs).
QUEUED_RUN_EXPIRY_S = 3600
Action = Mismatch.Action
# Failures an operator acts on (broker down, store down): one line in the log, no traceback.
EXPECTED_FAILURES = OUTAGES


class ReconciliationFailed(Exception):
    """A run could not complete; the run row holds the error."""


def _account_name(account: str | None) -> str:
    """The name of ``account`` (the default account's when None). An unknown name raises
    :class:`KeyError`, no default account :class:`LookupError`; a bad configuration (keys half
    set) is left to the run to record as its failure, as before accounts."""
    try:
        return account_or_default(account).name
    except ImproperlyConfigured:
        return account or DEFAULT_ACCOUNT


def run_lock_name(account: str) -> str:
    """The single-flight lock of ``account``'s runs: one account's runs never overlap, and a
    worker that dies frees only its account's lock."""
    return f"{LOCK_NAME}:{account}"


def lock_held_error(account: str) -> str:
    """What a run skipped because ``account``'s lock was held records."""
    return f"another reconciliation run of account {account!r} holds the lock"


def reconciliation_run(
    *,
    trigger: str,
    requested_by_id: int | None = None,
    rerun_of_id: int | None = None,
    dry_run: bool = False,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
    account: str | None = None,
    full: bool = False,
) -> ReconciliationRun:
    """Run one reconciliation of ``account`` (the default account when None) now, in this
    process; returns its (finished) run row.

    Single-flight across workers, per account: when another run of the account holds its lock,
    a SKIPPED row is recorded and returned. A run that raised is recorded FAILED with the error
    (and the exception is not re-raised: the row is the result). ``dry_run`` reports without
    repairing anything. An unknown account raises :class:`KeyError` naming the known ones
    (nothing is recorded); ``gateway`` is then the account's broker (tests pass their own).
    ``full`` reads every order of the look-back (``reconcile --full``); otherwise the run reads
    incrementally when it can (docs/design.md section 18.3).
    """
    name = _account_name(account)
    requested_by = None
    if requested_by_id is not None:
        requested_by = get_user_model().objects.filter(pk=requested_by_id).first()
    fields = dict(
        account=name,
        trigger=trigger,
        requested_by=requested_by,
        requested_by_username=requested_by.get_username() if requested_by else "",
        rerun_of_id=rerun_of_id,
        dry_run=dry_run,
        worker=worker_name(),
    )

    def start() -> tuple[ReconciliationRun, bool]:
        with transaction.atomic():
            run = ReconciliationRun.objects.create(
                **fields, status=ReconciliationRun.Status.RUNNING
            )
            run_event_record(
                run=run, kind=RunEvent.Kind.STARTED, payload=_started_payload(run), actor=ACTOR
            )
        return run, True

    return single_flight_run(
        name,
        "reconciliation run",
        start,
        lambda status, error: _closed_run(fields, status, error),
        gateway=gateway,
        store=store,
        full=full,
    )


def worker_name() -> str:
    """Who runs it: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def single_flight_run(
    account: str,
    label: str,
    start: Callable[[], tuple[ReconciliationRun, bool]],
    close: Callable[[str, str], ReconciliationRun],
    *,
    gateway: AlpacaGateway | None,
    store: SignalStore | None,
    full: bool = False,
) -> ReconciliationRun:
    """One run of ``account`` under its single-flight lock: ``start`` (with the lock held, the
    account's abandoned runs closed) gives the run and whether to execute it; when another run
    of the account holds the lock, or the lock service cannot say (nothing started or
    repaired), ``close`` records the run SKIPPED or FAILED with the reason."""
    try:
        with single_flight(run_lock_name(account)) as acquired:
            if not acquired:
                return close(ReconciliationRun.Status.SKIPPED, lock_held_error(account))
            _fail_abandoned_runs(account)
            run, execute = start()
            if execute:
                with log_context(run_id=run.pk):
                    _execute(run, gateway=gateway, store=store, full=full)
            return run
    except LockUnavailable as exc:  # raised before the block ran: nothing started or repaired
        logger.error("%s not started: %s", label, exc)
        return close(ReconciliationRun.Status.FAILED, f"LockUnavailable: {exc}")


ACTOR = "reconciliation"


def _started_payload(run: ReconciliationRun) -> dict:
    return {
        "account": run.account,
        "trigger": run.trigger,
        "dry_run": run.dry_run,
        "requested_by": run.requested_by_username,
        "rerun_of": run.rerun_of_id,
        "worker": run.worker,
    }


def _finished_payload(run: ReconciliationRun) -> dict:
    return {
        "status": run.status,
        "error": run.error,
        "positions_seen": run.positions_seen,
        "orders_seen": run.orders_seen,
        "signals_seen": run.signals_seen,
        "mismatches_found": run.mismatches_found,
        "repairs_applied": run.repairs_applied,
        "api_calls": run.api_calls,
        "summary": run.summary,
    }


def _closed_run(fields: dict, status: str, error: str) -> ReconciliationRun:
    """A run that never started (skipped, or no lock service): recorded all the same."""
    now = timezone.now()
    error = db_text(error)
    with transaction.atomic():
        run = ReconciliationRun.objects.create(
            **fields, status=status, started_at=now, finished_at=now, error=error
        )
        _never_started_event(run, error)
    _run_ended(run)
    return run


def _never_started_event(run: ReconciliationRun, error: str) -> None:
    """The one ``finished`` event of a run that never started (it carries the start's facts)."""
    run_event_record(
        run=run,
        kind=RunEvent.Kind.FINISHED,
        message=error,
        payload={**_started_payload(run), **_finished_payload(run)},
        actor=ACTOR,
    )


def _run_ended(run: ReconciliationRun) -> None:
    """What follows every run's end, after its rows committed: the chain heads, its metrics, its
    announcement to the floors above (alerts listens); none of them can fail the run."""
    _record_heads(run)
    metrics.reconciliation_run_record(run=run)
    # A receiver that raises is logged by Django (ERROR, with its traceback), never passed on.
    run_finished.send_robust(sender=ReconciliationRun, run=run)


def _fail_abandoned_runs(account: str) -> None:
    """We hold ``account``'s lock, so any run of the account still RUNNING belongs to a worker
    that died; a run QUEUED for longer than :data:`QUEUED_RUN_EXPIRY_S` had its task message
    lost (it would otherwise show "queued" for ever). Both are closed FAILED with an
    ``abandoned`` event. Other accounts' runs are theirs to close (their lock may be held)."""
    died = "abandoned: its worker stopped before finishing (found by the next run)"
    lost = "abandoned: requested but never started (its task was lost; found by the next run)"
    expired = timezone.now() - timedelta(seconds=QUEUED_RUN_EXPIRY_S)
    with transaction.atomic():
        runs = list(
            ReconciliationRun.objects.select_for_update().filter(
                Q(status=ReconciliationRun.Status.RUNNING)
                | Q(status=ReconciliationRun.Status.QUEUED, started_at__lt=expired),
                account=account,
            )
        )
        if not runs:
            return
        now = timezone.now()
        for run in runs:
            run.error = died if run.status == ReconciliationRun.Status.RUNNING else lost
            run.status = ReconciliationRun.Status.FAILED
            run.finished_at = now
        ReconciliationRun.objects.bulk_update(runs, ["status", "finished_at", "error"])
        for error in (died, lost):
            if closed := [run for run in runs if run.error == error]:
                run_events_record_many(
                    runs=closed, kind=RunEvent.Kind.ABANDONED, message=error, actor=ACTOR
                )
    metrics.reconciliation_runs_abandoned_record(count=len(runs))


def _record_heads(run: ReconciliationRun) -> None:
    """The audit chains' heads as this run leaves them (a failure here is logged: the run's
    own rows are stored; the next run records heads again)."""
    try:
        chain_heads_record(run=run, recorded_by=f"reconciliation run #{run.pk}")
    except Exception:  # the run is recorded; a missing set of heads is logged
        logger.exception("reconciliation run %s: chain heads not recorded", run.pk)


def _execute(
    run: ReconciliationRun,
    *,
    gateway: AlpacaGateway | None,
    store: SignalStore | None,
    full: bool = False,
) -> None:
    timings: dict[str, float] = {}
    next_base: BaseUpdate | None = None
    planned: list[PlannedRepair] = []
    outcomes: dict[int, tuple[str, str]] = {}
    try:
        gateway = gateway or broker_gateway(run.account)
        store = store or get_signal_store()
        scope = AccountScope.of(run.account)
    except Exception as exc:  # noqa: BLE001 - a bad setting: recorded on the run, logged
        _mark_failed(run, exc)
        _finish(run, planned, outcomes)
        return
    with gateway.count_calls(current_thread_only=True) as calls:
        try:
            with _phase(timings, "read_s"):
                facts = reconciliation_facts_read(
                    gateway=gateway,
                    store=store,
                    calls=calls,
                    now=timezone.now(),
                    scope=scope,
                    full=full,
                )
            # Which read the run made, and why: in its summary (so its finished event's payload).
            run.summary["orders_read"] = facts.orders_read.report()
            next_base = facts.next_base
            run.positions_seen = facts.positions_seen
            run.orders_seen = facts.orders_seen
            run.signals_seen = facts.signals_seen
            # Explained breaks (docs/design.md section 18.4): the stored activities move the
            # signals they fully explain before the diff compares them.
            with _phase(timings, "explain_s"):
                explained = activities_explain(
                    account=run.account,
                    diff_input=facts.diff_input,
                    signals_by_id=facts.signals_by_id,
                    store=store,
                    actor=f"reconciliation run #{run.pk}",
                    dry_run=run.dry_run,
                )
                run.summary["explained"] = explained.explanation.summary()
            with _phase(timings, "diff_s"):
                findings = annotate(diff(explained.diff_input), explained.explanation)
            with _phase(timings, "confirm_s"):
                lookups = confirm_findings(
                    findings,
                    gateway=gateway,
                    calls=calls,
                    budget=settings.RECONCILE_MAX_CONFIRMATIONS,
                )
            planned = repair_plan(
                findings,
                position_absent=lookups.position_absent,
                orders_looked_up=lookups.orders,
                orders_by_client_id=facts.orders_by_client_id,
            )
            breaks_close_explained(
                run=run,
                explained=explained.explanation.explained,
                activity_ids=explained.explanation.activity_ids,
            )
            with _phase(timings, "record_s"):
                rows = mismatches_record(run=run, planned=planned, dry_run=run.dry_run)
            if not run.dry_run:
                context = RepairContext(
                    run_id=run.pk,
                    store=store,
                    signals_by_id=explained.signals_by_id,
                    scope=scope,
                )
                with _phase(timings, "repair_s"):
                    outcomes = {
                        i: (o.action, o.detail) for i, o in repairs_apply(planned, context).items()
                    }
                mismatches_complete(rows=rows, outcomes=outcomes, actor=context.actor)
                breaks_close_repaired(
                    run=run,
                    mismatches=[
                        rows[i]
                        for i, (a, _) in outcomes.items()
                        if a == Action.SIGNAL_CLOSED_MANUAL
                    ],
                )
        except Exception as exc:  # noqa: BLE001 - recorded on the run (the row is the result), logged
            _mark_failed(run, exc)
        else:
            _mark_completed(run, outcomes)
    run.api_calls = calls.total
    run.summary["timings"] = timings
    _finish(run, planned, outcomes, next_base=next_base)


def _mark_completed(run: ReconciliationRun, outcomes: dict[int, tuple[str, str]]) -> None:
    """Every step ran: SUCCEEDED, or FAILED when a repair failed (the first one is named)."""
    failed = [d for a, d in outcomes.values() if a == Action.REPAIR_FAILED]
    if failed:
        run.status = ReconciliationRun.Status.FAILED
        run.error = db_text(f"{len(failed)} repair(s) failed; first: {failed[0]}")
        logger.error("reconciliation run %s: %s", run.pk, run.error)
    else:
        run.status = ReconciliationRun.Status.SUCCEEDED


def _mark_failed(run: ReconciliationRun, exc: Exception) -> None:
    run.status = ReconciliationRun.Status.FAILED
    # The exception's text may be a broker's (any character): made safe for the column.
    run.error = db_text(f"{type(exc).__name__}: {exc}")
    _log_failure(run, exc)


def _log_failure(run: ReconciliationRun, exc: Exception) -> None:
    if isinstance(exc, EXPECTED_FAILURES):
        logger.error("reconciliation run %s failed: %s", run.pk, run.error)
        logger.debug("reconciliation run %s failure", run.pk, exc_info=exc)
    else:  # a bug or an unforeseen failure: keep the traceback
        logger.exception("reconciliation run %s failed", run.pk)


@contextmanager
def _phase(timings: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - started, 3)


def _finish(
    run: ReconciliationRun,
    planned: list[PlannedRepair],
    outcomes: dict[int, tuple[str, str]],
    *,
    next_base: BaseUpdate | None = None,
) -> None:
    actions = [
        outcomes[i][0] if i in outcomes else initial_action(item, dry_run=run.dry_run)
        for i, item in enumerate(planned)
    ]
    run.mismatches_found = len(planned)
    run.repairs_applied = sum(a not in _NOT_APPLIED for a in actions)
    run.finished_at = timezone.now()
    run.summary = {
        **run.summary,
        "by_kind": _count(item.finding.kind.value for item in planned),
        "by_action": _count(actions),
    }
    try:
        _record_finished(run, next_base=next_base)
    except DatabaseError as exc:
        # A run always finishes, whatever its error: when the database refuses what it says
        # (any text the helpers missed), it finishes FAILED saying so, in plain ASCII.
        logger.exception("reconciliation run %s: recording its end failed", run.pk)
        said = ascii(run.error)[1:-1]
        run.status = ReconciliationRun.Status.FAILED
        run.error = db_text(
            f"recording the run's end failed ({type(exc).__name__}); it said: {said}"
        )
        _record_finished(run)
    _run_ended(run)


def _record_finished(run: ReconciliationRun, *, next_base: BaseUpdate | None = None) -> None:
    with transaction.atomic():
        run.save()
        # Only a successful run is the next one's base: after a failure the next reads from the
        # last success, so nothing that changed meanwhile is left unread.
        if next_base is not None and run.status == ReconciliationRun.Status.SUCCEEDED:
            base_record(account=run.account, run_id=run.pk, update=next_base)
        run_event_record(
            run=run,
            kind=RunEvent.Kind.FINISHED,
            message=run.error,
            payload=_finished_payload(run),
            actor=ACTOR,
        )


_NOT_APPLIED = frozenset(
    {
        Action.FLAGGED,
        Action.DRY_RUN,
        Action.REPAIR_SKIPPED,
        Action.REPAIR_FAILED,
        Action.REPAIR_STARTED,
    }
)


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return dict(sorted(counts.items()))
