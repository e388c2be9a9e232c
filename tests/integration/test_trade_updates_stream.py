"""The trade_updates consumer against the paper broker's stream (docs/design.md section 14): fills
arrive without any poll, nothing is lost across dropped sockets or a killed consumer, a
duplicated event is applied once."""

import signal
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections

from brokerops.alpaca.stream import TradeUpdatesConnection
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent, OrderExecution
from orders.services import orders_submit_pending
from orders.services.stream import Backoff, StreamStats, trade_updates_consume
from tests.commands import database_url_of_this_test, start_command
from tests.environment import child_env
from tests.integration.conftest import KEY_ID, SECRET
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def pending(symbol, qty=1):
    return {
        "symbol": symbol,
        "side": "buy",
        "qty": str(qty),
        "order_type": "market",
        "status": "PENDING",
    }


class Consumer:
    """``trade_updates_consume`` in a thread, as the command runs it."""

    def __init__(self, broker, gateway, store):
        self.stop = threading.Event()
        self.stats = StreamStats()
        self.seen = []
        self._thread = threading.Thread(
            target=self._run,
            kwargs=dict(
                connect=lambda: TradeUpdatesConnection(
                    url=broker.stream_url, api_key=KEY_ID, secret_key=SECRET
                ),
                gateway=gateway,
                store=store,
                stop=self.stop,
                backoff=Backoff(0.05, 0.2),
                on_event=lambda update, outcome: self.seen.append((update.event, outcome)),
                stats=self.stats,
            ),
            daemon=True,
        )

    @staticmethod
    def _run(**kwargs):
        try:
            trade_updates_consume(**kwargs)
        finally:
            connections.close_all()  # this thread's own connections

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the consumer did not stop"


def test_a_fill_reaches_the_attempt_and_the_signal_without_any_poll(broker, gateway, store):
    store.put_documents([("s1", pending("AAPL", 3))])
    with Consumer(broker, gateway, store) as consumer:
        assert broker.wait_for_stream_listeners(1)
        wait_for(lambda: consumer.stats.catch_ups == 1, what="the catch-up")
        broker.reset_counters()
        orders_submit_pending(gateway=gateway, store=store)  # answered "accepted": no fill yet
        wait_for(lambda: store.get("s1").status is SignalStatus.ACTIVE, what="signal ACTIVE")
    attempt = OrderAttempt.objects.get(signal_id="s1")
    assert (attempt.status, attempt.filled_qty) == ("filled", Decimal("3"))
    fill = attempt.events.get(actor="trade_updates stream", status_to="filled")
    assert fill.kind == OrderEvent.Kind.STATUS_CHANGED
    assert OrderExecution.objects.get(attempt=attempt).qty == Decimal("3")
    # No poll: after the submit, nothing read orders from the broker.
    counters = broker.counters()
    assert counters.get(("GET", "/v2/orders"), 0) == 0
    assert ("fill", "changed") in consumer.seen


def test_a_socket_dropped_in_a_burst_loses_nothing(broker, gateway, store):
    store.put_documents([(f"b{i}", pending("AAPL")) for i in range(20)])
    broker.set_stream_faults(None)
    with Consumer(broker, gateway, store) as consumer:
        assert broker.wait_for_stream_listeners(1)
        wait_for(lambda: consumer.stats.catch_ups == 1, what="the catch-up")
        from brokerops.sim.faults import StreamFaultConfig

        broker.set_stream_faults(StreamFaultConfig(seed=3, drop_after_events=7))
        orders_submit_pending(gateway=gateway, store=store)
        wait_for(
            lambda: OrderAttempt.objects.filter(status="filled").count() == 20,
            timeout_s=30,
            what="all 20 fills",
        )
        wait_for(
            lambda: all(store.get(f"b{i}").status is SignalStatus.ACTIVE for i in range(20)),
            what="every signal ACTIVE",
        )
    assert consumer.stats.disconnects >= 1 and consumer.stats.catch_ups >= 2
    assert broker.stream_counters()["drops"] >= 1


def test_a_duplicated_event_is_applied_once(broker, gateway, store):
    store.put_documents([("d1", pending("MSFT", 2))])
    with Consumer(broker, gateway, store) as consumer:
        assert broker.wait_for_stream_listeners(1)
        wait_for(lambda: consumer.stats.catch_ups == 1, what="the catch-up")
        broker.stream_inject_next("duplicate", count=5)
        orders_submit_pending(gateway=gateway, store=store)
        wait_for(lambda: store.get("d1").status is SignalStatus.ACTIVE, what="signal ACTIVE")
        wait_for(lambda: ("fill", "duplicate") in consumer.seen, what="the duplicate fill")
    attempt = OrderAttempt.objects.get(signal_id="d1")
    assert OrderExecution.objects.filter(attempt=attempt).count() == 1
    assert attempt.events.filter(status_to="filled").count() == 1
    assert broker.stream_counters()["events_duplicated"] >= 1


def test_a_killed_consumer_restarted_later_catches_up(broker, gateway, store):
    env = consumer_env(broker, LOG_LEVEL="INFO")
    consumer = start_command("stream_trade_updates", env=env)
    try:
        assert broker.wait_for_stream_listeners(1, timeout=30), "the consumer never listened"
        consumer.send_signal(signal.SIGKILL)
        consumer.wait(timeout=10)
        assert broker.wait_for_stream_listeners(0, timeout=5)

        # While nobody listens: orders are sent and filled.
        store.put_documents([(f"k{i}", pending("SPY")) for i in range(3)])
        orders_submit_pending(gateway=gateway, store=store)
        broker.settle()
        assert OrderAttempt.objects.filter(status="filled").count() == 0  # nobody applied them

        with Consumer(broker, gateway, store) as restarted:
            wait_for(lambda: restarted.stats.catch_ups == 1, what="the catch-up")
        assert OrderAttempt.objects.filter(status="filled").count() == 3
        assert all(store.get(f"k{i}").status is SignalStatus.ACTIVE for i in range(3))
    finally:
        if consumer.poll() is None:
            consumer.kill()


def test_sigterm_stops_the_command_cleanly_with_a_summary(broker):
    consumer = start_command("stream_trade_updates", env=consumer_env(broker))
    try:
        assert broker.wait_for_stream_listeners(1, timeout=30), "the consumer never listened"
        consumer.send_signal(signal.SIGTERM)
        output, _ = consumer.communicate(timeout=15)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    assert consumer.returncode == 0, output
    assert "trade_updates: stopped after 0 events" in output and "1 connects" in output
    assert "Traceback" not in output
    assert broker.wait_for_stream_listeners(0, timeout=5)


def consumer_env(broker, **extra: str) -> dict[str, str]:
    """The command's environment: this test's database, the paper broker (with its keys)."""
    return child_env(
        DATABASE_URL=database_url_of_this_test(),
        ALPACA_BASE_URL=broker.base_url,
        ALPACA_API_KEY=KEY_ID,
        ALPACA_SECRET_KEY=SECRET,
        **extra,
    )


def test_refused_keys_stop_the_consumer_with_a_401(broker, gateway, store):
    from brokerops.alpaca import BrokerRejected

    with pytest.raises(BrokerRejected, match="refused the API keys") as refused:
        trade_updates_consume(
            connect=lambda: TradeUpdatesConnection(
                url=broker.stream_url, api_key=KEY_ID, secret_key="wrong"
            ),
            gateway=gateway,
            store=store,
            stop=threading.Event(),
            backoff=Backoff(0.01, 0.02),
        )
    assert refused.value.is_auth_error


def test_a_second_connection_is_refused_as_unavailable_not_as_bad_keys(broker, gateway, store):
    from brokerops.alpaca import BrokerUnavailable

    with Consumer(broker, gateway, store):
        assert broker.wait_for_stream_listeners(1)
        second = TradeUpdatesConnection(url=broker.stream_url, api_key=KEY_ID, secret_key=SECRET)
        with pytest.raises(BrokerUnavailable, match="refused"):
            second.open()
    assert broker.stream_counters()["connections_refused"] == 1
