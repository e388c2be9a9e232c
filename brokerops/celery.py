"""The Celery app and the beat schedule.

Tasks live in the Django apps (``reconciliation.tasks``, ``orders.tasks``, ``audit.tasks``) and
are thin wrappers over services. The schedule below is the code default; django-celery-beat's
DatabaseScheduler copies it into the database on start, where operators see it (and can pause
it) in the admin.
"""

import os

from celery import Celery
from celery.signals import worker_process_shutdown
from django.conf import settings

from .fanout import TASK_NAME as FANOUT_TASK  # registers the fan-out task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")

app = Celery("brokerops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Reconciliation and order work run on their own queues so a long reconciliation never delays
# order submission; a worker serves both unless started with -Q. The per-account jobs the
# fan-out enqueues (docs/design.md section 16) and the fan-out itself go on ACCOUNTS_QUEUE.
DEFAULT_QUEUE = "default"
RECONCILIATION_QUEUE = "reconciliation"
ORDERS_QUEUE = "orders"
ACCOUNTS_QUEUE = settings.ACCOUNTS_QUEUE
#: What a worker consumes to serve every job (``celery worker -Q default,reconciliation,...``).
WORKER_QUEUES = [DEFAULT_QUEUE, RECONCILIATION_QUEUE, ORDERS_QUEUE, ACCOUNTS_QUEUE]

app.conf.task_routes = {
    "reconciliation.*": {"queue": RECONCILIATION_QUEUE},
    "audit.*": {"queue": RECONCILIATION_QUEUE},
    "orders.*": {"queue": ORDERS_QUEUE},
    "accounts.*": {"queue": ACCOUNTS_QUEUE},
}
app.conf.task_default_queue = DEFAULT_QUEUE


#: How often beat checks whether the end-of-day report is due (seconds): it goes out within this
#: long after REPORT_AT.
EOD_REPORT_CHECK_S = 300


def per_account(task_name: str, interval_s: float) -> dict:
    """The beat entry of a per-account job: every ``interval_s`` the fan-out enqueues
    ``task_name`` once per account (:mod:`brokerops.fanout`)."""
    kwargs = {"task_name": task_name, "interval_s": float(interval_s)}
    return _every(interval_s, FANOUT_TASK, queue=ACCOUNTS_QUEUE, kwargs=kwargs)


def beat_schedule() -> dict[str, dict]:
    """The periodic jobs, with intervals from settings (seconds)."""
    return {
        "reconcile": per_account("reconciliation.run", settings.RECONCILE_INTERVAL_S),
        "submit-orders": per_account("orders.submit_pending", settings.ORDER_SUBMIT_INTERVAL_S),
        "verify-audit": _every(
            settings.AUDIT_VERIFY_INTERVAL_S, "audit.verify", queue=RECONCILIATION_QUEUE
        ),
        # The newest audit rows get a signed head within this interval (docs/design.md 12).
        "record-audit-heads": _every(
            settings.AUDIT_HEADS_INTERVAL_S, "audit.record_heads", queue=RECONCILIATION_QUEUE
        ),
        "sync-orders": per_account("orders.sync_open", settings.ORDER_SYNC_INTERVAL_S),
        "sync-activities": per_account(
            "ledger.sync_activities", settings.ACTIVITIES_SYNC_INTERVAL_S
        ),
        # Alerts (alerts/): no successful run for ALERT_STALE_INTERVALS intervals; due retries.
        "alerts-stale-runs": _every(settings.RECONCILE_INTERVAL_S, "alerts.check_stale_runs"),
        "alerts-deliver-due": _every(settings.ALERT_SWEEP_INTERVAL_S, "alerts.deliver_due"),
        # The end-of-day report (section 17): each check sends the day's once REPORT_AT passed.
        "eod-report": _every(
            EOD_REPORT_CHECK_S, "reconciliation.eod_report", queue=RECONCILIATION_QUEUE
        ),
        # Breaks past their due time (docs/design.md section 17), also checked after each run.
        "alerts-overdue-breaks": _every(
            settings.RECONCILE_INTERVAL_S, "alerts.check_overdue_breaks"
        ),
    }


def _every(
    interval_s: float, task: str, *, queue: str | None = None, kwargs: dict | None = None
) -> dict:
    """A beat job: ``task`` every ``interval_s`` seconds (on ``queue`` when given); a run not
    started within one interval expires, the next one being due by then."""
    job: dict = {"task": task, "schedule": float(interval_s)}
    if kwargs is not None:
        job["kwargs"] = kwargs
    options: dict = {} if queue is None else {"queue": queue}
    job["options"] = {**options, "expires": interval_s}
    return job


app.conf.beat_schedule = beat_schedule()


@worker_process_shutdown.connect
def _metrics_process_dead(pid: int | None = None, **_: object) -> None:
    """A prefork child ends: drop its live-gauge files from the metrics directory (its counts
    stay in the sum; see :mod:`brokerops.metrics`)."""
    from brokerops.metrics import process_dead

    process_dead(pid if pid is not None else os.getpid())
