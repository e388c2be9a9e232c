"""`orders.services.finish`: the post-send work of accepted orders (`orders_accepted_finish`: the
POST answer, PENDING -> SUBMITTED), done in batches.

It races the stream consumer and its catch-up sync (docs/design.md section 14: nothing missed
while disconnected is lost). Each interleaving is driven explicitly here: the order is sent with
``finish=False`` and the other writer runs before (or inside) the post-send work. A signal store
that fails there leaves the orders standing, says so on each attempt, and the next cycle moves
the signals without sending anything again."""

from collections import Counter
from dataclasses import replace

import pytest

from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from orders.models import OrderAttempt, OrderEvent
from orders.services import order_attempts_sync, orders_submit_pending
from orders.services.finish import orders_accepted_finish
from tests.orders.services.helpers import FillsDuringTheMove, sent_not_finished

pytestmark = pytest.mark.django_db(transaction=True)

Status = OrderAttempt.Status


def test_a_catch_up_sync_before_the_post_send_work_takes_the_fill_of_a_created_attempt(
    broker, gateway, store
):
    accepted = sent_not_finished(broker, gateway, store, "c1")
    broker.fill_order("bo-c1-entry")  # its fill event went down with a dropped socket
    order_attempts_sync(gateway=gateway, store=store, actor="trade_updates stream")  # catch-up
    assert OrderAttempt.objects.get(signal_id="c1").status == Status.FILLED

    orders_accepted_finish(accepted=accepted, store=store, gateway=gateway, actor="test")
    attempt = OrderAttempt.objects.get(signal_id="c1")
    assert attempt.status == Status.FILLED  # the POST answer (older) never takes it back
    assert store.get("c1").status is SignalStatus.ACTIVE  # no further sync needed


def test_a_fill_applied_while_the_signal_is_pending_moves_it_on_after_the_post_send_work(
    broker, gateway, store
):
    accepted = sent_not_finished(broker, gateway, store, "f1")
    pk = OrderAttempt.objects.get(signal_id="f1").pk

    def fill():
        broker.fill_order("bo-f1-entry")
        order_attempts_sync(attempt_ids=[pk], gateway=gateway, store=store, actor="stream")
        assert OrderAttempt.objects.get(pk=pk).status == Status.FILLED
        assert store.get("f1").status is SignalStatus.PENDING  # its move found it PENDING

    racing = FillsDuringTheMove(store, fill)
    orders_accepted_finish(accepted=accepted, store=racing, gateway=gateway, actor="test")
    assert racing._apply_fill is None
    doc = store.get("f1")
    assert doc.status is SignalStatus.ACTIVE  # not left SUBMITTED until a later sync
    assert doc.filled_qty == 2


def test_a_fill_applied_before_the_post_send_work_moves_the_signal_on(broker, gateway, store):
    accepted = sent_not_finished(broker, gateway, store, "f2")
    broker.fill_order("bo-f2-entry")
    pk = OrderAttempt.objects.get(signal_id="f2").pk
    order_attempts_sync(attempt_ids=[pk], gateway=gateway, store=store, actor="stream")
    assert store.get("f2").status is SignalStatus.PENDING

    orders_accepted_finish(accepted=accepted, store=store, gateway=gateway, actor="test")
    assert OrderAttempt.objects.get(pk=pk).status == Status.FILLED
    assert store.get("f2").status is SignalStatus.ACTIVE


def pending(symbol):
    return {"symbol": symbol, "side": "buy", "qty": "1", "order_type": "market"} | {
        "status": "PENDING"
    }


def test_a_store_failing_after_the_send_is_recorded_and_the_next_cycle_moves_the_signals(
    broker, gateway, store
):
    broker.set_auto_fill(False)
    store.put_documents([("x1", pending("AAPL")), ("x2", pending("MSFT"))])
    transition_many = store.transition_many

    def down(transitions):
        raise SignalStoreUnavailable("the store went away")

    store.transition_many = down
    result = orders_submit_pending(gateway=gateway, store=store)
    assert Counter(o.outcome for o in result.outcomes) == {"submitted": 2}  # the broker has them
    for sid in ("x1", "x2"):
        assert store.get(sid).status is SignalStatus.PENDING
        attempt = OrderAttempt.objects.get(signal_id=sid)
        assert attempt.status == OrderAttempt.Status.OPEN
        assert attempt.events.filter(
            kind=OrderEvent.Kind.ERROR, message__contains="not moved to SUBMITTED"
        ).exists()

    store.transition_many = transition_many
    result = orders_submit_pending(gateway=gateway, store=store)
    assert Counter(o.outcome for o in result.outcomes) == {"already": 2}
    assert {store.get(sid).status for sid in ("x1", "x2")} == {SignalStatus.SUBMITTED}
    assert Counter(o["client_order_id"] for o in broker.orders()) == {
        "bo-x1-entry": 1,
        "bo-x2-entry": 1,
    }


def test_the_answer_is_recorded_once_per_signal_with_the_attempts_new_state(broker, gateway, store):
    accepted = sent_not_finished(broker, gateway, store, "once")

    moved = orders_accepted_finish(
        accepted=[*accepted, *accepted], store=store, gateway=gateway, actor="test"
    )

    assert moved == 1
    attempt = OrderAttempt.objects.get(signal_id="once")
    assert attempt.status == Status.OPEN and attempt.submitted_at is not None
    assert attempt.alpaca_order_id == accepted[0].order.id
    kinds = list(attempt.events.order_by("created_at", "id").values_list("kind", flat=True))
    assert kinds == [
        OrderEvent.Kind.CREATED,
        OrderEvent.Kind.REQUEST_SENT,
        OrderEvent.Kind.RESPONSE,
        OrderEvent.Kind.STATUS_CHANGED,
        OrderEvent.Kind.SIGNAL_TRANSITION,
    ]
    assert store.get("once").status is SignalStatus.SUBMITTED


def test_nothing_accepted_is_nothing_to_do(gateway):
    store = LocalSignalStore()
    assert orders_accepted_finish(accepted=[], store=store, gateway=gateway, actor="test") == 0
    assert not OrderEvent.objects.exists()


def test_an_order_found_by_look_up_records_no_answer_of_ours(broker, gateway, store):
    """Adopted (an earlier send landed): the look-up's LOOKUP event says what Alpaca has; there
    was no answer to our request to record."""
    (item,) = sent_not_finished(broker, gateway, store, "adopted")

    orders_accepted_finish(
        accepted=[replace(item, response=False)], store=store, gateway=gateway, actor="test"
    )

    attempt = OrderAttempt.objects.get(signal_id="adopted")
    assert not attempt.events.filter(kind=OrderEvent.Kind.RESPONSE).exists()
    assert attempt.events.filter(kind=OrderEvent.Kind.STATUS_CHANGED).exists()
    assert store.get("adopted").status is SignalStatus.SUBMITTED
