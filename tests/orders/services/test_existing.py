"""`orders.services.existing`: a PENDING signal whose attempt exists already follows its one
order (SUBMITTED, and on when the order ended; CANCELED when it is gone; REJECTED when it was
rejected), each move on the version of the document decided on (docs/design.md section 4)."""

import pytest

from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from orders.models import OrderAttempt
from orders.services import order_attempts_sync, orders_submit_pending
from orders.services.finish import orders_accepted_finish
from tests.orders.services.helpers import FillsDuringTheMove, sent_not_finished

Status = OrderAttempt.Status


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
