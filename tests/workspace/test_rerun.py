"""An operator's rerun lands on the new run (docs/design.md section 7): the run is recorded QUEUED
when asked for, with who asked; its task runs exactly that run, once."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from brokerops.intent.local import LocalSignalStore
from brokerops.locks import single_flight
from brokerops.sim import PaperBroker
from reconciliation import services
from reconciliation.models import ReconciliationRun, RunEvent
from reconciliation.reruns import reconciliation_request_rerun, reconciliation_run_queued
from reconciliation.services import run_lock_name
from reconciliation.tasks import reconciliation_run_task
from tests import factories
from tests.integration.conftest import gateway_for

pytestmark = pytest.mark.django_db(transaction=True)
Status = ReconciliationRun.Status


@pytest.fixture
def broker(monkeypatch):
    with PaperBroker(default_assets=True) as running:
        gateway = gateway_for(running)
        monkeypatch.setattr(services, "broker_gateway", lambda account=None: gateway)
        monkeypatch.setattr(services, "get_signal_store", LocalSignalStore)
        yield running
        gateway.close()


@pytest.fixture
def no_worker(monkeypatch):
    """Tasks are enqueued, not run: the operator's view of a run nobody picked up yet."""
    sent = []
    monkeypatch.setattr(reconciliation_run_task, "delay", lambda **kw: sent.append(kw))
    return sent


def kinds(run: ReconciliationRun) -> list[str]:
    return list(run.events.order_by("created_at", "id").values_list("kind", flat=True))


def test_a_request_records_the_queued_run_and_who_asked_then_enqueues_that_run(no_worker):
    operator = factories.staff_user(group="operations", username="olga")
    earlier = factories.reconciliation_run(status=Status.FAILED)

    run = reconciliation_request_rerun(run_id=earlier.pk, user_id=operator.pk)

    run.refresh_from_db()
    assert run.status == Status.QUEUED
    assert (run.trigger, run.rerun_of, run.requested_by) == ("admin", earlier, operator)
    assert run.requested_by_username == "olga"
    (event,) = run.events.all()
    assert (event.kind, event.status, event.actor) == (RunEvent.Kind.REQUESTED, "queued", "olga")
    assert no_worker == [{"run_id": run.pk}]


def test_the_task_runs_the_queued_run_itself(broker, no_worker):
    broker.seed_position("MSFT", 5)
    operator = factories.staff_user(group="operations")
    run = reconciliation_request_rerun(run_id=None, user_id=operator.pk)

    assert reconciliation_run_task(**no_worker[0]) == run.pk

    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    assert run.mismatches.filter(kind="UNTRACKED_POSITION").exists()
    assert kinds(run) == ["requested", "started", "finished"]
    assert ReconciliationRun.objects.count() == 1  # no second row for the same request


def test_a_task_delivered_twice_runs_the_run_once(broker, no_worker):
    broker.seed_position("MSFT", 5)
    run = reconciliation_request_rerun(
        run_id=None, user_id=factories.staff_user(group="operations").pk
    )
    reconciliation_run_task(**no_worker[0])
    calls_after_first = sum(broker.counters().values())
    run.refresh_from_db()
    finished = run.finished_at

    again = reconciliation_run_task(**no_worker[0])

    run.refresh_from_db()
    assert again == run.pk
    assert run.finished_at == finished and run.status == Status.SUCCEEDED
    assert kinds(run) == ["requested", "started", "finished"]
    assert run.mismatches.count() == 1
    assert sum(broker.counters().values()) == calls_after_first  # the broker was not asked again


def test_a_queued_run_finding_the_lock_held_is_recorded_skipped(broker, no_worker):
    run = reconciliation_request_rerun(
        run_id=None, user_id=factories.staff_user(group="operations").pk
    )
    with single_flight(run_lock_name("default")) as acquired:
        assert acquired
        result = reconciliation_run_queued(run_id=run.pk)
    assert result.pk == run.pk
    run.refresh_from_db()
    assert run.status == Status.SKIPPED and "holds the lock" in run.error
    assert kinds(run) == ["requested", "finished"]
    # ... and a late delivery does not run it after all
    reconciliation_run_task(**no_worker[0])
    run.refresh_from_db()
    assert run.status == Status.SKIPPED and kinds(run) == ["requested", "finished"]


def test_a_queued_run_is_not_taken_for_an_abandoned_one(broker, no_worker):
    queued = reconciliation_request_rerun(
        run_id=None, user_id=factories.staff_user(group="operations").pk
    )
    services.reconciliation_run(trigger="schedule")  # fails abandoned RUNNING rows only
    queued.refresh_from_db()
    assert queued.status == Status.QUEUED
    reconciliation_run_task(**no_worker[0])
    queued.refresh_from_db()
    assert queued.status == Status.SUCCEEDED


def test_a_queued_run_whose_task_was_lost_is_failed_by_a_later_run(broker, no_worker):
    """A queued run whose message Celery lost would otherwise show "queued" for ever."""
    lost = reconciliation_request_rerun(
        run_id=None, user_id=factories.staff_user(group="operations").pk
    )
    ReconciliationRun.objects.filter(pk=lost.pk).update(
        started_at=timezone.now() - timedelta(seconds=services.QUEUED_RUN_EXPIRY_S + 1)
    )
    services.reconciliation_run(trigger="schedule")
    lost.refresh_from_db()
    assert lost.status == Status.FAILED and "never started" in lost.error
    assert kinds(lost) == ["requested", "abandoned"]
    # ... and a late delivery of its message does not run it after all
    reconciliation_run_task(**no_worker[0])
    lost.refresh_from_db()
    assert lost.status == Status.FAILED and kinds(lost) == ["requested", "abandoned"]


def test_the_button_lands_on_the_new_run_shown_queued(client, no_worker):
    client.force_login(factories.staff_user(group="operations"))
    earlier = factories.reconciliation_run()

    response = client.post(
        reverse("admin:reconciliation_reconciliationrun_rerun", args=[earlier.pk])
    )

    rerun = ReconciliationRun.objects.get(rerun_of=earlier)
    assert response.status_code == 302
    assert response.url == reverse("admin:reconciliation_reconciliationrun_change", args=[rerun.pk])
    page = client.get(response.url)
    assert page.status_code == 200
    text = page.content.decode()
    assert f"Run #{rerun.pk} requested" in text
    assert "Queued" in text


def test_the_list_action_lands_on_the_new_run(client, no_worker):
    client.force_login(factories.staff_user(group="operations"))
    run = factories.reconciliation_run()
    response = client.post(
        reverse("admin:reconciliation_reconciliationrun_changelist"),
        {"action": "rerun", "_selected_action": [run.pk]},
    )
    rerun = ReconciliationRun.objects.get(rerun_of=run)
    assert response.status_code == 302
    assert response.url == reverse("admin:reconciliation_reconciliationrun_change", args=[rerun.pk])
    assert rerun.status == Status.QUEUED


def test_compliance_cannot_request_a_rerun(client, no_worker):
    client.force_login(factories.staff_user(group="compliance"))
    run = factories.reconciliation_run()
    response = client.post(reverse("admin:reconciliation_reconciliationrun_rerun", args=[run.pk]))
    assert response.status_code == 403
    assert ReconciliationRun.objects.count() == 1 and no_worker == []
