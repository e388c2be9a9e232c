"""Celery tasks for reconciliation: thin wrappers over :mod:`reconciliation.services`."""

from celery import shared_task

from .services import reconciliation_run, reconciliation_run_queued


@shared_task(name="reconciliation.run")
def reconciliation_run_task(
    *,
    trigger: str = "schedule",
    requested_by_id: int | None = None,
    rerun_of_id: int | None = None,
    dry_run: bool = False,
    run_id: int | None = None,
) -> int:
    """Run one reconciliation; returns the ``ReconciliationRun`` id (a skipped run has one too).

    With ``run_id``: run that queued run (an operator's rerun, recorded when it was asked for);
    the other arguments are then the queued row's. Safe to retry or to deliver twice: runs are
    single-flight, each records itself, and a queued run is claimed once.
    """
    if run_id is not None:
        return reconciliation_run_queued(run_id=run_id).pk
    run = reconciliation_run(
        trigger=trigger,
        requested_by_id=requested_by_id,
        rerun_of_id=rerun_of_id,
        dry_run=dry_run,
    )
    return run.pk
