"""`orders.services.resync`: an operator's re-sync leaves its outcome on each attempt
(docs/design.md section 7): who asked and what the broker said (status changed, unchanged, order
not found, broker unavailable)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from brokerops.alpaca import AlpacaGateway, NullLimiter, RetryPolicy
from brokerops.intent.local import LocalSignalStore
from brokerops.sim import PaperBroker
from orders.models import OrderAttempt, OrderEvent
from orders.services import sync as sync_module
from orders.services.resync import (
    ResyncResult,
    order_attempts_request_resync,
    order_attempts_resync,
)
from tests import factories
from tests.integration.conftest import KEY_ID, SECRET, gateway_for

pytestmark = pytest.mark.django_db(transaction=True)
Kind = OrderEvent.Kind


@pytest.fixture
def broker(monkeypatch):
    with PaperBroker(default_assets=True) as running:
        gateway = gateway_for(running)
        monkeypatch.setattr(sync_module, "broker_gateway", lambda account=None: gateway)
        monkeypatch.setattr(sync_module, "get_signal_store", LocalSignalStore)
        yield running
        gateway.close()


def attempt(**fields) -> OrderAttempt:
    fields.setdefault("status", "open")
    fields.setdefault("broker_status", "new")
    fields.setdefault("created_at", timezone.now() - timedelta(hours=1))
    return factories.order_attempt(**fields)


def outcome_of(a: OrderAttempt) -> OrderEvent:
    return a.events.get(kind=Kind.RESYNC_OUTCOME)


def test_the_admin_action_records_who_asked_and_the_status_change(client, broker):
    operator = factories.staff_user(group="operations", username="olga")
    canceled = attempt(client_order_id="bo-rs1-entry", signal_id="rs1")
    broker.seed_order("AAPL", 10, client_order_id="bo-rs1-entry", status="canceled")
    client.force_login(operator)

    client.post(
        reverse("admin:orders_orderattempt_changelist"),
        {"action": "resync", "_selected_action": [canceled.pk]},
    )

    kinds = list(canceled.events.order_by("created_at", "id").values_list("kind", flat=True))
    assert kinds[0] == Kind.RESYNC_REQUESTED and kinds[-1] == Kind.RESYNC_OUTCOME
    event = outcome_of(canceled)
    assert event.actor == "olga"
    assert (event.status_from, event.status_to) == ("open", "canceled")
    assert event.payload == {"result": "status_changed", "requested_by": "olga"}
    assert event.message.startswith("status changed: open -> canceled")
    change = canceled.events.get(kind=Kind.STATUS_CHANGED)
    assert change.actor == "re-sync requested by olga"


def test_an_order_the_broker_holds_as_is_is_recorded_unchanged(broker):
    same = attempt(client_order_id="bo-rs2-entry", signal_id="rs2")
    broker.seed_order("AAPL", 10, client_order_id="bo-rs2-entry", status="new")
    broker.set_price("AAPL", "190")

    (outcome,) = order_attempts_resync(attempt_ids=[same.pk], actor="olga")

    assert outcome.result is ResyncResult.UNCHANGED
    event = outcome_of(same)
    assert (event.status_from, event.status_to) == ("open", "open")
    assert "unchanged" in event.message and "Alpaca says new" in event.message


def test_an_order_gone_at_the_broker_is_recorded_not_found(broker):
    gone = attempt(client_order_id="bo-rs3-entry", signal_id="rs3")

    (outcome,) = order_attempts_resync(attempt_ids=[gone.pk], actor="olga")

    assert outcome.result is ResyncResult.NOT_FOUND
    gone.refresh_from_db()
    assert gone.status == "missing"
    event = outcome_of(gone)
    assert event.payload["result"] == "not_found" and "not found" in event.message


def test_a_broker_that_cannot_be_asked_is_recorded_and_changes_nothing(monkeypatch):
    down = AlpacaGateway(
        api_key=KEY_ID,
        secret_key=SECRET,
        base_url="http://127.0.0.1:9",  # nothing listens on the discard port
        limiter=NullLimiter(),
        timeout_s=1.0,
        retry_policy=RetryPolicy(max_attempts=1),
    )
    waiting = attempt(client_order_id="bo-rs4-entry", signal_id="rs4")

    (outcome,) = order_attempts_resync(
        attempt_ids=[waiting.pk], actor="olga", gateway=down, store=LocalSignalStore()
    )

    assert outcome.result is ResyncResult.BROKER_UNAVAILABLE
    waiting.refresh_from_db()
    assert waiting.status == "open"
    event = outcome_of(waiting)
    assert event.message.startswith("broker unavailable: BrokerUnavailable")
    assert (event.status_from, event.status_to, event.actor) == ("open", "open", "olga")


def test_each_attempt_gets_its_own_outcome_and_the_chain_holds(broker):
    from audit.services import audit_verify

    a = attempt(client_order_id="bo-rs5-entry", signal_id="rs5")
    b = attempt(client_order_id="bo-rs6-entry", signal_id="rs6")
    broker.seed_order("AAPL", 10, client_order_id="bo-rs5-entry", status="canceled")

    outcomes = order_attempts_resync(attempt_ids=[a.pk, b.pk], actor="olga")

    assert {o.attempt_id: o.result for o in outcomes} == {
        a.pk: ResyncResult.STATUS_CHANGED,
        b.pk: ResyncResult.NOT_FOUND,
    }
    assert OrderEvent.objects.filter(kind=Kind.RESYNC_OUTCOME).count() == 2
    assert audit_verify(trigger="command", processes=1).ok


def test_a_missing_attempt_resynced_again_quotes_this_404_not_the_stale_status(broker):
    # Marked missing by an earlier sync; its row still holds the last listed status ("new").
    gone = attempt(
        client_order_id="bo-rs7-entry", signal_id="rs7", status="missing", broker_status="new"
    )

    (outcome,) = order_attempts_resync(attempt_ids=[gone.pk], actor="olga")

    event = outcome_of(gone)
    assert "Alpaca says new" not in event.message
    assert "404" in event.message and "not found" in event.message
    assert outcome.result is ResyncResult.UNCHANGED


def test_a_resync_quotes_the_status_the_broker_answered_this_time(broker):
    listed = attempt(client_order_id="bo-rs8-entry", signal_id="rs8", broker_status="accepted")
    broker.seed_order("AAPL", 10, client_order_id="bo-rs8-entry", status="new")

    order_attempts_resync(attempt_ids=[listed.pk], actor="olga")

    assert "Alpaca says new, filled 0" in outcome_of(listed).message


def test_a_request_records_who_asked_on_each_attempt_then_resyncs_exactly_those(broker):
    asked = [attempt(client_order_id=f"bo-rq{i}-entry", signal_id=f"rq{i}") for i in (1, 2)]
    other = attempt(client_order_id="bo-rq3-entry", signal_id="rq3")

    count = order_attempts_request_resync(
        attempt_ids=[a.pk for a in asked] + [987654], actor="olga"
    )

    assert count == 2  # an id that names no attempt is not one
    for a in asked:
        kinds = list(a.events.order_by("created_at", "id").values_list("kind", "actor"))
        assert kinds[0] == (Kind.RESYNC_REQUESTED, "olga")
        assert kinds[-1] == (Kind.RESYNC_OUTCOME, "olga")
        assert outcome_of(a).payload == {"result": "not_found", "requested_by": "olga"}
    assert not other.events.exists()


def test_a_resync_of_nothing_records_nothing(broker):
    assert order_attempts_resync(attempt_ids=[987654], actor="olga") == []
    assert not OrderEvent.objects.exists()
