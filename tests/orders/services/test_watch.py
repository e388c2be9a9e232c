"""`orders.services.watch`: the signal watcher (docs/design.md section 15), driven by a scripted
source of PENDING documents instead of a store's listener: each document is sent through the
cycle's own code on a worker thread, its outcome reported once its post-send work is done; a
lost connection is replaced after the backoff; an outcome that is not final is retried, up to
`RETRY_LIMIT` times; refused keys end the watch. The watch runs in the test's thread until the
source, once the test's condition holds, asks it to stop (what SIGTERM does). The watcher
against real listeners, both stores and the command: tests/integration/test_watch_signals.py."""

import logging
import time
from decimal import Decimal
from threading import Event

import pytest

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
from tests.waiting import TIMEOUT_S

pytestmark = pytest.mark.django_db(transaction=True)  # workers use their own connections


class ScriptedSource(PendingSource):
    """Hands over ``docs`` one by one, then stops the watch once ``until()`` holds (or, a
    failure of the test, after `TIMEOUT_S`). ``fail_opens`` connections fail to open first."""

    def __init__(self, docs=(), *, until=lambda: True, fail_opens=0):
        self.docs, self.until, self.fail_opens = list(docs), until, fail_opens
        self.stop = Event()
        self.deadline = time.monotonic() + TIMEOUT_S
        self.timed_out = False
        self.opened = self.closed = 0

    def open(self):
        if self.fail_opens:
            self.fail_opens -= 1
            raise SignalStoreUnavailable("the store is down")
        self.opened += 1

    def take(self, timeout_s):
        if self.docs:
            return [self.docs.pop(0)]
        self.timed_out = time.monotonic() > self.deadline
        if self.until() or self.timed_out:
            self.stop.set()
        self.stop.wait(min(timeout_s, 0.01))
        return []

    def close(self):
        self.closed += 1

    @property
    def listening(self):
        return self.opened > 0

    def pending_as_of(self, signal_ids, max_age_s):
        return {}


def watch(gateway, store, source, *, outcomes=None, stats=None) -> WatchStats:
    """`signals_watch` over ``source`` (one worker) until the source stops it."""
    stats = signals_watch(
        source=lambda: source,
        gateway=gateway,
        store=store,
        stop=source.stop,
        workers=1,
        backoff=Backoff(0.01, 0.02),
        on_outcome=(outcomes if outcomes is not None else []).append,
        stats=stats,
    )
    assert not source.timed_out, "the test's condition never held"
    return stats


def pending(store, signal_id, **fields):
    """A PENDING document written to ``store``, as the source would hand it over."""
    store.put_documents([(signal_id, pending_doc(**fields))])
    return store.get(signal_id)


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
    store = LocalSignalStore()
    reported, stats = Reporting(store), WatchStats()
    source = ScriptedSource([pending(store, "w1")], until=lambda: stats.outcomes)

    watch(gateway, store, source, outcomes=reported, stats=stats)

    assert [(o.signal_id, o.outcome) for o in reported] == [("w1", Outcome.SUBMITTED)]
    assert reported.then == [SignalStatus.SUBMITTED]  # reported once its post-send work is done
    assert (stats.connects, stats.documents) == (1, 1)
    assert stats.outcomes == {"submitted": 1}
    assert broker.order("bo-w1-entry") is not None and len(broker.orders()) == 1
    assert source.closed == 1


def test_a_connection_that_cannot_open_is_tried_again_after_the_backoff(broker, gateway):
    store, stats = LocalSignalStore(), WatchStats()
    source = ScriptedSource([pending(store, "w2")], until=lambda: stats.outcomes, fail_opens=2)

    watch(gateway, store, source, stats=stats)

    assert (stats.disconnects, stats.connects) == (2, 1)
    assert "SignalStoreUnavailable: the store is down" in stats.last_error
    assert stats.outcomes == {"submitted": 1}


@pytest.fixture
def unpriced(broker, settings, monkeypatch):
    """Every order DEFERRED (no market price to check the max notional against), its retries
    due at once."""
    monkeypatch.setattr(watch_module, "RETRY_FIRST_S", 0.01)
    monkeypatch.setattr(watch_module, "RETRY_MAX_S", 0.02)
    settings.ORDER_MAX_NOTIONAL = Decimal("100000")
    broker.set_market_data("AAPL", None)


def test_an_outcome_not_final_is_retried_then_left_to_the_cycle(
    broker, gateway, unpriced, monkeypatch, caplog
):
    monkeypatch.setattr(watch_module, "RETRY_LIMIT", 2)
    # The watcher's warning reaches caplog whatever an earlier test of this worker did to the
    # logger (a Celery worker started in-process reconfigures logging).
    monkeypatch.setattr(watch_module.logger, "disabled", False)
    monkeypatch.setattr(watch_module.logger, "propagate", True)
    caplog.set_level(logging.WARNING, logger=watch_module.logger.name)
    store, outcomes = LocalSignalStore(), []
    given_up = "'w3' still not sent after 2 retries; the order cycle takes it"
    source = ScriptedSource([pending(store, "w3")], until=lambda: given_up in caplog.text)

    stats = watch(gateway, store, source, outcomes=outcomes)

    assert [o.outcome for o in outcomes] == [Outcome.DEFERRED] * 3  # 1 try, 2 retries
    assert stats.retries == 2
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


def test_a_signal_no_longer_pending_when_its_retry_is_due_is_not_retried(broker, gateway, unpriced):
    store = ReadsNoted()

    def withdraw(outcome):
        store.store.transition(
            signal_id="w4",
            expected_status=SignalStatus.PENDING,
            new_status=SignalStatus.CANCELED,
            reason="withdrawn before its retry",
        )

    reported = Reporting(store.store, on_first=withdraw)
    source = ScriptedSource([pending(store.store, "w4")], until=lambda: "w4" in store.got)

    stats = watch(gateway, store, source, outcomes=reported)

    assert [o.outcome for o in reported] == [Outcome.DEFERRED]
    assert stats.retries == 0
    assert store.get("w4").status is SignalStatus.CANCELED


def test_refused_keys_end_the_watch(broker):
    bad = AlpacaGateway(
        api_key="wrong", secret_key="wrong", base_url=broker.base_url, limiter=NullLimiter()
    )
    store = LocalSignalStore()
    source = ScriptedSource([pending(store, "w5")], until=lambda: False)

    with pytest.raises(BrokerRejected) as raised:
        watch(bad, store, source)

    assert raised.value.status == 401 and not source.timed_out
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
