"""Alerts on a reconciliation run's end (docs/design.md section 13): its orphan positions, its
failure, or the resolution of what it no longer finds. Listens through :mod:`alerts.receivers`."""

from __future__ import annotations

import logging

from django.db import transaction

from .services import (
    RUN_FAILED_KEY,
    RUNS_STALE_KEY,
    Kind,
    _of_account,
    account_key,
    alert_key,
    alerts_raise,
    alerts_raise_many,
    alerts_resolve,
)

logger = logging.getLogger(__name__)


def alerts_reconciliation_run_finished(*, run) -> None:
    """After a (non-dry) run is recorded: its orphan positions, a failure, or (on success) the
    resolution of what it no longer finds. Never raises."""
    from reconciliation.models import ReconciliationRun

    Status = ReconciliationRun.Status
    if run.dry_run or run.status not in (Status.SUCCEEDED, Status.FAILED):
        return
    account = run.account
    try:
        # The run's orphans together, in one transaction: a commit per orphan cost about 4 s
        # at 100,000 positions, then a savepoint and two statements each about 1 s
        # (docs/benchmarks.md). The deliveries go when it commits; a failure drops the run's
        # batch, which the next run raises again.
        sightings = [_orphan_sighting(m, run) for m in _orphans(run)]
        with transaction.atomic():
            alerts_raise_many(sightings)
        seen = {alert_key(key) for _, key, _, _ in sightings}
        if run.status == Status.SUCCEEDED:
            # What this account's run no longer finds: another account's alerts are its own.
            orphans = f"{account_key(Kind.ORPHAN_POSITION, account)}:"
            alerts_resolve(kind=Kind.ORPHAN_POSITION, keep=seen, key_prefix=orphans)
            alerts_resolve(kind=Kind.RUN_FAILED, key=account_key(RUN_FAILED_KEY, account))
            alerts_resolve(kind=Kind.RUNS_STALE, key=account_key(RUNS_STALE_KEY, account))
        else:
            alerts_raise(
                kind=Kind.RUN_FAILED,
                key=account_key(RUN_FAILED_KEY, account),
                subject=f"Reconciliation run #{run.pk}{_of_account(account)} failed",
                body=(
                    f"Reconciliation run #{run.pk}{_of_account(account)} ({run.trigger}, worker "
                    f"{run.worker}) failed at {run.finished_at:%Y-%m-%d %H:%M:%S} UTC: "
                    f"{run.error}\nFurther failures are counted on this alert until a run of the "
                    "account succeeds."
                ),
            )
    except Exception:  # alerting never fails the run that raised it
        logger.exception("reconciliation run %s: alerts not raised", run.pk)


def _orphans(run):
    from reconciliation.models import Mismatch

    return run.mismatches.filter(kind=Mismatch.Kind.ORPHAN_POSITION).select_related("outcome")


def _orphan_sighting(mismatch, run) -> tuple[str, str, str, str]:
    base = account_key(Kind.ORPHAN_POSITION, run.account)
    key = alert_key(f"{base}:{mismatch.symbol}:{mismatch.signal_id}")
    subject = (
        f"Orphan position{_of_account(run.account)}: {mismatch.symbol} "
        f"(signal {mismatch.signal_id[:80]})"
    )
    body = (
        f"Signal {mismatch.signal_id} expects a position in {mismatch.symbol} "
        f"(qty {_qty(mismatch.expected_qty)}) that the broker does not hold "
        f"(qty {_qty(mismatch.actual_qty)}).\n"
        f"Found by reconciliation run #{run.pk}; action: {mismatch.outcome_action}"
        + (f" ({mismatch.outcome_detail})" if mismatch.outcome_detail else "")
        + ".\nFurther sightings are counted on this alert until a run no longer finds it."
    )
    return Kind.ORPHAN_POSITION, key, subject, body


def _qty(value) -> str:
    if value is None:
        return "-"
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text
