"""The Celery app is wired to Django settings, with queues and a beat schedule."""

from django.conf import settings

from brokerops.celery import (
    ACCOUNTS_QUEUE,
    ORDERS_QUEUE,
    RECONCILIATION_QUEUE,
    app,
    beat_schedule,
)


def test_celery_reads_django_settings():
    assert app.main == "brokerops"
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.beat_scheduler == "django_celery_beat.schedulers:DatabaseScheduler"


def test_beat_schedules_reconciliation_and_order_jobs_on_their_queues():
    schedule = beat_schedule()
    # Per-account jobs go through the fan-out (tests/accounts/test_fanout.py).
    assert schedule["reconcile"]["task"] == "accounts.fan_out"
    assert schedule["reconcile"]["kwargs"]["task_name"] == "reconciliation.run"
    assert schedule["reconcile"]["schedule"] == float(settings.RECONCILE_INTERVAL_S)
    assert schedule["reconcile"]["options"]["queue"] == ACCOUNTS_QUEUE
    assert schedule["submit-orders"]["kwargs"]["task_name"] == "orders.submit_pending"
    assert schedule["sync-orders"]["kwargs"]["task_name"] == "orders.sync_open"
    assert schedule["verify-audit"]["task"] == "audit.verify"
    assert schedule["verify-audit"]["schedule"] == 86400.0
    assert schedule["verify-audit"]["options"]["queue"] == RECONCILIATION_QUEUE
    assert app.conf.beat_schedule.keys() == schedule.keys()


def test_task_names_route_to_their_queues():
    assert app.conf.task_routes["reconciliation.*"] == {"queue": RECONCILIATION_QUEUE}
    assert app.conf.task_routes["orders.*"] == {"queue": ORDERS_QUEUE}
