"""`orders.services.broker_state`: what the broker says about orders, applied to our attempts.

Every writer of an attempt's broker state (the stream, the order service after a send, the
sync, a re-sync) compares against the row as stored when it writes, never against an earlier
read. The row locks those writers take (`attempts_lock_current`) serialise them, and never hold
up a writer that only references the attempt (its audit events, its executions), which may be
holding the audit chain's lock at that moment: a lock that did (FOR UPDATE) deadlocked the order
service against the stream consumer."""

import threading
from decimal import Decimal

import pytest
from django.db import OperationalError, connection, transaction

from brokerops.alpaca.parsing import parse_order
from brokerops.intent.schema import SignalStatus
from orders import lifecycle
from orders.models import OrderAttempt, OrderEvent
from orders.services.broker_state import (
    CONFLICT,
    attempts_lock_current,
    attempts_read_current,
    order_attempt_adopt,
    order_attempts_apply_broker_orders,
    order_attempts_mark_missing,
    signals_follow_attempts,
)
from orders.services.events import order_event_record
from orders.services.stream import Applied, trade_update_apply
from tests import factories
from tests.orders.services.helpers import order, submitted_store, update
from tests.orders.test_lifecycle import ALPACA_ORDER_STATUSES

Kind = OrderEvent.Kind


def needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite serialises whole transactions)")


class HeldLock:
    """Another connection holding an attempt's row lock until released."""

    def __init__(self, pk: int):
        self.pk = pk
        self.locked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, daemon=True)

    def _hold(self) -> None:
        try:
            with transaction.atomic():
                attempts_lock_current([OrderAttempt.objects.get(pk=self.pk)])
                self.locked.set()
                self.release.wait(15)
        finally:
            connection.close()

    def __enter__(self) -> "HeldLock":
        self.thread.start()
        assert self.locked.wait(10), "the lock was never taken"
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self.thread.join(15)


def lock_timeout(seconds: float) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{int(seconds * 1000)}ms'")


@pytest.mark.django_db(transaction=True)
def test_an_audit_event_for_a_locked_attempt_is_appended_without_waiting():
    needs_postgresql()
    attempt = factories.order_attempt(client_order_id="bo-l1-entry", signal_id="l1")
    with HeldLock(attempt.pk), transaction.atomic():
        lock_timeout(2)
        order_event_record(attempt=attempt, kind=OrderEvent.Kind.ERROR, message="meanwhile")
    assert attempt.events.filter(message="meanwhile").exists()


@pytest.mark.django_db(transaction=True)
def test_a_second_writer_of_the_same_attempt_waits_for_the_first():
    needs_postgresql()
    attempt = factories.order_attempt(client_order_id="bo-l2-entry", signal_id="l2")
    with (
        HeldLock(attempt.pk),
        pytest.raises(OperationalError, match="lock timeout"),
        transaction.atomic(),
    ):
        lock_timeout(0.3)
        attempts_lock_current([OrderAttempt.objects.get(pk=attempt.pk)])


@pytest.mark.django_db
class TestConcurrentWriters:
    """Every writer of an attempt's broker state (the stream, the order service after a send,
    the sync, a re-sync) compares against the row as stored when it writes, never against an
    earlier read: a fill applied in between is never taken back."""

    def test_an_order_state_read_before_a_fill_never_overwrites_it(self):
        store = submitted_store()
        factories.order_attempt(
            client_order_id="bo-sig1-entry", signal_id="sig1", status="open", broker_status="new"
        )
        read_before = OrderAttempt.objects.get(client_order_id="bo-sig1-entry")  # still open
        assert trade_update_apply(update=update(), store=store) == Applied.CHANGED  # the fill

        accepted = parse_order(order(status="pending_new", filled="0"))
        changes = order_attempts_apply_broker_orders(
            pairs=[(read_before, accepted)], store=store, actor="order service"
        )
        assert changes == []
        stored = OrderAttempt.objects.get(client_order_id="bo-sig1-entry")
        assert (stored.status, stored.filled_qty) == ("filled", Decimal("10"))
        assert (read_before.status, read_before.filled_qty) == ("filled", Decimal("10"))
        assert not stored.events.filter(status_to="open").exists()

    def test_a_look_up_answered_before_a_fill_never_marks_the_order_missing(self):
        store = submitted_store()
        factories.order_attempt(
            client_order_id="bo-sig1-entry", signal_id="sig1", status="open", broker_status="new"
        )
        read_before = OrderAttempt.objects.get(client_order_id="bo-sig1-entry")
        assert trade_update_apply(update=update(), store=store) == Applied.CHANGED

        changes = order_attempts_mark_missing(
            attempts=[read_before], store=store, actor="sync", why="404"
        )
        assert changes == []
        stored = OrderAttempt.objects.get(client_order_id="bo-sig1-entry")
        assert stored.status == "filled"
        assert store.get("sig1").status is SignalStatus.ACTIVE
        assert not stored.events.filter(status_to="missing").exists()


# --- every order status Alpaca documents, served by the paper broker through alpaca-py --------

#: Where the SUBMITTED signal of an unfilled order goes when its order reaches the status.
SIGNAL_AFTER = {
    "filled": SignalStatus.ACTIVE,
    "canceled": SignalStatus.CANCELED,
    "expired": SignalStatus.CANCELED,
    "replaced": SignalStatus.CANCELED,
    "rejected": SignalStatus.REJECTED,
}


def sig1_attempt(**fields):
    """The attempt of ``sig1`` (`submitted_store`'s signal): its order, 10 AAPL at market."""
    return factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1", **fields)


def served(broker, gateway, status, coid="bo-sig1-entry"):
    """The order as the paper broker serves it with ``status``, read through the real client."""
    filled = {"filled": Decimal("10"), "partially_filled": Decimal("4")}.get(status, Decimal(0))
    broker.seed_order("AAPL", 10, client_order_id=coid, status=status, filled_qty=filled)
    return gateway.get_order_by_client_id(coid)


@pytest.mark.django_db
@pytest.mark.parametrize("status", sorted(ALPACA_ORDER_STATUSES))
def test_each_broker_status_moves_the_attempt_and_its_signal(broker, gateway, status):
    store = submitted_store()
    broker_order = served(broker, gateway, status)
    attempt = sig1_attempt(
        alpaca_order_id=broker_order.id,
        status="open",
        broker_status="new",
        filled_qty=Decimal(0),  # as the POST answer left it
    )

    changes = order_attempts_apply_broker_orders(
        pairs=[(attempt, broker_order)], store=store, actor="sync"
    )

    stored = OrderAttempt.objects.get(pk=attempt.pk)
    assert stored.status == ALPACA_ORDER_STATUSES[status]
    assert stored.broker_status == status  # Alpaca's word, verbatim
    assert stored.alpaca_order_id == broker_order.id and stored.last_synced_at is not None
    expected_signal = SIGNAL_AFTER.get(status, SignalStatus.SUBMITTED)
    assert store.get("sig1").status is expected_signal
    if status == "new":  # what the attempt held already: nothing to record
        assert changes == [] and not stored.events.exists()
        return
    (change,) = changes
    assert (change.status_from, change.status_to) == ("open", stored.status)
    assert change.signal_outcome == ("APPLIED" if status in SIGNAL_AFTER else "")
    event = stored.events.get(kind=Kind.STATUS_CHANGED)
    assert (event.status_from, event.status_to) == ("open", stored.status)
    assert f"Alpaca says {status}" in event.message


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status", sorted(s for s, a in ALPACA_ORDER_STATUSES.items() if a in lifecycle.OPEN)
)
def test_a_filled_attempt_never_reopens_whatever_open_status_comes_late(broker, gateway, status):
    store = submitted_store()
    attempt = sig1_attempt(
        status="filled",
        broker_status="filled",
        filled_qty=Decimal("10"),
    )

    changes = order_attempts_apply_broker_orders(
        pairs=[(attempt, served(broker, gateway, status))], store=store, actor="stream"
    )

    assert changes == []
    stored = OrderAttempt.objects.get(pk=attempt.pk)
    assert (stored.status, stored.broker_status, stored.filled_qty) == (
        "filled",
        "filled",
        Decimal("10"),
    )
    assert not stored.events.exists()


# --- orders gone, orders adopted, signals following their attempts ----------------------------


@pytest.mark.django_db
def test_an_attempt_marked_missing_cancels_its_signal_and_says_why():
    store = submitted_store()
    attempt = sig1_attempt(status="open", broker_status="new")

    (change,) = order_attempts_mark_missing(
        attempts=[attempt], store=store, actor="sync", why="gone by hand"
    )

    assert (change.status_from, change.status_to, change.signal_outcome) == (
        "open",
        "missing",
        "APPLIED",
    )
    stored = OrderAttempt.objects.get(pk=attempt.pk)
    assert (stored.status, stored.reason) == ("missing", "gone by hand")
    event = stored.events.get(kind=Kind.STATUS_CHANGED)
    assert (event.http_status, event.status_to, event.message) == (404, "missing", "gone by hand")
    assert store.get("sig1").status is SignalStatus.CANCELED


@pytest.mark.django_db
def test_an_order_with_our_prefix_is_adopted_once_with_its_signal_read_from_its_id(broker, gateway):
    found = served(broker, gateway, "partially_filled", coid="bo-strayed-entry")

    first = order_attempt_adopt(order=found, actor="reconciliation", prefix="bo")
    again = order_attempt_adopt(order=found, actor="reconciliation", prefix="bo")

    assert first.pk == again.pk and OrderAttempt.objects.count() == 1
    stored = OrderAttempt.objects.get()
    assert (stored.signal_id, stored.leg, stored.adopted) == ("strayed", "entry", True)
    assert (stored.status, stored.filled_qty) == ("partially_filled", Decimal("4"))
    assert stored.alpaca_order_id == found.id
    assert list(stored.events.values_list("kind", "status_to")) == [
        (Kind.ADOPTED, "partially_filled")
    ]


@pytest.mark.django_db
def test_an_adopted_order_whose_id_names_a_signal_leg_taken_keeps_no_signal(broker, gateway):
    """One attempt per signal and leg: an id matching one already recorded (by accident, or
    another system's order under our prefix) is adopted without a signal."""
    factories.order_attempt(client_order_id="manual-taken", signal_id="taken", leg="entry")
    found = served(broker, gateway, "new", coid="bo-taken-entry")

    adopted = order_attempt_adopt(order=found, actor="reconciliation", prefix="bo")

    assert (adopted.signal_id, adopted.client_order_id) == ("", "bo-taken-entry")
    assert OrderAttempt.objects.filter(signal_id="taken").count() == 1


@pytest.mark.django_db
def test_an_exit_legs_end_moves_no_signal():
    store = submitted_store()
    attempt = factories.order_attempt(
        client_order_id="bo-sig1-exit", signal_id="sig1", leg="exit", status="filled"
    )
    assert signals_follow_attempts([attempt], store=store, actor="sync") == {}
    assert store.get("sig1").status is SignalStatus.SUBMITTED
    assert not attempt.events.exists()


@pytest.mark.django_db
def test_a_canceled_order_that_filled_in_part_leaves_its_signal_active_with_what_it_got():
    store = submitted_store()
    attempt = sig1_attempt(
        status="canceled",
        alpaca_order_id="order-1",
        filled_qty=Decimal("4.500"),
    )

    outcomes = signals_follow_attempts([attempt], store=store, actor="sync")

    assert outcomes == {"bo-sig1-entry": "APPLIED"}
    signal = store.get("sig1")
    assert (signal.status, signal.filled_qty, signal.alpaca_order_id) == (
        SignalStatus.ACTIVE,
        Decimal("4.5"),
        "order-1",
    )
    event = attempt.events.get(kind=Kind.SIGNAL_TRANSITION)
    assert (event.status_from, event.status_to) == ("SUBMITTED", "ACTIVE")


@pytest.mark.django_db
def test_a_signal_rewritten_to_ask_for_another_order_never_takes_this_ones_fill():
    store = submitted_store()
    rewritten = {"symbol": "MSFT", "side": "buy", "qty": "10", "order_type": "market"}
    store.put_documents([("sig1", rewritten | {"status": "SUBMITTED"})])
    attempt = sig1_attempt(status="filled", filled_qty=10)

    outcomes = signals_follow_attempts([attempt], store=store, actor="sync")

    assert outcomes == {"bo-sig1-entry": CONFLICT}
    signal = store.get("sig1")
    assert (signal.status, signal.filled_qty) == (SignalStatus.SUBMITTED, None)
    (event,) = attempt.events.filter(kind=Kind.SIGNAL_TRANSITION)
    assert "CONFLICT" in event.message and "symbol AAPL -> MSFT" in event.message


@pytest.mark.django_db
def test_reading_the_current_state_brings_a_stale_object_to_the_stored_row():
    attempt = factories.order_attempt(status="open", broker_status="new")
    stale = OrderAttempt.objects.get(pk=attempt.pk)
    OrderAttempt.objects.filter(pk=attempt.pk).update(
        status="filled", broker_status="filled", filled_qty=Decimal("10"), reason="done"
    )

    attempts_read_current([stale])

    assert (stale.status, stale.broker_status, stale.filled_qty, stale.reason) == (
        "filled",
        "filled",
        Decimal("10"),
        "done",
    )
