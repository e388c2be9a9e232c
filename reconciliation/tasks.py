"""Celery tasks for reconciliation: thin wrappers over :mod:`reconciliation.services`."""

from celery import shared_task

from .eod_mail import eod_report_due
from .reruns import reconciliation_run_queued
from .services import reconciliation_run


@shared_task(name="reconciliation.run")
def reconciliation_run_task(
    *,
    trigger: str = "schedule",
    requested_by_id: int | None = None,
    rerun_of_id: int | None = None,
    dry_run: bool = False,
    run_id: int | None = None,
    account: str | None = None,
) -> int:
    """Run one reconciliation of ``account`` (the default account when None; the fan-out names
    each, docs/design.md section 16); returns the ``ReconciliationRun`` id (a skipped run has
    one too). An unknown account fails the task with :class:`KeyError` naming the known ones.

    With ``run_id``: run that queued run (an operator's rerun, recorded when it was asked for);
    the other arguments are then the queued row's (its account included). Safe to retry or to
    deliver twice: runs are single-flight per account, each records itself, and a queued run is
    claimed once.
    """
    if run_id is not None:
        return reconciliation_run_queued(run_id=run_id).pk
    run = reconciliation_run(
        trigger=trigger,
        requested_by_id=requested_by_id,
        rerun_of_id=rerun_of_id,
        dry_run=dry_run,
        account=account,
    )
    return run.pk


@shared_task(name="reconciliation.eod_report")
def eod_report_task() -> str:
    """Beat's check for the end-of-day report: sent once a day after ``REPORT_AT`` in
    ``REPORT_TZ`` (docs/design.md section 17); returns what it did."""
    return eod_report_due()
