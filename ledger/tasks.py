"""Celery tasks of the ledger: thin wrappers over :mod:`ledger.services`.

``ledger.sync_activities`` is one account's work (keyword ``account``, None: the default
account; docs/design.md section 16): beat's fan-out enqueues one per account every
``ACTIVITIES_SYNC_INTERVAL_S``, and each holds its account's single-flight lock
(``ledger-activities:<account>``). Safe to deliver twice: an id already stored is skipped.
"""

from celery import shared_task

from .services import activities_sync


@shared_task(name="ledger.sync_activities")
def activities_sync_task(*, account: str | None = None) -> dict[str, object]:
    """Read and store the new activities of ``account``; returns the sync's report."""
    return activities_sync(account=account).report()
