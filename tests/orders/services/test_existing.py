"""`orders.services.existing`: a PENDING signal whose attempt exists already follows its one
order (SUBMITTED, and on when the order ended; CANCELED when it is gone; REJECTED when it was
rejected), each move on the version of the document decided on (docs/design.md section 4)."""

from decimal import Decimal

import pytest

from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from orders.models import OrderAttempt, OrderEvent
from orders.services import order_attempts_sync, orders_submit_pending
from orders.services.context import submit_context_open
from orders.services.existing import attempt_existing_follow
from orders.services.finish import orders_accepted_finish
from orders.services.outcomes import Outcome
from tests import factories
from tests.orders.services.helpers import FillsDuringTheMove, pending_doc, sent_not_finished

Status = OrderAttempt.Status
POST = ("POST", "/v2/orders")
DELETE = ("DELETE", "/v2/orders/{id}")


class FillsDuringTheOneMove(FillsDuringTheMove):
    """The same race on the one-signal move of a cycle that finds the attempt sent already."""

    def transition(self, **transition):
        if self._apply_fill and transition["new_status"] is SignalStatus.SUBMITTED:
            self._apply_fill, apply_fill = None, self._apply_fill
            apply_fill()
        return self._store.transition(**transition)


@pytest.mark.django_db(transaction=True)
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


# --- the signal follows its one order -------------------------------------------------------


def follow(gateway, store, signal_id, attempt, scope, *, read=None):
    """`attempt_existing_follow` as the cycle of ``scope``'s account calls it; ``read``: the
    document decided on, when it is not the one stored now."""
    signal = read or store.get(signal_id)
    cycle = submit_context_open(
        [signal], gateway=gateway, store=store, actor="order-cycle", scope=scope
    )
    return attempt_existing_follow(signal=signal, attempt=attempt, cycle=cycle)


def attempt_of(signal_id, **fields):
    fields.setdefault("qty", Decimal(2))  # the order `pending_doc` asks for: 2 AAPL at market
    return factories.order_attempt(
        client_order_id=f"bo-{signal_id}-entry", signal_id=signal_id, **fields
    )


def pending_store(*ids, **fields):
    store = LocalSignalStore()
    store.put_documents([(signal_id, pending_doc(**fields)) for signal_id in ids])
    return store


@pytest.mark.django_db
def test_a_signal_whose_order_is_open_follows_it_to_submitted(broker, gateway, default_scope):
    store = pending_store("x1")
    attempt = attempt_of("x1", status="open", broker_status="accepted", alpaca_order_id="o-1")

    outcome = follow(gateway, store, "x1", attempt, default_scope)

    assert (outcome.outcome, outcome.reason, outcome.alpaca_order_id) == (
        Outcome.ALREADY,
        "accepted",
        "o-1",
    )
    signal = store.get("x1")
    assert signal.status is SignalStatus.SUBMITTED
    assert (signal.client_order_id, signal.alpaca_order_id) == ("bo-x1-entry", "o-1")
    assert POST not in broker.counters()


@pytest.mark.django_db
def test_a_signal_whose_order_filled_follows_it_to_active(gateway, default_scope):
    store = pending_store("x2")
    attempt = attempt_of(
        "x2", status="filled", broker_status="filled", alpaca_order_id="o-2", filled_qty=2
    )

    follow(gateway, store, "x2", attempt, default_scope)

    signal = store.get("x2")
    assert (signal.status, signal.filled_qty) == (SignalStatus.ACTIVE, Decimal(2))
    moves = attempt.events.filter(kind=OrderEvent.Kind.SIGNAL_TRANSITION)
    assert list(moves.order_by("id").values_list("status_to", flat=True)) == [
        "SUBMITTED",
        "ACTIVE",
    ]


@pytest.mark.django_db
def test_a_signal_whose_order_was_rejected_is_rejected_with_its_reason(gateway, default_scope):
    store = pending_store("x3")
    attempt = attempt_of("x3", status="rejected", reason="insufficient buying power")

    outcome = follow(gateway, store, "x3", attempt, default_scope)

    assert (outcome.outcome, outcome.reason) == (Outcome.ALREADY, "insufficient buying power")
    signal = store.get("x3")
    assert (signal.status, signal.status_reason) == (
        SignalStatus.REJECTED,
        "insufficient buying power",
    )


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["missing", "canceled", "expired"])
def test_a_signal_whose_order_ended_unfilled_is_canceled_not_sent_again(
    broker, gateway, status, default_scope
):
    store = pending_store("x4")
    attempt = attempt_of("x4", status=status)

    outcome = follow(gateway, store, "x4", attempt, default_scope)

    assert (outcome.outcome, outcome.reason) == (Outcome.ALREADY, status)
    signal = store.get("x4")
    assert signal.status is SignalStatus.CANCELED
    assert signal.status_reason == f"order bo-x4-entry is {status}"
    assert POST not in broker.counters()


@pytest.mark.django_db
def test_a_signal_whose_canceled_order_filled_in_part_stands_by_what_it_got(gateway, default_scope):
    store = pending_store("x5")
    attempt = attempt_of("x5", status="canceled", broker_status="canceled", filled_qty=1)

    follow(gateway, store, "x5", attempt, default_scope)

    signal = store.get("x5")
    assert (signal.status, signal.filled_qty) == (SignalStatus.ACTIVE, Decimal(1))


@pytest.mark.django_db
def test_a_document_asking_for_another_order_is_a_conflict_and_its_open_order_canceled(
    broker, gateway, default_scope
):
    store = pending_store("x6", symbol="MSFT")  # its one order is 2 AAPL
    broker.seed_order("AAPL", 2, client_order_id="bo-x6-entry", status="new")
    order = gateway.get_order_by_client_id("bo-x6-entry")
    attempt = attempt_of("x6", status="open", alpaca_order_id=order.id, filled_qty=0)

    outcome = follow(gateway, store, "x6", attempt, default_scope)

    assert outcome.outcome is Outcome.CONFLICT and "symbol AAPL -> MSFT" in outcome.reason
    assert broker.counters()[DELETE] == 1
    assert broker.order("bo-x6-entry")["status"] == "canceled"
    assert store.get("x6").status is SignalStatus.REJECTED


@pytest.mark.django_db
def test_a_reused_id_asking_for_another_order_is_rejected_and_the_old_order_left(
    broker, gateway, default_scope
):
    store = pending_store("x7", qty="50")
    attempt = attempt_of("x7", status="filled", filled_qty=2)

    outcome = follow(gateway, store, "x7", attempt, default_scope)

    assert outcome.outcome is Outcome.CONFLICT
    assert DELETE not in broker.counters()
    assert store.get("x7").status is SignalStatus.REJECTED
    assert OrderAttempt.objects.get(pk=attempt.pk).status == Status.FILLED


@pytest.mark.django_db
def test_a_document_rewritten_since_the_read_asking_the_same_order_moves_on_its_new_version(
    gateway,
    default_scope,
):
    store = pending_store("x8")
    read = store.get("x8")
    store.put_documents([("x8", pending_doc(note="a note"))])
    attempt = attempt_of("x8", status="open", alpaca_order_id="o-8")

    outcome = follow(gateway, store, "x8", attempt, default_scope, read=read)

    assert outcome.outcome is Outcome.ALREADY
    assert store.get("x8").status is SignalStatus.SUBMITTED  # on the version written since
    (move,) = attempt.events.filter(kind=OrderEvent.Kind.SIGNAL_TRANSITION)
    assert "APPLIED" in move.message


@pytest.mark.django_db
def test_a_document_rewritten_since_the_read_asking_another_order_is_decided_again_later(
    gateway,
    default_scope,
):
    store = pending_store("x9")
    read = store.get("x9")
    store.put_documents([("x9", pending_doc("TSLA", qty="7"))])
    attempt = attempt_of("x9", status="rejected", reason="refused")

    outcome = follow(gateway, store, "x9", attempt, default_scope, read=read)

    assert outcome.outcome is Outcome.DEFERRED
    signal = store.get("x9")
    assert (signal.symbol, signal.status) == ("TSLA", SignalStatus.PENDING)
