"""`orders.services.claim`: a signal's attempt row, written before any HTTP call and held by one
worker (docs/design.md section 5): whoever creates the row, or takes a stale one with a
conditional update, holds it; the others see the signal BUSY; a released claim is taken at once.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from brokerops.intent.local import LocalSignalStore
from orders.models import OrderAttempt, OrderEvent
from orders.services.claim import (
    attempt_claim,
    attempt_order_fields,
    attempt_release,
    attempts_claim_new,
)
from tests import factories
from tests.orders.services.helpers import pending_doc

pytestmark = pytest.mark.django_db
Status = OrderAttempt.Status


def signals(*docs):
    """The documents ``(id, fields)`` as the store reads them."""
    store = LocalSignalStore()
    store.put_documents(list(docs))
    found = store.get_many([signal_id for signal_id, _ in docs])
    return [found[signal_id] for signal_id, _ in docs]


def created_events(attempt):
    return list(attempt.events.filter(kind=OrderEvent.Kind.CREATED).values_list("status_to"))


def test_the_first_claim_writes_the_attempt_and_its_created_event(default_account):
    (signal,) = signals(("c1", pending_doc("MSFT", qty="3", order_type="limit", limit_price="9")))

    attempt = attempt_claim(signal=signal, coid="bo-c1-entry", account=default_account)

    stored = OrderAttempt.objects.get(client_order_id="bo-c1-entry")
    assert attempt.pk == stored.pk and stored.status == Status.CREATED
    assert (stored.signal_id, stored.signal_ref, stored.leg) == ("c1", "", "entry")
    assert (stored.symbol, stored.side, stored.order_type) == ("MSFT", "buy", "limit")
    assert (stored.qty, stored.limit_price) == (Decimal("3"), Decimal("9"))
    assert created_events(stored) == [(Status.CREATED,)]


def test_a_second_claim_moments_later_is_refused_and_writes_nothing(default_account):
    (signal,) = signals(("c2", pending_doc()))
    first = attempt_claim(signal=signal, coid="bo-c2-entry", account=default_account)

    assert attempt_claim(signal=signal, coid="bo-c2-entry", account=default_account) is None
    assert OrderAttempt.objects.count() == 1 and len(created_events(first)) == 1


def test_a_stale_claim_is_taken_over(settings, default_account):
    settings.ORDER_CLAIM_TIMEOUT_S = 60
    (signal,) = signals(("c3", pending_doc()))
    attempt_claim(signal=signal, coid="bo-c3-entry", account=default_account)
    long_ago = timezone.now() - timedelta(seconds=61)
    OrderAttempt.objects.filter(client_order_id="bo-c3-entry").update(updated_at=long_ago)

    taken = attempt_claim(signal=signal, coid="bo-c3-entry", account=default_account)

    assert taken is not None and taken.updated_at > long_ago
    assert OrderAttempt.objects.get().updated_at == taken.updated_at  # the claim is recorded
    assert (
        attempt_claim(signal=signal, coid="bo-c3-entry", account=default_account) is None
    )  # held again


def test_a_released_claim_is_taken_by_the_next_at_once(default_account):
    (signal,) = signals(("c4", pending_doc()))
    attempt = attempt_claim(signal=signal, coid="bo-c4-entry", account=default_account)

    attempt_release(attempt=attempt)

    assert attempt_claim(signal=signal, coid="bo-c4-entry", account=default_account) is not None


def test_an_attempt_at_the_broker_already_is_returned_as_it_is(default_account):
    """Its status says what the caller does next (the signal follows its order): no claim."""
    (signal,) = signals(("c5", pending_doc()))
    at_broker = factories.order_attempt(
        client_order_id="bo-c5-entry", signal_id="c5", status=Status.OPEN
    )
    stamped = OrderAttempt.objects.get(pk=at_broker.pk).updated_at

    again = attempt_claim(signal=signal, coid="bo-c5-entry", account=default_account)

    assert (again.pk, again.status) == (at_broker.pk, Status.OPEN)
    assert OrderAttempt.objects.get(pk=at_broker.pk).updated_at == stamped


def test_a_signal_whose_id_the_audit_hashes_keeps_its_store_id_on_the_attempt(default_account):
    (signal,) = signals(("nul\x00inside", pending_doc()))

    attempt = attempt_claim(signal=signal, coid="bo-hashed-entry", account=default_account)

    assert attempt.signal_id.startswith("sha256:")
    assert OrderAttempt.objects.get().store_signal_id == "nul\x00inside"


def test_new_signals_are_claimed_together_with_their_events(default_account):
    batch = signals(("n1", pending_doc()), ("n2", pending_doc("MSFT")), ("n3", pending_doc()))
    factories.order_attempt(client_order_id="bo-n3-entry", signal_id="n3")  # has one already

    claimed = attempts_claim_new(signals=batch, account=default_account)

    assert sorted(claimed) == ["n1", "n2"]
    for signal_id in ("n1", "n2"):
        stored = OrderAttempt.objects.get(signal_id=signal_id)
        assert stored.pk == claimed[signal_id].pk and stored.status == Status.CREATED
        assert created_events(stored) == [(Status.CREATED,)]
    assert claimed["n2"].symbol == "MSFT"


def test_a_single_new_signal_is_left_to_the_one_by_one_claim(default_account):
    assert (
        attempts_claim_new(signals=signals(("alone", pending_doc())), account=default_account) == {}
    )
    assert not OrderAttempt.objects.exists()


def test_when_another_worker_was_quicker_for_one_none_of_the_batch_is_claimed(default_account):
    """The insert fails as a whole: the signals go through `attempt_claim` one by one."""
    batch = signals(("q1", pending_doc()), ("q2", pending_doc()))
    factories.order_attempt(client_order_id="bo-q2-entry-elsewhere", signal_id="q2")

    assert attempts_claim_new(signals=batch, account=default_account) == {}
    assert not OrderAttempt.objects.filter(signal_id="q1").exists()
    assert not OrderEvent.objects.exists()


def test_the_order_fields_are_what_the_document_asks():
    (signal,) = signals(
        (
            "f1",
            pending_doc(
                "SPY",
                qty=None,
                notional="250.5",
                order_type="stop_limit",
                stop_price="1.5",
                limit_price="1.25",
                extended_hours=True,
                time_in_force="day",
            ),
        )
    )
    assert attempt_order_fields(signal) == {
        "symbol": "SPY",
        "side": "buy",
        "order_type": "stop_limit",
        "qty": None,
        "notional": Decimal("250.5"),
        "limit_price": Decimal("1.25"),
        "stop_price": Decimal("1.5"),
        "extended_hours": True,
    }
