"""`orders.services.stream`: applying trade_updates events (docs/design.md section 14), without a
network: the one apply path, idempotency by execution_id, stale events, one bad event never
losing the others of its batch, broker prices stored exactly, the reconnect backoff, and the
consumer's loop over scripted connections. The consumer against the paper broker's real
stream: tests/integration/test_trade_updates_stream.py.
"""

import dataclasses
import random
import threading
from decimal import Decimal

import pytest

from brokerops.alpaca import BrokerRejected, BrokerUnavailable
from brokerops.alpaca.errors import BrokerMalformedResponse
from brokerops.alpaca.stream import parse_trade_update
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent, OrderExecution
from orders.services import stream as stream_service
from orders.services.stream import (
    Applied,
    Backoff,
    StreamStats,
    trade_update_apply,
    trade_updates_consume,
)
from tests import factories
from tests.orders.services.helpers import fill, submitted_store, update

FINE = "19660.5738784516887649"


@pytest.mark.django_db
class TestApply:
    @pytest.fixture
    def store(self):
        return submitted_store()

    @pytest.fixture
    def attempt(self):
        return factories.order_attempt(
            client_order_id="bo-sig1-entry", signal_id="sig1", status="open", broker_status="new"
        )

    def test_a_fill_moves_the_attempt_and_the_signal_once(self, store, attempt):
        assert trade_update_apply(update=update(), store=store) == Applied.CHANGED
        attempt.refresh_from_db()
        assert (attempt.status, attempt.filled_qty) == ("filled", Decimal("10"))
        signal = store.get("sig1")
        assert signal.status is SignalStatus.ACTIVE
        assert OrderExecution.objects.get().execution_id == "e-1"
        events = list(attempt.events.values_list("kind", "actor"))
        assert ("status_changed", "trade_updates stream") in events

        # The same execution again (a redelivery) changes nothing and writes nothing.
        count = OrderEvent.objects.count()
        assert trade_update_apply(update=update(), store=store) == Applied.DUPLICATE
        assert OrderEvent.objects.count() == count and OrderExecution.objects.count() == 1

    def test_a_late_event_never_takes_an_attempt_back(self, store, attempt):
        trade_update_apply(update=update(), store=store)
        late = update(
            event="partial_fill", execution_id="e-0", status="partially_filled", filled="4"
        )
        assert trade_update_apply(update=late, store=store) == Applied.UNCHANGED
        late_new = update(event="new", status="new", filled="0")
        assert trade_update_apply(update=late_new, store=store) == Applied.UNCHANGED
        attempt.refresh_from_db()
        assert (attempt.status, attempt.filled_qty) == ("filled", Decimal("10"))

    def test_partial_fills_accumulate_and_the_signal_waits_for_the_end(self, store, attempt):
        first = update(
            event="partial_fill", execution_id="e-1", status="partially_filled", filled="4"
        )
        assert trade_update_apply(update=first, store=store) == Applied.CHANGED
        attempt.refresh_from_db()
        assert (attempt.status, attempt.filled_qty) == ("partially_filled", Decimal("4"))
        assert store.get("sig1").status is SignalStatus.SUBMITTED
        assert trade_update_apply(update=update(execution_id="e-2"), store=store) == Applied.CHANGED
        assert store.get("sig1").status is SignalStatus.ACTIVE
        assert OrderExecution.objects.count() == 2

    def test_other_systems_orders_are_left_alone_and_ours_unknown_are_adopted(self, store):
        assert trade_update_apply(update=update(coid="manual-7"), store=store) == Applied.NOT_OURS
        assert not OrderAttempt.objects.exists()
        assert trade_update_apply(update=update(coid="bo-sig9-entry"), store=store) == (
            Applied.ADOPTED
        )
        assert OrderAttempt.objects.get().adopted


def test_the_reconnect_backoff_doubles_to_its_cap_with_jitter_and_resets():
    backoff = Backoff(0.5, 8.0, rng=random.Random(7))
    waits = [backoff.next_s() for _ in range(8)]
    ceilings = [0.5, 1, 2, 4, 8, 8, 8, 8]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert len(set(waits)) == len(waits)  # jittered
    backoff.reset()
    assert backoff.next_s() <= 0.5


# --- hostile events: each bad one refused or failed on its own (docs/design.md sections 6, 14) --


@pytest.mark.django_db(transaction=True)
def test_one_failing_event_never_loses_the_others_in_its_batch(monkeypatch):
    store = submitted_store()
    factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1", status="open")
    factories.order_attempt(client_order_id="bo-sig2-entry", signal_id="sig2", status="open")
    good = parse_trade_update(fill(execution_id="good"))
    bad = parse_trade_update(fill(execution_id="bad", coid="bo-sig2-entry"))
    real = stream_service._execution

    def execution(update, attempt):
        if update.execution_id == "bad":
            raise ValueError("a bug with this one event")
        return real(update, attempt)

    monkeypatch.setattr(stream_service, "_execution", execution)
    stats = StreamStats()
    seen = []
    stream_service._apply(
        [bad, good], store=store, stats=stats, on_event=lambda u, o: seen.append(u.execution_id)
    )
    assert list(OrderExecution.objects.values_list("execution_id", flat=True)) == ["good"]
    assert OrderAttempt.objects.get(client_order_id="bo-sig1-entry").status == "filled"
    assert (stats.failed, seen) == (1, ["good"])


@pytest.mark.django_db(transaction=True)
def test_an_over_long_execution_id_that_reaches_the_database_fails_alone():
    """Past the parser (a TradeUpdate built by hand): PostgreSQL refuses the 65 characters;
    the valid fill beside it is stored all the same."""
    store = submitted_store()
    factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1", status="open")
    factories.order_attempt(client_order_id="bo-sig2-entry", signal_id="sig2", status="open")
    good = parse_trade_update(fill(execution_id="good"))
    bad = dataclasses.replace(
        parse_trade_update(fill(execution_id="x", coid="bo-sig2-entry")), execution_id="b" * 65
    )
    stats = StreamStats()
    stream_service._apply([bad, good], store=store, stats=stats, on_event=None)
    assert OrderExecution.objects.filter(execution_id="good").exists()


@pytest.mark.django_db
def test_a_fill_at_a_price_with_sixteen_decimals_is_stored_exactly():
    store = submitted_store()
    factories.order_attempt(client_order_id="bo-sig1-entry", signal_id="sig1", status="open")
    update = parse_trade_update(fill(price=FINE, filled_avg_price=FINE))
    stream_service.trade_update_apply(update=update, store=store)
    assert OrderExecution.objects.get().price == Decimal(FINE)
    attempt = OrderAttempt.objects.get()
    assert attempt.filled_avg_price == Decimal(FINE)
    assert OrderAttempt.objects.filter(filled_avg_price=Decimal(FINE)).count() == 1


# --- the consumer's loop ------------------------------------------------------------------------


class ScriptedConnection:
    """A stream connection that fails to open with ``refused``, or delivers ``batches`` and
    then sets ``stop`` (what SIGTERM does) on its next, empty, batch."""

    url = "ws://scripted/stream"

    def __init__(self, stop, batches=(), refused=None):
        self.stop, self.scripted, self.refused = stop, list(batches), refused
        self.closed = False

    def open(self):
        if self.refused is not None:
            raise self.refused

    def batches(self, *, idle_s, max_size):
        yield from self.scripted
        self.stop.set()
        yield []

    def close(self):
        self.closed = True


@pytest.mark.django_db
def test_the_consumer_reconnects_catches_up_and_applies_what_arrives(gateway):
    store = submitted_store()
    attempt = factories.order_attempt(
        client_order_id="bo-sig1-entry", signal_id="sig1", status="open", broker_status="new"
    )
    stop = threading.Event()
    connections = [
        ScriptedConnection(stop, refused=BrokerUnavailable("a second connection is refused")),
        ScriptedConnection(
            stop, batches=[[update()], [BrokerMalformedResponse("malformed trade update")]]
        ),
    ]
    made = iter(connections)
    seen = []

    stats = trade_updates_consume(
        connect=lambda: next(made),
        gateway=gateway,
        store=store,
        stop=stop,
        backoff=Backoff(0.001, 0.002),
        on_event=lambda u, outcome: seen.append((u.event, outcome)),
    )

    assert (stats.connects, stats.disconnects) == (1, 1)
    assert "a second connection is refused" in stats.last_error
    # One catch-up once listening, one more for what the malformed event said.
    assert (stats.catch_ups, stats.events, stats.malformed) == (2, 1, 1)
    assert seen == [("fill", Applied.CHANGED)] and stats.outcomes == {Applied.CHANGED: 1}
    assert OrderAttempt.objects.get(pk=attempt.pk).status == "filled"
    assert store.get("sig1").status is SignalStatus.ACTIVE
    assert all(c.closed for c in connections)


@pytest.mark.django_db
def test_refused_keys_end_the_consumer(gateway):
    stop = threading.Event()
    refused = BrokerRejected("unauthorized", status=401, code=None, broker_message="")
    with pytest.raises(BrokerRejected) as raised:
        trade_updates_consume(
            connect=lambda: ScriptedConnection(stop, refused=refused),
            gateway=gateway,
            store=submitted_store(),
            stop=stop,
            backoff=Backoff(0.001, 0.002),
        )
    assert raised.value is refused
