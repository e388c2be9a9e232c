"""An operator's rerun: recorded QUEUED when asked for (:func:`reconciliation_request_rerun`),
run by its task: claimed once, in its account, under the account's lock, through the same steps
as any run (:mod:`reconciliation.services`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from brokerops.alpaca.accounts import account_or_default
from brokerops.intent.store import SignalStore
from brokerops.text import db_text

from .models import ReconciliationRun, RunEvent
from .records import run_event_record
from .services import (
    ACTOR,
    _account_name,
    _never_started_event,
    _run_ended,
    _started_payload,
    single_flight_run,
    worker_name,
)

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)


def reconciliation_run_queued(
    *,
    run_id: int,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
) -> ReconciliationRun:
    """Run the QUEUED run ``run_id`` (an operator's rerun) of its account; returns its row as
    it ends.

    A run executes at most once: it is claimed (QUEUED -> RUNNING) under a row lock while the
    account's single-flight lock is held, so a task delivered twice finds it claimed and returns
    it untouched. When another run of the account holds the lock the queued run is recorded
    SKIPPED, as a scheduled one would be; a run of an account no longer configured is recorded
    FAILED saying so.
    """
    worker = worker_name()
    account = ReconciliationRun.objects.values_list("account", flat=True).get(pk=run_id)
    try:
        account_or_default(account)
    except KeyError as exc:  # removed from the accounts' file since the rerun was asked for
        return _queued_run_close(run_id, ReconciliationRun.Status.FAILED, exc.args[0], worker)

    def start() -> tuple[ReconciliationRun, bool]:
        run = _queued_run_claim(run_id, worker)
        if run is None:
            return ReconciliationRun.objects.get(pk=run_id), False
        return run, True

    return single_flight_run(
        account,
        f"reconciliation run {run_id}",
        start,
        lambda status, error: _queued_run_close(run_id, status, error, worker),
        gateway=gateway,
        store=store,
    )


def _queued_run_claim(run_id: int, worker: str) -> ReconciliationRun | None:
    """QUEUED -> RUNNING with its ``started`` event, or None when it is not queued any more."""
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().get(pk=run_id)
        if run.status != ReconciliationRun.Status.QUEUED:
            logger.info(
                "reconciliation run %s is %s, not queued: not run again", run_id, run.status
            )
            return None
        run.status = ReconciliationRun.Status.RUNNING
        run.started_at = timezone.now()
        run.worker = worker
        run.save(update_fields=["status", "started_at", "worker"])
        run_event_record(
            run=run, kind=RunEvent.Kind.STARTED, payload=_started_payload(run), actor=ACTOR
        )
    return run


def _queued_run_close(run_id: int, status: str, error: str, worker: str) -> ReconciliationRun:
    """A queued run that could not start: closed with ``status`` (if still queued)."""
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().get(pk=run_id)
        if run.status != ReconciliationRun.Status.QUEUED:
            return run
        run.status = status
        run.finished_at = timezone.now()
        run.error = db_text(error)
        run.worker = worker
        run.save(update_fields=["status", "finished_at", "error", "worker"])
        _never_started_event(run, error)
    _run_ended(run)
    return run


def reconciliation_request_rerun(
    *, run_id: int | None, user_id: int, account: str | None = None
) -> ReconciliationRun:
    """A rerun for an operator (the admin's action and button): the run is recorded QUEUED now,
    with its ``requested`` event naming who asked, and its task is enqueued after commit with
    that run's id (:func:`reconciliation.reruns.reconciliation_run_queued` runs it). Returns the
    queued run, so the operator can be shown its page at once.

    A rerun of run ``run_id`` is of that run's account; a new run (``run_id`` None) is of
    ``account`` (the default account when None; an unknown one raises :class:`KeyError`)."""
    from .tasks import reconciliation_run_task

    if run_id is not None:
        name = ReconciliationRun.objects.values_list("account", flat=True).get(pk=run_id)
    else:
        name = _account_name(account)
    user = get_user_model().objects.filter(pk=user_id).first()
    username = user.get_username() if user else ""
    with transaction.atomic():
        run = ReconciliationRun.objects.create(
            account=name,
            trigger=ReconciliationRun.Trigger.ADMIN,
            requested_by=user,
            requested_by_username=username,
            rerun_of_id=run_id,
            status=ReconciliationRun.Status.QUEUED,
        )
        run_event_record(
            run=run,
            kind=RunEvent.Kind.REQUESTED,
            message=f"rerun requested by {username or f'user #{user_id}'}",
            payload=_started_payload(run),
            actor=username,
        )
        run_pk = run.pk
        transaction.on_commit(lambda: reconciliation_run_task.delay(run_id=run_pk))
    return run
