"""Applying trade_updates events (docs/design.md section 14), without a network: parsing, the one
apply path, idempotency by execution_id, stale events, the reconnect backoff."""

import random
from decimal import Decimal

import pytest

from brokerops.alpaca.errors import BrokerMalformedResponse
from brokerops.alpaca.stream import parse_trade_update, stream_url_for
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent, OrderExecution
from orders.services.stream import Applied, Backoff, trade_update_apply
from tests import factories

ORDER_ID = "61e69015-8549-4bfd-b9c3-01e75843f47d"


def order(status="filled", filled="10", coid="bo-sig1-entry", **extra):
    return {
        "id": ORDER_ID,
        "client_order_id": coid,
        "symbol": "AAPL",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        "status": status,
        "qty": "10",
        "filled_qty": filled,
        "filled_avg_price": "187.5" if filled != "0" else None,
        "created_at": "2026-11-25T10:00:00.000000Z",
        "submitted_at": "2026-11-25T09:59:59.999000Z",
        **extra,
    }


def update(event="fill", execution_id="e-1", **order_fields):
    data = {
        "event": event,
        "order": order(**order_fields),
        "timestamp": "2026-11-25T10:00:00.100000123Z",
    }
    if event in ("fill", "partial_fill"):
        data |= {"execution_id": execution_id, "price": "187.5", "qty": "10", "position_qty": "10"}
    return parse_trade_update(data)


@pytest.mark.parametrize(
    ("base_url", "paper", "url"),
    [
        (None, True, "wss://paper-api.alpaca.markets/stream"),
        (None, False, "wss://api.alpaca.markets/stream"),
        ("http://127.0.0.1:8765", True, "ws://127.0.0.1:8765/stream"),
        ("https://broker.example/v2/", False, "wss://broker.example/stream"),
    ],
)
def test_the_stream_url_follows_the_trading_endpoint(base_url, paper, url):
    assert stream_url_for(base_url=base_url, paper=paper) == url


@pytest.mark.parametrize(
    "data",
    [
        None,
        "fill",
        {"event": "fill"},
        {"event": "fill", "order": order()},  # no execution_id
        {"event": "fill", "order": order(), "execution_id": "e", "qty": "1e20", "price": "1"},
        {"event": "new", "order": {**order(), "filled_qty": "NaN"}},
        {"event": "", "order": order()},
    ],
)
def test_a_malformed_event_is_refused_with_one_error(data):
    with pytest.raises(BrokerMalformedResponse, match="malformed trade update"):
        parse_trade_update(data)


def test_a_fill_parses_with_its_execution_figures():
    fill = update()
    assert (fill.event, fill.execution_id, fill.qty, fill.position_qty) == (
        "fill",
        "e-1",
        Decimal("10"),
        Decimal("10"),
    )
    assert fill.order.status == "filled" and fill.is_fill


@pytest.mark.django_db
class TestApply:
    @pytest.fixture
    def store(self):
        return _submitted_store()

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


@pytest.mark.django_db
class TestConcurrentWriters:
    """Every writer of an attempt's broker state (the stream, the order service after a send,
    the sync, a re-sync) compares against the row as stored when it writes, never against an
    earlier read: a fill applied in between is never taken back."""

    def test_an_order_state_read_before_a_fill_never_overwrites_it(self):
        from brokerops.alpaca.parsing import parse_order
        from orders.services.broker_state import order_attempts_apply_broker_orders

        store = _submitted_store()
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
        from orders.services.broker_state import order_attempts_mark_missing

        store = _submitted_store()
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


def _submitted_store():
    store = LocalSignalStore()
    store.put_documents(
        [
            (
                "sig1",
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "qty": "10",
                    "order_type": "market",
                    "status": "SUBMITTED",
                },
            )
        ]
    )
    return store
