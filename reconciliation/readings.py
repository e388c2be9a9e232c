"""What reconciliation hands the ground floor's probes (:mod:`brokerops.readings`): the end of
the last successful run, for ``/readyz``, ``/metrics`` and the stale-runs alert."""

from __future__ import annotations

from datetime import datetime

from django.db import DEFAULT_DB_ALIAS

from .models import ReconciliationRun


def last_successful_run_finished_at(*, using: str = DEFAULT_DB_ALIAS) -> datetime | None:
    """When the latest successful, non-dry reconciliation run finished (the (status,
    started_at) index finds it: runs are single-flight, so the latest started is the latest
    finished)."""
    return (
        ReconciliationRun.objects.using(using)
        .filter(status=ReconciliationRun.Status.SUCCEEDED, dry_run=False)
        .order_by("-started_at")
        .values_list("finished_at", flat=True)
        .first()
    )
