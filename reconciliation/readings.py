"""What reconciliation hands the ground floor's probes (:mod:`brokerops.readings`): the end of
the last successful run, for ``/readyz``, ``/metrics`` and the stale-runs alert."""

from __future__ import annotations

from datetime import datetime

from django.db import DEFAULT_DB_ALIAS

from .models import ReconciliationRun


def last_successful_run_finished_at(
    *, account: str | None = None, using: str = DEFAULT_DB_ALIAS
) -> datetime | None:
    """When the latest successful, non-dry reconciliation run of ``account`` (of any account
    when None) finished. The (status, started_at) index finds it: an account's runs are
    single-flight, so its latest started is its latest finished (docs/design.md section 16)."""
    runs = ReconciliationRun.objects.using(using).filter(
        status=ReconciliationRun.Status.SUCCEEDED, dry_run=False
    )
    if account is not None:
        runs = runs.filter(account=account)
    return runs.order_by("-started_at").values_list("finished_at", flat=True).first()
