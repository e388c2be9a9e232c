"""`orders.services.conflicts`: a document that no longer asks for the order made for it is a
conflict (the signal REJECTED with the reason, an open order canceled first), and an order
nobody asks for any more is undone at the broker, every step recorded on the attempt
(docs/design.md sections 3 and 4). The paper broker through the real alpaca-py client."""

from decimal import Decimal

import pytest

from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from orders.models import OrderAttempt, OrderEvent
from orders.services.conflicts import (
    conflict_reason,
    order_undo,
    signal_conflict_reject,
    signals_submitted_after_send,
)
from orders.services.context import AcceptedOrder
from orders.services.outcomes import Outcome, SignalOutcome
from tests import factories
from tests.orders.services.helpers import pending_doc

pytestmark = pytest.mark.django_db
Kind = OrderEvent.Kind
DELETE = ("DELETE", "/v2/orders/{id}")


def kinds(attempt):
    return list(attempt.events.order_by("created_at", "id").values_list("kind", flat=True))


def at_broker(broker, gateway, *, status="new", signal_id="k1", **attempt_fields):
    """An order resting at the broker (10 AAPL) and its attempt, as the sync last saw it."""
    coid = f"bo-{signal_id}-entry"
    broker.seed_order("AAPL", 10, client_order_id=coid, status=status)
    order = gateway.get_order_by_client_id(coid)
    attempt_fields.setdefault("status", "open")
    attempt = factories.order_attempt(
        client_order_id=coid,
        signal_id=signal_id,
        alpaca_order_id=order.id,
        broker_status="new",
        filled_qty=Decimal(0),
        **attempt_fields,
    )
    return attempt, order


def undo(attempt, order, gateway, why="withdrawn"):
    """`order_undo` of the attempt's order as the order cycle calls it."""
    return order_undo(
        attempt=attempt,
        order_id=order.id,
        gateway=gateway,
        store=LocalSignalStore(),
        actor="order-cycle",
        why=why,
    )


def test_the_reason_names_the_one_order_and_what_the_document_asks_instead():
    attempt = OrderAttempt(
        client_order_id="bo-k-entry",
        side="buy",
        qty=Decimal("10.500"),
        symbol="AAPL",
        status="open",
    )
    diffs = ["symbol AAPL -> MSFT", "qty 10.5 -> 100"]

    open_reason = conflict_reason(attempt, diffs, canceled=False)
    canceled_reason = conflict_reason(attempt, diffs, canceled=True)

    assert open_reason.startswith("conflict: this signal id's one order bo-k-entry (buy 10.5 AAPL")
    assert "open) is not what the document asks (symbol AAPL -> MSFT; qty 10.5 -> 100)" in (
        open_reason
    )
    assert "(buy 10.5 AAPL, canceled at the broker)" in canceled_reason
    assert "write the new intent under a new id" in open_reason
    assert len(conflict_reason(attempt, ["x" * 600], canceled=False)) == 500


def test_an_open_order_is_canceled_and_the_attempt_takes_its_end(broker, gateway):
    attempt, order = at_broker(broker, gateway)

    assert undo(attempt, order, gateway, why="nobody asks for it")

    assert broker.order("bo-k1-entry")["status"] == "canceled"
    stored = OrderAttempt.objects.get(pk=attempt.pk)
    assert stored.status == OrderAttempt.Status.CANCELED
    assert kinds(stored) == [Kind.REQUEST_SENT, Kind.RESPONSE, Kind.STATUS_CHANGED]
    request = stored.events.get(kind=Kind.REQUEST_SENT).message
    assert request == f"DELETE /v2/orders/{order.id}: nobody asks for it"
    assert stored.events.get(kind=Kind.RESPONSE).http_status == 204


def test_an_attempt_final_already_is_not_undone_and_nothing_is_sent(broker, gateway):
    attempt, order = at_broker(broker, gateway, status="filled", signal_id="k2")
    attempt.status = OrderAttempt.Status.FILLED
    broker.reset_counters()

    undone = undo(attempt, order, gateway)

    assert not undone and DELETE not in broker.counters()
    (error,) = attempt.events.filter(kind=Kind.ERROR).values_list("message", flat=True)
    assert error == f"order {order.id} not undone (withdrawn): it is filled already"


def test_an_order_that_filled_before_its_cancel_is_recorded_and_keeps_its_fill(broker, gateway):
    """The attempt still says open (the fill not applied yet); the broker refuses the cancel
    (422): the refusal is on record and the attempt takes the fill from the look-up."""
    attempt, order = at_broker(broker, gateway, signal_id="k3")
    broker.fill_order("bo-k3-entry")

    undone = undo(attempt, order, gateway)

    assert not undone
    stored = OrderAttempt.objects.get(pk=attempt.pk)
    assert (stored.status, stored.filled_qty) == (OrderAttempt.Status.FILLED, Decimal(10))
    assert kinds(stored) == [Kind.REQUEST_SENT, Kind.ERROR, Kind.STATUS_CHANGED]
    error = stored.events.get(kind=Kind.ERROR)
    assert error.http_status == 422 and "not undone" in error.message


def pending_store(signal_id, **fields):
    store = LocalSignalStore()
    store.put_documents([(signal_id, pending_doc(**fields))])
    return store


def test_a_conflict_cancels_the_open_order_then_rejects_the_signal_with_the_reason(broker, gateway):
    attempt, order = at_broker(broker, gateway, signal_id="k4")
    store = pending_store("k4", symbol="MSFT", qty="100")
    signal = store.get("k4")

    reason = signal_conflict_reject(
        attempt=attempt,
        signal=signal,
        diffs=["symbol AAPL -> MSFT"],
        store=store,
        actor="order-cycle",
        gateway=gateway,
        order_id=order.id,
    )

    assert "canceled at the broker" in reason
    assert broker.order("bo-k4-entry")["status"] == "canceled"
    rejected = store.get("k4")
    assert (rejected.status, rejected.status_reason) == (SignalStatus.REJECTED, reason)
    assert kinds(attempt)[-1] == Kind.SIGNAL_TRANSITION
    assert reason in attempt.events.get(kind=Kind.SIGNAL_TRANSITION).message


def test_a_conflict_without_an_order_to_cancel_sends_nothing(broker, gateway):
    attempt = factories.order_attempt(
        client_order_id="bo-k5-entry", signal_id="k5", status="filled"
    )
    store = pending_store("k5", symbol="TSLA")
    broker.reset_counters()

    reason = signal_conflict_reject(
        attempt=attempt,
        signal=store.get("k5"),
        diffs=["symbol AAPL -> TSLA"],
        store=store,
        actor="order-cycle",
    )

    assert broker.counters() == {}
    assert "(buy 10 AAPL, filled)" in reason
    assert store.get("k5").status is SignalStatus.REJECTED


def test_a_conflict_the_store_cannot_record_is_on_the_attempt_and_raised():
    attempt = factories.order_attempt(
        client_order_id="bo-k6-entry", signal_id="k6", status="filled"
    )
    store = pending_store("k6", symbol="TSLA")
    signal = store.get("k6")

    def down(transitions):
        raise SignalStoreUnavailable("the store went away")

    store.transition_many = down
    with pytest.raises(SignalStoreUnavailable):
        signal_conflict_reject(
            attempt=attempt, signal=signal, diffs=["symbol"], store=store, actor="order-cycle"
        )
    (error,) = attempt.events.filter(kind=Kind.ERROR).values_list("message", flat=True)
    assert "not moved to REJECTED: the store went away" in error


def test_an_adopted_order_sent_for_an_older_document_is_a_conflict_after_the_send(broker, gateway):
    """The order landed for AAPL 10 (adopted by client_order_id); the document read now asks for
    MSFT 10: the signal never stands by that order."""
    attempt, order = at_broker(broker, gateway, signal_id="k7")
    store = pending_store("k7", symbol="MSFT", qty="10")
    signal = store.get("k7")
    outcome = SignalOutcome("k7", "bo-k7-entry", Outcome.ADOPTED)
    item = AcceptedOrder(signal, attempt, order, outcome, response=False)

    standing, moved = signals_submitted_after_send(
        items=[item], store=store, gateway=gateway, actor="order-cycle"
    )

    assert (standing, moved) == ([], 0)
    assert outcome.outcome is Outcome.CONFLICT and "symbol AAPL -> MSFT" in outcome.reason
    assert broker.order("bo-k7-entry")["status"] == "canceled"
    assert store.get("k7").status is SignalStatus.REJECTED


def test_accepted_orders_move_their_signals_to_submitted_with_the_order_ids(broker, gateway):
    attempt, order = at_broker(broker, gateway, signal_id="k8")
    store = pending_store("k8", qty="10")
    outcome = SignalOutcome("k8", "bo-k8-entry", Outcome.SUBMITTED)
    item = AcceptedOrder(store.get("k8"), attempt, order, outcome, response=True)

    standing, moved = signals_submitted_after_send(
        items=[item], store=store, gateway=gateway, actor="order-cycle"
    )

    assert (standing, moved) == ([item], 1)
    signal = store.get("k8")
    assert signal.status is SignalStatus.SUBMITTED
    assert (signal.client_order_id, signal.alpaca_order_id) == ("bo-k8-entry", order.id)
    assert outcome.outcome is Outcome.SUBMITTED
