"""Celery tasks for alerts: thin wrappers over :mod:`alerts.services`."""

from celery import shared_task
from django.conf import settings

from brokerops.accounts import configured

from .breaks import alerts_check_overdue_breaks
from .services import alerts_check_stale_runs, alerts_deliver, alerts_deliver_due


@shared_task(bind=True, name="alerts.deliver")
def alerts_deliver_task(self, *, alert_id: int, channel: str) -> str:
    """One delivery attempt; a failed one is retried after the service's backoff, at most
    ``ALERT_MAX_ATTEMPTS`` attempts in all (the service counts them in the row).

    Run eagerly (no Redis: the caller's process), a retry is not waited for here: beat's sweep
    (``alerts.deliver_due``) makes it when it is due.
    """
    result = alerts_deliver(alert_id=alert_id, channel=channel)
    if result.retry_in_s is not None and not self.request.is_eager:
        raise self.retry(countdown=result.retry_in_s, max_retries=settings.ALERT_MAX_ATTEMPTS)
    return result.status


@shared_task(name="alerts.deliver_due")
def alerts_deliver_due_task() -> int:
    """Beat's sweep: every delivery that is due (retries, and any that could not be queued)."""
    return alerts_deliver_due()


@shared_task(name="alerts.check_stale_runs")
def alerts_check_stale_runs_task() -> bool:
    """Beat's check for an outage of reconciliation runs, account by account (docs/design.md
    section 16); True when an alert is open for any of them."""
    raised = [alerts_check_stale_runs(account=name) for name in configured().names]
    return any(r is not None for r in raised)


@shared_task(name="alerts.check_overdue_breaks")
def alerts_check_overdue_breaks_task() -> int:
    """Beat's check for overdue breaks, account by account (also done at the end of each run);
    returns how many messages were raised."""
    return sum(alerts_check_overdue_breaks(account=name) for name in configured().names)
