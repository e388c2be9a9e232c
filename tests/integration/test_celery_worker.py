"""The Celery tasks through a real worker (Redis on CI, the in-memory transport elsewhere)."""

import pytest
from celery.contrib.testing.worker import start_worker

from brokerops.celery import app
from reconciliation.models import ReconciliationRun
from reconciliation.tasks import reconciliation_run_task

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def worker(monkeypatch, gateway, store):
    for target in ("reconciliation.services", "orders.services.submit", "orders.services.sync"):
        monkeypatch.setattr(f"{target}.broker_gateway", lambda account=None: gateway)
        monkeypatch.setattr(f"{target}.get_signal_store", lambda: store)
    app.conf.task_always_eager = False
    try:
        with start_worker(
            app,
            pool="solo",
            perform_ping_check=False,
            queues=["default", "reconciliation", "orders"],
        ) as running:
            yield running
    finally:
        app.conf.task_always_eager = True


@pytest.mark.parametrize("store", ["local"], indirect=True)
def test_tasks_run_on_their_queues_in_a_worker(worker, broker, store):
    broker.seed_position("AAPL", 1)
    store.put_documents(
        [
            (
                "s1",
                {
                    "symbol": "MSFT",
                    "side": "buy",
                    "qty": "1",
                    "order_type": "market",
                    "status": "PENDING",
                },
            )
        ]
    )
    run_id = reconciliation_run_task.delay(trigger="schedule").get(timeout=30)
    run = ReconciliationRun.objects.get(pk=run_id)
    assert (run.status, run.trigger, run.positions_seen) == ("succeeded", "schedule", 1)

    counts = app.send_task("orders.submit_pending").get(timeout=30)
    assert counts["submitted"] == 1
    # Alpaca fills a market order moments after accepting it: the sync sees the fill.
    assert broker.settle(timeout=10)
    counts = app.send_task("orders.sync_open").get(timeout=30)
    assert (counts["attempts_seen"], counts["now_filled"]) == (1, 1)
