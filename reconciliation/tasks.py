"""Celery tasks for reconciliation: thin wrappers over :mod:`reconciliation.services`."""

from celery import shared_task

from .services import reconciliation_run


@shared_task(name="reconciliation.run")
def reconciliation_run_task(
    *,
    trigger: str = "schedule",
    requested_by_id: int | None = None,
    rerun_of_id: int | None = None,
    dry_run: bool = False,
) -> int:
    """Run one reconciliation; returns the ``ReconciliationRun`` id (a skipped run has one too).

    Safe to retry or to deliver twice: runs are single-flight and each records itself.
    """
    run = reconciliation_run(
        trigger=trigger,
        requested_by_id=requested_by_id,
        rerun_of_id=rerun_of_id,
        dry_run=dry_run,
    )
    return run.pk
