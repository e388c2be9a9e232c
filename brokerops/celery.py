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


def per_account(task_name: str, interval_s: float) -> dict:
    """The beat entry of a per-account job: every ``interval_s`` the fan-out enqueues
    ``task_name`` once per account (:mod:`brokerops.fanout`)."""
    return {
        "task": FANOUT_TASK,
        "schedule": float(interval_s),
        "kwargs": {"task_name": task_name, "interval_s": float(interval_s)},
        "options": {"queue": ACCOUNTS_QUEUE, "expires": interval_s},
    }


def beat_schedule() -> dict[str, dict]:
    """The periodic jobs, with intervals from settings (seconds)."""
    return {
        "reconcile": per_account("reconciliation.run", settings.RECONCILE_INTERVAL_S),
        "submit-orders": per_account("orders.submit_pending", settings.ORDER_SUBMIT_INTERVAL_S),
        "verify-audit": {
            "task": "audit.verify",
            "schedule": float(settings.AUDIT_VERIFY_INTERVAL_S),
            "options": {"queue": RECONCILIATION_QUEUE, "expires": settings.AUDIT_VERIFY_INTERVAL_S},
        },
        # The newest audit rows get a signed head within this interval (docs/design.md 12).
        "record-audit-heads": {
            "task": "audit.record_heads",
            "schedule": float(settings.AUDIT_HEADS_INTERVAL_S),
            "options": {"queue": RECONCILIATION_QUEUE, "expires": settings.AUDIT_HEADS_INTERVAL_S},
        },
        "sync-orders": per_account("orders.sync_open", settings.ORDER_SYNC_INTERVAL_S),
        # Alerts (alerts/): no successful run for ALERT_STALE_INTERVALS intervals; due retries.
        "alerts-stale-runs": {
            "task": "alerts.check_stale_runs",
            "schedule": float(settings.RECONCILE_INTERVAL_S),
            "options": {"expires": settings.RECONCILE_INTERVAL_S},
        },
        "alerts-deliver-due": {
            "task": "alerts.deliver_due",
            "schedule": float(settings.ALERT_SWEEP_INTERVAL_S),
            "options": {"expires": settings.ALERT_SWEEP_INTERVAL_S},
        },
    }


app.conf.beat_schedule = beat_schedule()


@worker_process_shutdown.connect
def _metrics_process_dead(pid: int | None = None, **_: object) -> None:
    """A prefork child ends: drop its live-gauge files from the metrics directory (its counts
    stay in the sum; see :mod:`brokerops.metrics`)."""
    from brokerops.metrics import process_dead

    process_dead(pid if pid is not None else os.getpid())
