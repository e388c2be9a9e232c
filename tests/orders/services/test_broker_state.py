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
from orders.models import OrderAttempt, OrderEvent
from orders.services.broker_state import (
    attempts_lock_current,
    order_attempts_apply_broker_orders,
    order_attempts_mark_missing,
)
from orders.services.events import order_event_record
from orders.services.stream import Applied, trade_update_apply
from tests import factories
from tests.orders.services.helpers import order, submitted_store, update


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
