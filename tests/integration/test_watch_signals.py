"""The signal watcher against the paper broker, on both stores (docs/design.md section 15): a new
PENDING signal becomes an order at once, and exactly one order per signal whatever runs at the
same time (the cycle, a second watcher, a watcher killed mid-send and restarted, a burst)."""

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections

from brokerops.alpaca import InProcessLimiter
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.models import LocalSignal, stored_document_id
from brokerops.intent.schema import SignalStatus
from brokerops.intent.watch import pending_source
from orders.models import OrderAttempt, OrderEvent
from orders.services import orders_submit_pending
from orders.services.stream import Backoff
from orders.services.submit import order_signals_submit
from orders.services.watch import WatchStats, signals_watch
from tests.commands import database_url_of_this_test, start_command
from tests.environment import child_env
from tests.integration.conftest import gateway_for
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]


def pending(symbol="AAPL", qty=1, **fields):
    return {"symbol": symbol, "side": "buy", "qty": str(qty), "order_type": "market", **fields} | {
        "status": "PENDING"
    }


def orders_by_coid(broker) -> Counter:
    return Counter(o["client_order_id"] for o in broker.orders())


def delete_signal(store, signal_id: str) -> None:
    """The writer deletes a document (the store API has no single delete: it is not ours)."""
    if isinstance(store, LocalSignalStore):
        LocalSignal.objects.filter(document_id=stored_document_id(signal_id)).delete()
    else:
        store._collection.document(signal_id).delete()


class Watcher:
    """``signals_watch`` in a thread, as the command runs it."""

    def __init__(self, gateway, store, *, workers=2, poll_s=0.1, listener_process=None):
        self.stop = threading.Event()
        self.stats = WatchStats()
        self.outcomes = []
        self.sources = []
        self.error = None

        def source():
            made = pending_source(
                store,
                poll_s=poll_s,
                listener_process=settings.WATCH_LISTENER_PROCESS
                if listener_process is None
                else listener_process,
            )
            self.sources.append(made)
            return made

        self._thread = threading.Thread(
            target=self._run,
            kwargs=dict(
                source=source,
                gateway=gateway,
                store=store,
                stop=self.stop,
                workers=workers,
                backoff=Backoff(0.05, 0.2),
                on_outcome=self.outcomes.append,
                stats=self.stats,
            ),
            daemon=True,
        )

    def _run(self, **kwargs):
        try:
            signals_watch(**kwargs)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            connections.close_all()

    def __enter__(self):
        self._thread.start()
        wait_for(
            lambda: self.sources and self.sources[-1].listening,
            what="the watcher to listen (its catch-up done)",
        )
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the watcher did not stop"
        assert self.error is None, self.error


def test_a_new_signal_becomes_an_order_in_well_under_a_second(broker, gateway, store):
    with Watcher(gateway, store):  # listening once entered
        written = time.time()
        store.put_documents([("n1", pending("AAPL", 2))])
        wait_for(lambda: broker.order("bo-n1-entry") is not None, what="the order")
        took = time.time() - written
        wait_for(lambda: store.get("n1").status is not SignalStatus.PENDING, what="SUBMITTED")
    assert took < 1.0, took
    assert store.get("n1").status in (SignalStatus.SUBMITTED, SignalStatus.ACTIVE)
    attempt = OrderAttempt.objects.get(client_order_id="bo-n1-entry")
    assert attempt.events.filter(kind=OrderEvent.Kind.REQUEST_SENT, actor="signal watcher").exists()


def test_signals_pending_before_the_start_are_caught_up(broker, gateway, store):
    store.put_documents([(f"c{i}", pending()) for i in range(5)])
    store.put_documents([("done", pending() | {"status": "CANCELED"})])
    with Watcher(gateway, store):
        wait_for(lambda: len(broker.orders()) == 5, what="5 orders")
    # Stopped: nothing more can be sent; what was doubled is at the broker now.
    assert set(orders_by_coid(broker)) == {f"bo-c{i}-entry" for i in range(5)}


def test_an_invalid_pending_signal_is_rejected_not_sent(broker, gateway, store):
    with Watcher(gateway, store):
        store.put_documents([("bad", {"symbol": "AAPL", "side": "buy", "status": "PENDING"})])
        wait_for(lambda: store.get("bad").raw_status == "REJECTED", what="REJECTED")
    assert broker.orders() == []


def test_watcher_and_cycle_racing_make_one_order_per_signal(broker, gateway, store):
    ids = [f"r{i}" for i in range(30)]
    stop = threading.Event()

    def cycles():
        try:
            while not stop.is_set():
                orders_submit_pending(gateway=gateway, store=store, actor="order-cycle")
        finally:
            connections.close_all()

    cycle = threading.Thread(target=cycles, daemon=True)
    with Watcher(gateway, store, workers=3):
        cycle.start()
        for i in range(0, 30, 5):  # five at a time, each group seen by watcher and cycle
            store.put_documents([(sid, pending()) for sid in ids[i : i + 5]])
            wait_for(lambda i=i: len(broker.orders()) >= i + 1, timeout_s=30, what="an order")
        wait_for(lambda: len(broker.orders()) == 30, timeout_s=30, what="30 orders")
        wait_for(
            lambda: not store.read(statuses=[SignalStatus.PENDING]).signals,
            timeout_s=30,
            what="no PENDING signal left",
        )
        stop.set()
        cycle.join(timeout=30)
    # Watcher and cycle stopped: nothing more can be sent.
    assert orders_by_coid(broker) == Counter({f"bo-{sid}-entry": 1 for sid in ids})
    assert all(store.get(sid).status is not SignalStatus.PENDING for sid in ids)


def test_two_watchers_by_mistake_make_one_order_per_signal(broker, gateway, store):
    ids = [f"w{i}" for i in range(30)]
    with Watcher(gateway, store, workers=2) as first, Watcher(gateway, store, workers=2) as second:
        store.put_documents([(sid, pending()) for sid in ids])
        wait_for(lambda: len(broker.orders()) == 30, timeout_s=30, what="30 orders")
        wait_for(
            lambda: first.stats.outcomes["submitted"] + second.stats.outcomes["submitted"] == 30,
            timeout_s=30,
            what="30 outcomes reported",
        )
    assert orders_by_coid(broker) == Counter({f"bo-{sid}-entry": 1 for sid in ids})
    sent = first.stats.outcomes["submitted"] + second.stats.outcomes["submitted"]
    assert sent == 30


def test_a_burst_of_500_is_paced_by_the_limiter_nothing_lost_or_doubled(broker, store):
    broker.set_rate_limit(3000, window_s=60)  # 50 requests/s at the broker
    paced = gateway_for(broker, limiter=InProcessLimiter(3000, burst=20))
    ids = [f"b{i:03d}" for i in range(500)]
    try:
        with Watcher(paced, store, workers=4):
            store.put_documents([(sid, pending()) for sid in ids])
            wait_for(lambda: len(broker.orders()) == 500, timeout_s=60, what="500 orders")
            wait_for(
                lambda: not store.read(statuses=[SignalStatus.PENDING]).signals,
                timeout_s=30,
                what="no PENDING signal left",
            )
    finally:
        paced.close()
    assert orders_by_coid(broker) == Counter({f"bo-{sid}-entry": 1 for sid in ids})
    assert broker.rate_limited_count() == 0  # paced on our side: no 429 storm


def test_a_signal_deleted_or_moved_out_of_pending_after_the_read_is_not_sent(
    broker, gateway, store
):
    """The cycle's case: it decided on a read; the writer changed its mind before the send."""
    store.put_documents([("keep", pending()), ("gone", pending()), ("moved", pending())])
    read = store.read(statuses=[SignalStatus.PENDING]).signals
    delete_signal(store, "gone")
    store.transition(
        signal_id="moved",
        expected_status=SignalStatus.PENDING,
        new_status=SignalStatus.CANCELED,
        reason="the strategy changed its mind",
    )
    sent = order_signals_submit(documents=read, gateway=gateway, store=store, actor="order-cycle")
    outcomes = {o.signal_id: o for o in sent.outcomes}
    assert set(orders_by_coid(broker)) == {"bo-keep-entry"}
    assert outcomes["gone"].outcome == "withdrawn" and "deleted" in outcomes["gone"].reason
    assert outcomes["moved"].outcome == "withdrawn" and "CANCELED" in outcomes["moved"].reason
    assert store.get("gone") is None
    assert store.get("moved").status is SignalStatus.CANCELED
    assert store.get("keep").status is SignalStatus.SUBMITTED
    for sid in ("gone", "moved"):  # the audit trail says why nothing was sent
        attempt = OrderAttempt.objects.get(client_order_id=f"bo-{sid}-entry")
        assert attempt.status == OrderAttempt.Status.CREATED
        event = attempt.events.last()
        assert event.kind == OrderEvent.Kind.WITHDRAWN, event.kind
        assert "by its writer" in event.message and "not sent" in event.message
        assert not attempt.events.filter(kind=OrderEvent.Kind.REQUEST_SENT).exists()


def test_a_signal_withdrawn_while_queued_in_the_watcher_is_not_sent(broker, gateway, store):
    """The watcher's case: one worker, each send slowed to 0.25 s, 8 signals at once; the
    writer deletes one and cancels another while they wait in the queue."""
    from brokerops.sim.faults import FaultConfig

    broker.set_faults(FaultConfig(latency_s=0.25, routes=("POST /v2/orders",)))
    ids = [f"q{i}" for i in range(8)]
    with Watcher(gateway, store, workers=1) as watcher:
        store.put_documents([(sid, pending()) for sid in ids])
        wait_for(lambda: len(broker.orders()) >= 1, what="the first order")
        delete_signal(store, "q7")
        store.transition(
            signal_id="q6",
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.CANCELED,
            reason="withdrawn by the strategy",
        )
        wait_for(lambda: len(watcher.outcomes) >= 8, timeout_s=20, what="8 outcomes")
    assert set(orders_by_coid(broker)) == {f"bo-q{i}-entry" for i in range(6)}
    assert store.get("q7") is None
    assert store.get("q6").status is SignalStatus.CANCELED


@pytest.mark.firestore
@pytest.mark.parametrize("listener", ["process", "thread"])
def test_a_lost_listener_reconnects_and_catches_up(broker, gateway, firestore_store, listener):
    store = firestore_store
    with Watcher(gateway, store, listener_process=listener == "process") as watcher:
        lost = watcher.sources[0]._watch
        if listener == "process":
            os.kill(lost.pid, signal.SIGKILL)  # the listener's process is killed
        else:
            lost._watch.close()  # the library's listener stops, as on a fatal error
        store.put_documents([("after", pending())])
        wait_for(lambda: broker.order("bo-after-entry") is not None, what="the order")
        # The backstop read can send the order before the reconnect's backoff has passed: wait
        # for the reconnect itself instead of leaving the watcher while it is still pending.
        wait_for(lambda: watcher.stats.connects >= 2, what="the reconnect")
    assert watcher.stats.connects >= 2 and watcher.stats.disconnects >= 1
    assert orders_by_coid(broker)["bo-after-entry"] == 1


# --- the real command, as a process -------------------------------------------------------------


def _command_env(broker, store, **extra) -> dict:
    env = child_env(
        DATABASE_URL=database_url_of_this_test(),
        ALPACA_BASE_URL=broker.base_url,
        LOG_LEVEL="INFO",
        **extra,
    )
    if isinstance(store, LocalSignalStore):
        env["SIGNAL_STORE"] = "local"
    else:
        client = store._client
        env |= {
            "SIGNAL_STORE": "firestore",
            "GOOGLE_CLOUD_PROJECT": client.project,
            "FIRESTORE_EMULATOR_HOST": client._emulator_host,
            "FIRESTORE_SIGNALS_COLLECTION": store._collection.id,
        }
    return env


def _start_command(env) -> subprocess.Popen:
    return start_command("watch_signals", env=env)


@pytest.mark.parametrize(
    ("route", "kind", "sent_before_kill"),
    [
        ("GET /v2/assets", "stall", False),  # claimed, validation under way: nothing sent yet
        ("POST /v2/orders", "stall_after", True),  # sent and landed; the answer never came
    ],
    ids=["after-claim-before-send", "after-send-before-answer"],
)
def test_a_watcher_killed_mid_signal_and_restarted_makes_one_order(
    broker, gateway, store, settings, route, kind, sent_before_kill
):
    broker.inject_next(route, kind, stall_s=60)
    # A limit order and no max notional: no market data to read (which would read the assets
    # before the claim), so the first read of the assets comes after the claim (validation).
    store.put_documents([("k1", pending(order_type="limit", limit_price="1"))])
    watcher = _start_command(_command_env(broker, store, ORDER_MAX_NOTIONAL="0"))
    try:

        def reached():
            attempt = OrderAttempt.objects.filter(client_order_id="bo-k1-entry").first()
            if attempt is None:
                return False
            sent = attempt.events.filter(kind=OrderEvent.Kind.REQUEST_SENT).exists()
            return sent if sent_before_kill else attempt.events.exists()

        wait_for(reached, timeout_s=60, what="the watcher to reach the point of the kill")
        if sent_before_kill:
            wait_for(lambda: broker.order("bo-k1-entry") is not None, what="the order landed")
        watcher.send_signal(signal.SIGKILL)
        output, _ = watcher.communicate(timeout=10)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert orders_by_coid(broker)["bo-k1-entry"] == (1 if sent_before_kill else 0), output
    attempt = OrderAttempt.objects.get(client_order_id="bo-k1-entry")
    assert attempt.status == "created"

    settings.ORDER_CLAIM_TIMEOUT_S = 1  # the dead watcher's claim goes stale quickly
    with Watcher(gateway, store):
        wait_for(
            lambda: store.get("k1").status is not SignalStatus.PENDING,
            timeout_s=20,
            what="the signal to leave PENDING",
        )
    assert orders_by_coid(broker)["bo-k1-entry"] == 1
    assert store.get("k1").status in (SignalStatus.SUBMITTED, SignalStatus.ACTIVE)
    attempt.refresh_from_db()
    if sent_before_kill:  # found by client_order_id, never sent twice
        assert attempt.events.filter(kind=OrderEvent.Kind.REQUEST_SENT).count() == 1
        assert attempt.events.filter(kind=OrderEvent.Kind.LOOKUP).exists()


def test_sigterm_stops_the_command_cleanly_with_a_summary(broker, store):
    watcher = _start_command(_command_env(broker, store))
    try:
        store.put_documents([("t1", pending())])  # before or after its catch-up: sent either way
        wait_for(lambda: broker.order("bo-t1-entry") is not None, timeout_s=30, what="the order")
        watcher.send_signal(signal.SIGTERM)
        output, _ = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, output
    assert "watch_signals: stopped after" in output and "1 submitted" in output, output
    assert "Traceback" not in output
