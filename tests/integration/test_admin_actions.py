"""Operators trigger reruns and re-syncs from the admin; compliance staff cannot."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.models import OrderAttempt, OrderEvent
from reconciliation.models import ReconciliationRun
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wired(monkeypatch, gateway, store):
    """Tasks enqueued by the admin use the test's paper broker and store."""
    for target in ("reconciliation.services", "orders.services.sync"):
        monkeypatch.setattr(f"{target}.broker_gateway", lambda account=None: gateway)
        monkeypatch.setattr(f"{target}.get_signal_store", lambda: store)


def login(client, group):
    user = factories.staff_user(group=group)
    client.force_login(user)
    return user


def test_operator_reruns_a_run_from_its_page(client, wired):
    operator = login(client, "operations")
    earlier = factories.reconciliation_run(status="failed", error="boom")
    page = client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[earlier.pk]))
    assert b'id="rerun-button"' in page.content
    response = client.post(
        reverse("admin:reconciliation_reconciliationrun_rerun", args=[earlier.pk])
    )
    assert response.status_code == 302
    rerun = ReconciliationRun.objects.exclude(pk=earlier.pk).get()
    assert rerun.trigger == "admin"
    assert rerun.rerun_of == earlier
    assert rerun.requested_by == operator and rerun.requested_by_username == operator.username
    assert rerun.status == "succeeded"


def test_operator_reruns_through_the_list_action(client, wired):
    login(client, "operations")
    run = factories.reconciliation_run()
    client.post(
        reverse("admin:reconciliation_reconciliationrun_changelist"),
        {"action": "rerun", "_selected_action": [run.pk]},
    )
    assert ReconciliationRun.objects.filter(trigger="admin", rerun_of=run).count() == 1


def test_compliance_cannot_trigger_a_rerun(client, wired):
    login(client, "compliance")
    run = factories.reconciliation_run()
    page = client.get(reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]))
    assert b'id="rerun-button"' not in page.content
    listing = client.get(reverse("admin:reconciliation_reconciliationrun_changelist"))
    assert b'value="rerun"' not in listing.content
    response = client.post(reverse("admin:reconciliation_reconciliationrun_rerun", args=[run.pk]))
    assert response.status_code == 403
    client.post(
        reverse("admin:reconciliation_reconciliationrun_changelist"),
        {"action": "rerun", "_selected_action": [run.pk]},
    )
    assert ReconciliationRun.objects.count() == 1


def test_operator_resyncs_an_attempt_canceled_by_hand(client, wired, broker):
    operator = login(client, "operations")
    order = broker.seed_order("AAPL", 1, client_order_id="bo-s1-entry", status="new")
    attempt = factories.order_attempt(
        client_order_id="bo-s1-entry",
        signal_id="s1",
        status="open",
        broker_status="new",
        alpaca_order_id=order["id"],
        created_at=timezone.now() - timedelta(minutes=10),
    )
    broker.cancel_order_manually("bo-s1-entry")
    client.post(
        reverse("admin:orders_orderattempt_changelist"),
        {"action": "resync", "_selected_action": [attempt.pk]},
    )
    attempt.refresh_from_db()
    assert (attempt.status, attempt.broker_status) == ("canceled", "canceled")
    asked = attempt.events.get(kind=OrderEvent.Kind.RESYNC_REQUESTED)
    assert asked.actor == operator.username


def test_compliance_cannot_resync(client, wired):
    login(client, "compliance")
    attempt = factories.order_attempt(status="open")
    listing = client.get(reverse("admin:orders_orderattempt_changelist"))
    assert b'value="resync"' not in listing.content
    client.post(
        reverse("admin:orders_orderattempt_changelist"),
        {"action": "resync", "_selected_action": [attempt.pk]},
    )
    assert not OrderAttempt.objects.get(pk=attempt.pk).events.exists()


def test_deleting_the_operator_changes_no_audit_row(client, wired):
    operator = login(client, "operations")
    earlier = factories.reconciliation_run()
    client.post(reverse("admin:reconciliation_reconciliationrun_rerun", args=[earlier.pk]))
    rerun = ReconciliationRun.objects.exclude(pk=earlier.pk).get()
    before = ReconciliationRun.objects.filter(pk=rerun.pk).values().get()

    operator.delete()

    assert ReconciliationRun.objects.filter(pk=rerun.pk).values().get() == before
    assert before["requested_by_username"] == operator.username
    from audit.services import audit_verify

    assert audit_verify(trigger="command", processes=1).ok
