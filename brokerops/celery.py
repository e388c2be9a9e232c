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

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")

app = Celery("brokerops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Reconciliation and order work run on their own queues so a long reconciliation never delays
# order submission; a worker serves both unless started with -Q.
RECONCILIATION_QUEUE = "reconciliation"
ORDERS_QUEUE = "orders"

app.conf.task_routes = {
    "reconciliation.*": {"queue": RECONCILIATION_QUEUE},
    "audit.*": {"queue": RECONCILIATION_QUEUE},
    "orders.*": {"queue": ORDERS_QUEUE},
}
app.conf.task_default_queue = "default"


def beat_schedule() -> dict[str, dict]:
    """The periodic jobs, with intervals from settings (seconds)."""
    return {
        "reconcile": {
            "task": "reconciliation.run",
            "schedule": float(settings.RECONCILE_INTERVAL_S),
            "kwargs": {"trigger": "schedule"},
            "options": {"queue": RECONCILIATION_QUEUE, "expires": settings.RECONCILE_INTERVAL_S},
        },
        "submit-orders": {
            "task": "orders.submit_pending",
            "schedule": float(settings.ORDER_SUBMIT_INTERVAL_S),
            "options": {"queue": ORDERS_QUEUE, "expires": settings.ORDER_SUBMIT_INTERVAL_S},
        },
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
        "sync-orders": {
            "task": "orders.sync_open",
            "schedule": float(settings.ORDER_SYNC_INTERVAL_S),
            "options": {"queue": ORDERS_QUEUE, "expires": settings.ORDER_SYNC_INTERVAL_S},
        },
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
