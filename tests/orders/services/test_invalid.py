"""`orders.services.invalid`: a PENDING document that does not parse is REJECTED with its reasons,
nothing sent (docs/design.md section 3): an attempt row records it for compliance, and the move
is made on the version read (a document rewritten since is decided on what it holds now)."""

import pytest

from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import InvalidSignal
from orders.models import OrderAttempt, OrderEvent
from orders.services.invalid import reject_invalid_signal
from orders.services.outcomes import Outcome
from tests import factories
from tests.orders.services.helpers import pending_doc

pytestmark = pytest.mark.django_db
Kind = OrderEvent.Kind
NO_LIMIT = "invalid signal: limit_price is required for a limit order"


@pytest.fixture
def store():
    return LocalSignalStore()


def invalid(store, signal_id, **fields):
    store.put_documents([(signal_id, pending_doc(**fields))])
    doc = store.get(signal_id)
    assert isinstance(doc, InvalidSignal), doc
    return doc


def test_a_document_that_does_not_parse_is_rejected_and_recorded(store, default_account):
    doc = invalid(store, "bad", symbol=" aapl ", side=" BUY", order_type="LIMIT")

    outcome = reject_invalid_signal(doc, store=store, actor="order-cycle", account=default_account)

    assert (outcome.signal_id, outcome.client_order_id) == ("bad", "bo-bad-entry")
    assert (outcome.outcome, outcome.reason) == (Outcome.REJECTED, NO_LIMIT)
    attempt = OrderAttempt.objects.get(client_order_id="bo-bad-entry")
    assert (attempt.status, attempt.reason) == (OrderAttempt.Status.REJECTED, NO_LIMIT)
    assert (attempt.side, attempt.order_type, attempt.signal_id) == ("buy", "limit", "bad")
    assert attempt.request_payload["document"]["order_type"] == "LIMIT"  # as written
    kinds = list(attempt.events.order_by("id").values_list("kind", flat=True))
    assert kinds == [Kind.VALIDATION_FAILED, Kind.SIGNAL_TRANSITION]
    rejected = store.get("bad")
    assert rejected.raw_status == "REJECTED" and rejected.raw["status_reason"] == NO_LIMIT


def test_rejecting_it_again_finds_its_attempt_and_writes_no_second_one(store, default_account):
    doc = invalid(store, "twice", order_type="limit")
    reject_invalid_signal(doc, store=store, actor="order-cycle", account=default_account)

    again = reject_invalid_signal(doc, store=store, actor="order-cycle", account=default_account)

    assert again.outcome is Outcome.REJECTED
    attempt = OrderAttempt.objects.get()
    assert attempt.events.filter(kind=Kind.VALIDATION_FAILED).count() == 1
    assert store.get("twice").raw_status == "REJECTED"


def test_a_document_whose_order_reached_the_broker_is_not_ours_to_reject(store, default_account):
    doc = invalid(store, "sent", order_type="limit")
    factories.order_attempt(
        client_order_id="bo-sent-entry", signal_id="sent", status="filled", alpaca_order_id="o-1"
    )

    outcome = reject_invalid_signal(doc, store=store, actor="order-cycle", account=default_account)

    assert (outcome.outcome, outcome.alpaca_order_id) == (Outcome.ALREADY, "o-1")
    assert "its order is filled: fix the document" in outcome.reason
    assert store.get("sent").raw_status == "PENDING"  # left as its writer wrote it


def test_a_document_fixed_since_the_read_is_left_pending_for_the_next_cycle(store, default_account):
    doc = invalid(store, "fixed", order_type="limit")
    store.put_documents([("fixed", pending_doc())])  # parses now

    outcome = reject_invalid_signal(doc, store=store, actor="order-cycle", account=default_account)

    assert outcome.outcome is Outcome.DEFERRED and "parses now" in outcome.reason
    assert store.get("fixed").status.value == "PENDING"


def test_a_document_broken_another_way_since_the_read_is_rejected_for_what_it_holds_now(
    store, default_account
):
    doc = invalid(store, "again", order_type="limit")
    store.put_documents([("again", pending_doc(qty="-3"))])

    outcome = reject_invalid_signal(doc, store=store, actor="order-cycle", account=default_account)

    assert outcome.outcome is Outcome.REJECTED
    assert "qty" in outcome.reason and "limit_price" not in outcome.reason
    reason = store.get("again").raw["status_reason"]
    assert "qty" in reason and "limit_price" not in reason
