"""The post-send work of an accepted order (`orders_accepted_finish`: the POST answer, PENDING ->
SUBMITTED) races the stream consumer and its catch-up sync (docs/design.md section 14: nothing
missed while disconnected is lost). Each interleaving is driven explicitly here: the order is
sent with ``finish=False`` and the other writer runs before (or inside) the post-send work."""

from datetime import timedelta

import pytest
from django.utils import timezone

from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from orders.models import OrderAttempt
from orders.services import order_attempts_sync, orders_submit_pending
from orders.services.finish import orders_accepted_finish
from orders.services.submit import order_signals_submit

pytestmark = pytest.mark.django_db(transaction=True)

Status = OrderAttempt.Status


def sent_not_finished(broker, gateway, store, signal_id):
    """The order of a PENDING signal sent, its post-send work not done yet (attempt CREATED)."""
    broker.set_auto_fill(False)
    store.put_documents(
        [
            (
                signal_id,
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "qty": "2",
                    "order_type": "market",
                    "status": "PENDING",
                },
            )
        ]
    )
    batch = order_signals_submit(
        documents=[store.get(signal_id)], gateway=gateway, store=store, actor="test", finish=False
    )
    assert [o.outcome for o in batch.outcomes] == ["submitted"]
    assert OrderAttempt.objects.get(signal_id=signal_id).status == Status.CREATED
    return batch.accepted


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


def test_a_sync_never_looks_up_or_marks_missing_a_created_attempt(broker, gateway, store, settings):
    settings.ORDER_GRACE_S = 0
    store.put_documents(
        [
            (
                "c2",
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "qty": "2",
                    "order_type": "market",
                    "status": "PENDING",
                },
            )
        ]
    )
    OrderAttempt.objects.create(
        client_order_id="bo-c2-entry",
        signal_id="c2",
        symbol="AAPL",
        side="buy",
        qty=2,
        order_type="market",
    )
    OrderAttempt.objects.filter(signal_id="c2").update(
        created_at=timezone.now() - timedelta(minutes=1)
    )
    result = order_attempts_sync(gateway=gateway, store=store)  # not sent yet: not listed
    assert (result.missing, result.api_calls) == (0, 1)  # the list only, no look-up
    assert OrderAttempt.objects.get(signal_id="c2").status == Status.CREATED


class FillsDuringTheMove:
    """A signal store on which the stream applies a fill just before the PENDING -> SUBMITTED
    move commits (after the post-send work applied the POST answer): the fill's own signal move
    finds the signal still PENDING."""

    def __init__(self, store, apply_fill):
        self._store, self._apply_fill = store, apply_fill

    def __getattr__(self, name):
        return getattr(self._store, name)

    def transition_many(self, transitions):
        if self._apply_fill and any(t.new_status is SignalStatus.SUBMITTED for t in transitions):
            self._apply_fill, apply_fill = None, self._apply_fill
            apply_fill()
        return self._store.transition_many(transitions)


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


class FillsDuringTheOneMove(FillsDuringTheMove):
    """The same race on the one-signal move of a cycle that finds the attempt sent already."""

    def transition(self, **transition):
        if self._apply_fill and transition["new_status"] is SignalStatus.SUBMITTED:
            self._apply_fill, apply_fill = None, self._apply_fill
            apply_fill()
        return self._store.transition(**transition)


def test_a_fill_applied_while_a_cycle_moves_an_existing_attempts_signal_moves_it_on(
    broker, gateway, store
):
    accepted = sent_not_finished(broker, gateway, store, "e1")
    # The post-send work applies the POST answer, then the store fails: the signal stays PENDING.
    transition_many = store.transition_many

    def down(transitions):
        raise SignalStoreUnavailable("the store went away")

    store.transition_many = down
    orders_accepted_finish(accepted=accepted, store=store, gateway=gateway, actor="test")
    store.transition_many = transition_many
    attempt = OrderAttempt.objects.get(signal_id="e1")
    assert (attempt.status, store.get("e1").status) == (Status.OPEN, SignalStatus.PENDING)

    def fill():
        broker.fill_order("bo-e1-entry")
        order_attempts_sync(attempt_ids=[attempt.pk], gateway=gateway, store=store, actor="s")
        assert store.get("e1").status is SignalStatus.PENDING  # its move found it PENDING

    racing = FillsDuringTheOneMove(store, fill)
    result = orders_submit_pending(gateway=gateway, store=racing)
    assert [o.outcome for o in result.outcomes] == ["already"]
    assert racing._apply_fill is None
    assert store.get("e1").status is SignalStatus.ACTIVE
