"""`orders.services.sync`: open attempts refreshed from the broker in bulk, and the signals a
process left behind final attempts.

A process that dies between an attempt's final change and its signal's move (the stream
consumer, the sync, the watcher: they share the apply service) leaves the signal SUBMITTED behind
a final attempt; the next order sync moves it as the apply service would have. A CREATED attempt
(maybe not sent yet) is never looked up nor marked missing."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent
from orders.services import (
    order_attempts_apply_broker_orders,
    order_attempts_sync,
    orders_submit_pending,
)
from orders.services.sync import SENDING_WINDOW, BrokerAnswer, SyncResult
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


class ProcessDied(BaseException):
    """The process ends here: nothing after this line runs (not an error any code handles)."""


class DiesBeforeTheSignalMoves:
    """The signal store of a process killed between the two commits: reads work; the first
    signal move never happens."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def transition_many(self, transitions):
        raise ProcessDied


def pending(signal_id, symbol="AAPL"):
    doc = {"symbol": symbol, "side": "buy", "qty": "3", "order_type": "market"}
    return signal_id, doc | {"status": "PENDING"}


def submitted(broker, gateway, store, *ids):
    broker.set_auto_fill(False)
    store.put_documents([pending(i) for i in ids])
    orders_submit_pending(gateway=gateway, store=store)
    assert {store.get(i).status for i in ids} == {SignalStatus.SUBMITTED}


def crash_after_the_attempts_commit(gateway, store):
    """What the stream consumer or a sync does on a fill, killed before the signal moves."""
    attempts = list(OrderAttempt.objects.filter(status=OrderAttempt.Status.OPEN))
    orders = {o.client_order_id: o for o in gateway.list_orders(status="all")}
    with pytest.raises(ProcessDied):
        order_attempts_apply_broker_orders(
            pairs=[(a, orders[a.client_order_id]) for a in attempts],
            store=DiesBeforeTheSignalMoves(store),
            actor="trade_updates stream",
        )


def test_a_signal_left_submitted_behind_a_filled_attempt_is_moved_by_the_next_sync(
    broker, gateway, store
):
    submitted(broker, gateway, store, "f1", "c1", "open")
    broker.fill_order("bo-f1-entry")
    broker.cancel_order_manually("bo-c1-entry")
    crash_after_the_attempts_commit(gateway, store)
    assert OrderAttempt.objects.get(signal_id="f1").status == "filled"  # committed
    assert OrderAttempt.objects.get(signal_id="c1").status == "canceled"
    assert store.get("f1").status is SignalStatus.SUBMITTED  # ... but the signal never moved

    result = order_attempts_sync(gateway=gateway, store=store)

    assert store.get("f1").status is SignalStatus.ACTIVE
    assert store.get("f1").filled_qty == 3
    assert store.get("c1").status is SignalStatus.CANCELED
    assert store.get("open").status is SignalStatus.SUBMITTED  # its order is still open
    assert result.counts()["signals_followed"] == 2
    event = OrderAttempt.objects.get(signal_id="f1").events.order_by("id").last()
    assert event.kind == OrderEvent.Kind.SIGNAL_TRANSITION and event.status_to == "ACTIVE"
    # Once moved, the next sync has nothing left to follow.
    assert order_attempts_sync(gateway=gateway, store=store).counts()["signals_followed"] == 0


def test_a_signal_moved_by_someone_else_meanwhile_is_left_alone(broker, gateway, store):
    submitted(broker, gateway, store, "f2")
    broker.fill_order("bo-f2-entry")
    crash_after_the_attempts_commit(gateway, store)
    store.transition(
        signal_id="f2",
        expected_status=SignalStatus.SUBMITTED,
        new_status=SignalStatus.CLOSED,
        reason="closed by hand",
    )
    result = order_attempts_sync(gateway=gateway, store=store)
    assert store.get("f2").status is SignalStatus.CLOSED
    assert result.counts()["signals_followed"] == 0


def test_a_signal_whose_id_the_audit_hashes_follows_its_order(broker, gateway, store):
    # An id that looks like the audit's hashed form is stored hashed in the audit columns (so
    # no two ids collide there); the signal itself must still move with its order.
    signal_id = "sha256:" + "ab" * 32
    submitted(broker, gateway, store, signal_id)
    broker.fill_order(OrderAttempt.objects.get().client_order_id)
    order_attempts_sync(gateway=gateway, store=store)
    assert OrderAttempt.objects.get().status == OrderAttempt.Status.FILLED
    assert store.get(signal_id).status is SignalStatus.ACTIVE


def test_a_signal_whose_id_holds_a_nul_follows_its_order(broker, gateway, store):
    signal_id = "nul\x00inside"
    submitted(broker, gateway, store, signal_id)
    attempt = OrderAttempt.objects.get()
    assert attempt.signal_id.startswith("sha256:") and attempt.store_signal_id == signal_id
    broker.fill_order(attempt.client_order_id)
    order_attempts_sync(gateway=gateway, store=store)
    assert store.get(signal_id).status is SignalStatus.ACTIVE


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
    assert OrderAttempt.objects.get(signal_id="c2").status == OrderAttempt.Status.CREATED


# --- what one sync asks and reports ---------------------------------------------------------

LIST = ("GET", "/v2/orders")
LOOK_UP = ("GET", "/v2/orders:by_client_order_id")


def open_attempt(signal_id, *, age=timedelta(hours=1), **fields):
    fields.setdefault("status", "open")
    fields.setdefault("broker_status", "new")
    return factories.order_attempt(
        client_order_id=f"bo-{signal_id}-entry",
        signal_id=signal_id,
        created_at=timezone.now() - age,
        **fields,
    )


def test_the_counts_name_each_status_reached():
    result = SyncResult(attempts_seen=4, orders_listed=9, api_calls=2, missing=1, unconfirmed=1)
    result.changes.update({"filled": 2, "canceled": 1})
    assert result.counts() == {
        "attempts_seen": 4,
        "orders_listed": 9,
        "api_calls": 2,
        "updated": 3,
        "missing": 1,
        "unconfirmed": 1,
        "signals_followed": 0,
        "now_canceled": 1,
        "now_filled": 2,
    }


def test_each_attempt_gets_what_the_broker_answered_this_time(broker, gateway, store, settings):
    settings.ORDER_GRACE_S = 600
    listed = open_attempt("listed")
    broker.seed_order("AAPL", 10, client_order_id="bo-listed-entry", status="filled")
    gone = open_attempt("gone")
    young = open_attempt("young", age=timedelta(seconds=5))
    broker.reset_counters()

    result = order_attempts_sync(gateway=gateway, store=store)

    assert result.answers == {
        listed.pk: BrokerAnswer(True, "filled", Decimal(10)),
        gone.pk: BrokerAnswer(False),
    }
    assert young.pk not in result.answers  # too young to be absent: not asked
    assert (result.attempts_seen, result.orders_listed, result.missing) == (3, 1, 1)
    assert result.changes == {"filled": 1}
    assert broker.counters() == {LIST: 1, LOOK_UP: 1}
    assert OrderAttempt.objects.get(pk=young.pk).status == "open"


def test_look_ups_past_the_budget_are_left_for_the_next_sync(broker, gateway, store, settings):
    settings.RECONCILE_MAX_CONFIRMATIONS = 1
    first, second = open_attempt("a1", age=timedelta(hours=2)), open_attempt("a2")

    result = order_attempts_sync(gateway=gateway, store=store)

    assert (result.missing, result.unconfirmed) == (1, 1)
    assert OrderAttempt.objects.get(pk=first.pk).status == "missing"  # the oldest first
    assert OrderAttempt.objects.get(pk=second.pk).status == "open"


def test_a_sync_of_given_attempts_touches_only_those(broker, gateway, store):
    asked = open_attempt("asked")
    other = open_attempt("other")
    for coid in ("bo-asked-entry", "bo-other-entry"):
        broker.seed_order("AAPL", 10, client_order_id=coid, status="canceled")

    result = order_attempts_sync(attempt_ids=[asked.pk], gateway=gateway, store=store)

    assert result.attempts_seen == 1 and set(result.answers) == {asked.pk}
    assert OrderAttempt.objects.get(pk=asked.pk).status == "canceled"
    assert OrderAttempt.objects.get(pk=other.pk).status == "open"


def test_a_created_attempt_older_than_the_sending_window_is_not_the_syncs(broker, gateway, store):
    """It belongs to a process that died: the next claim resolves it by client_order_id."""
    open_attempt("died", status="created", age=SENDING_WINDOW + timedelta(minutes=1))
    broker.reset_counters()

    result = order_attempts_sync(gateway=gateway, store=store)

    assert result.attempts_seen == 0 and LIST not in broker.counters()


def test_nothing_open_asks_the_broker_nothing(broker, gateway, store):
    open_attempt("done", status="filled")
    broker.reset_counters()
    result = order_attempts_sync(gateway=gateway, store=store)
    assert (result.attempts_seen, result.api_calls) == (0, 0)
    assert broker.counters() == {}
