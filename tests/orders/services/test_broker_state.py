"""The row locks writers of an attempt's broker state take (`attempts_lock_current`): they
serialise those writers, and never hold up a writer that only references the attempt (its audit
events, its executions), which may be holding the audit chain's lock at that moment. A lock
that did (FOR UPDATE) deadlocked the order service against the stream consumer."""

import threading

import pytest
from django.db import OperationalError, connection, transaction

from orders.models import OrderAttempt, OrderEvent
from orders.services.broker_state import attempts_lock_current
from orders.services.events import order_event_record
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


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


def test_an_audit_event_for_a_locked_attempt_is_appended_without_waiting():
    needs_postgresql()
    attempt = factories.order_attempt(client_order_id="bo-l1-entry", signal_id="l1")
    with HeldLock(attempt.pk), transaction.atomic():
        lock_timeout(2)
        order_event_record(attempt=attempt, kind=OrderEvent.Kind.ERROR, message="meanwhile")
    assert attempt.events.filter(message="meanwhile").exists()


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
