"""The post-send work of accepted orders is done in batches (`orders_accepted_finish`): a signal
store that fails there leaves the orders standing, says so on each attempt, and the next cycle
moves the signals without sending anything again."""

from collections import Counter

import pytest

from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from orders.models import OrderAttempt, OrderEvent
from orders.services import orders_submit_pending

pytestmark = pytest.mark.django_db(transaction=True)


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
