"""`orders.services.watch`: the signal watcher (docs/design.md section 15), driven by a scripted
source of PENDING documents instead of a store's listener: each document is sent through the
cycle's own code on a worker thread, its outcome reported once its post-send work is done; a
lost connection is replaced after the backoff; an outcome that is not final is retried, up to
`RETRY_LIMIT` times; refused keys end the watch. The watcher against real listeners, both
stores and the command: tests/integration/test_watch_signals.py."""

import queue
import threading
from decimal import Decimal

import pytest
from django.db import connections

from brokerops.alpaca import AlpacaGateway, BrokerRejected, NullLimiter
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from brokerops.intent.watch import PendingSource
from orders.models import OrderAttempt
from orders.services import watch as watch_module
from orders.services.outcomes import Outcome
from orders.services.stream import Backoff
from orders.services.watch import WatchStats, _is_pending, signals_watch
from tests.orders.services.helpers import pending_doc
from tests.waiting import wait_for

pytestmark = pytest.mark.django_db(transaction=True)  # workers use their own connections


class ScriptedSource(PendingSource):
    """Documents handed over by the test; ``fail_opens`` connections fail before one opens."""

    def __init__(self, fail_opens: int = 0):
        self.docs: queue.Queue = queue.Queue()
        self.fail_opens = fail_opens
        self.opened = 0
        self.closed = 0

    def open(self):
        if self.fail_opens:
            self.fail_opens -= 1
            raise SignalStoreUnavailable("the store is down")
        self.opened += 1

    def take(self, timeout_s):
        try:
            return [self.docs.get(timeout=timeout_s)]
        except queue.Empty:
            return []

    def close(self):
        self.closed += 1

    @property
    def listening(self):
        return self.opened > 0

    def pending_as_of(self, signal_ids, max_age_s):
        return {}


class Watching:
    """`signals_watch` on a thread, over one scripted source, until the block ends."""

    def __init__(self, gateway, store, source, *, outcomes=None):
        self.stop = threading.Event()
        self.stats = WatchStats()
        self.outcomes = [] if outcomes is None else outcomes
        self.error = None
        self.store = store
        self._thread = threading.Thread(
            target=self._run,
            kwargs=dict(
                source=lambda: source,
                gateway=gateway,
                store=store,
                stop=self.stop,
                workers=1,
                backoff=Backoff(0.01, 0.02),
                on_outcome=self.outcomes.append,
                stats=self.stats,
            ),
            daemon=True,
        )

    def _run(self, **kwargs):
        try:
            signals_watch(**kwargs)
        except Exception as exc:  # noqa: BLE001 - the test reads it
            self.error = exc
        finally:
            connections.close_all()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the watcher did not stop"


def put(store, source, signal_id, **fields):
    store.put_documents([(signal_id, pending_doc(**fields))])
    source.docs.put(store.get(signal_id))


class Reporting(list):
    """Outcomes as reported, noting the signal's stored status at that moment (``then``) and
    running ``on_first`` with the first one (on the worker's thread, before any retry)."""

    def __init__(self, store, on_first=None):
        super().__init__()
        self.store, self.on_first, self.then = store, on_first, []

    def append(self, outcome):
        self.then.append(self.store.get(outcome.signal_id).status)
        if not self and self.on_first is not None:
            self.on_first(outcome)
        super().append(outcome)


def test_a_document_from_the_source_is_sent_and_reported_after_its_post_send_work(broker, gateway):
    store, source = LocalSignalStore(), ScriptedSource()
    reported = Reporting(store)
    with Watching(gateway, store, source, outcomes=reported) as watching:
        put(store, source, "w1")
        wait_for(lambda: watching.stats.outcomes, what="the outcome")

    assert watching.error is None
    assert [(o.signal_id, o.outcome) for o in reported] == [("w1", Outcome.SUBMITTED)]
    assert reported.then == [SignalStatus.SUBMITTED]  # reported once its post-send work is done
    assert (watching.stats.connects, watching.stats.documents) == (1, 1)
    assert watching.stats.outcomes == {"submitted": 1}
    assert broker.order("bo-w1-entry") is not None and len(broker.orders()) == 1
    assert source.closed == 1


def test_a_connection_that_cannot_open_is_tried_again_after_the_backoff(broker, gateway):
    store, source = LocalSignalStore(), ScriptedSource(fail_opens=2)
    with Watching(gateway, store, source) as watching:
        wait_for(lambda: source.opened, what="the third connection")
        put(store, source, "w2")
        wait_for(lambda: watching.stats.outcomes, what="the outcome")

    assert (watching.stats.disconnects, watching.stats.connects) == (2, 1)
    assert "SignalStoreUnavailable: the store is down" in watching.stats.last_error
    assert watching.stats.outcomes == {"submitted": 1}


def test_an_outcome_not_final_is_retried_then_left_to_the_cycle(
    broker, gateway, settings, monkeypatch, caplog
):
    """Without a market price the order cannot be checked: DEFERRED, read again later and,
    still PENDING, retried; after `RETRY_LIMIT` retries the beat's cycle takes it."""
    monkeypatch.setattr(watch_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(watch_module, "RETRY_MAX_S", 0.02)
    monkeypatch.setattr(watch_module, "RETRY_LIMIT", 2)
    settings.ORDER_MAX_NOTIONAL = Decimal("100000")
    broker.set_market_data("AAPL", None)
    store, source = LocalSignalStore(), ScriptedSource()
    with Watching(gateway, store, source) as watching:
        put(store, source, "w3")
        wait_for(
            lambda: "'w3' still not sent after 2 retries; the order cycle takes it" in caplog.text,
            what="the watcher to give the signal up",
        )

    assert [o.outcome for o in watching.outcomes] == [Outcome.DEFERRED] * 3  # 1 try, 2 retries
    assert watching.stats.retries == 2
    assert store.get("w3").status is SignalStatus.PENDING
    assert OrderAttempt.objects.get(signal_id="w3").status == OrderAttempt.Status.CREATED
    assert broker.orders() == []


class ReadsNoted:
    """The embedded store, noting the ids read one by one (the watcher's read of a retry due)."""

    def __init__(self):
        self.store = LocalSignalStore()
        self.got: list[str] = []

    def __getattr__(self, name):
        return getattr(self.store, name)

    def get(self, signal_id):
        self.got.append(signal_id)
        return self.store.get(signal_id)


def test_a_signal_no_longer_pending_when_its_retry_is_due_is_not_retried(
    broker, gateway, settings, monkeypatch
):
    monkeypatch.setattr(watch_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(watch_module, "RETRY_MAX_S", 0.02)
    settings.ORDER_MAX_NOTIONAL = Decimal("100000")
    broker.set_market_data("AAPL", None)  # DEFERRED: a retry is scheduled
    store, source = ReadsNoted(), ScriptedSource()

    def withdraw(outcome):
        store.store.transition(
            signal_id="w4",
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.CANCELED,
            reason="withdrawn before its retry",
        )

    reported = Reporting(store.store, on_first=withdraw)
    with Watching(gateway, store, source, outcomes=reported) as watching:
        put(store.store, source, "w4")
        wait_for(lambda: "w4" in store.got, what="the retry's read of the signal")

    assert [o.outcome for o in reported] == [Outcome.DEFERRED]
    assert watching.stats.retries == 0
    assert store.get("w4").status is SignalStatus.CANCELED


def test_refused_keys_end_the_watch(broker):
    bad = AlpacaGateway(
        api_key="wrong", secret_key="wrong", base_url=broker.base_url, limiter=NullLimiter()
    )
    store, source = LocalSignalStore(), ScriptedSource()
    with Watching(bad, store, source) as watching:
        put(store, source, "w5")
        wait_for(lambda: watching.error is not None, what="the watch to end")

    assert isinstance(watching.error, BrokerRejected) and watching.error.status == 401
    assert store.get("w5").status is SignalStatus.PENDING
    bad.close()


def test_only_a_pending_document_is_worth_retrying():
    store = LocalSignalStore()
    store.put_documents(
        [
            ("pending", pending_doc()),
            ("broken", pending_doc(order_type="limit")),
            ("submitted", {**pending_doc(), "status": "SUBMITTED"}),
            ("broken-rejected", {**pending_doc(order_type="limit"), "status": "REJECTED"}),
        ]
    )
    assert _is_pending(store.get("pending")) and _is_pending(store.get("broken"))
    assert not _is_pending(store.get("submitted"))
    assert not _is_pending(store.get("broken-rejected"))
    assert not _is_pending(None)
