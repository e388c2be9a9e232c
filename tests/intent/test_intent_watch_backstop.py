"""The Firestore pending source's backstop poll (brokerops/intent/watch.py): a listener that falls
behind, or goes quiet, still lets a new PENDING signal through within the poll period, and a
document version is returned once whether the listener or the poll saw it first."""

import time

import pytest

from brokerops.intent.schema import SignalStatus, parse_signal
from brokerops.intent.watch import FirestorePendingSource, pending_source

pytestmark = [pytest.mark.firestore, pytest.mark.django_db]

POLL_S = 0.2


def pending(symbol="AAPL"):
    return {
        "symbol": symbol,
        "side": "buy",
        "qty": "1",
        "order_type": "market",
        "status": "PENDING",
    }


class _SilentWatch:
    """A listener that delivers nothing after its catch-up (as one far behind does)."""

    failure = None
    snapshots = 1

    def close(self) -> None:
        pass

    def pending_as_of(self, signal_ids, max_age_s):
        return {}


def take_until(source, wanted: set[str], within_s: float) -> list:
    got, deadline = [], time.monotonic() + within_s
    while time.monotonic() < deadline and not wanted <= {d.id for d in got}:
        got.extend(source.take(timeout_s=0.05))
    return got


def test_a_silent_listener_still_lets_a_new_signal_through_by_the_poll(
    firestore_store, monkeypatch
):
    monkeypatch.setattr(firestore_store, "watch_pending", lambda on_documents: _SilentWatch())
    source = FirestorePendingSource(firestore_store, poll_s=POLL_S)
    source.open()
    firestore_store.put_documents([("late", pending())])

    # Without the poll it would never come: the bound only has to be long on a loaded machine.
    got = take_until(source, {"late"}, within_s=10.0)

    assert [d.id for d in got] == ["late"]
    assert got[0].status is SignalStatus.PENDING
    source.close()


def test_each_version_comes_once_from_listener_and_poll_together(firestore_store):
    source = pending_source(firestore_store, poll_s=POLL_S)
    source.open()
    firestore_store.put_documents([("a", pending()), ("b", pending("MSFT"))])
    got = take_until(source, {"a", "b"}, within_s=5.0)
    # Several poll periods pass: both still PENDING, each returned by the listener and the poll.
    deadline = time.monotonic() + 4 * POLL_S
    while time.monotonic() < deadline:
        got.extend(source.take(timeout_s=0.05))
    assert sorted(d.id for d in got) == ["a", "b"]

    firestore_store.put_documents([("a", pending("SPY"))])  # a new version of "a"
    again = take_until(source, {"a"}, within_s=5.0)
    assert [(d.id, d.symbol) for d in again] == [("a", "SPY")]
    source.close()


def test_the_poll_period_must_be_positive(firestore_store):
    with pytest.raises(ValueError, match="poll_s"):
        FirestorePendingSource(firestore_store, poll_s=0)


class _HandWatch(_SilentWatch):
    """A listener whose deliveries the test makes (as late as it likes)."""

    def __init__(self, on_documents):
        self.deliver = on_documents


def test_a_version_older_than_one_returned_is_not_returned_again(firestore_store, monkeypatch):
    # The listener far behind delivers a version the poll has already returned a newer one of.
    watches = []
    monkeypatch.setattr(
        firestore_store,
        "watch_pending",
        lambda on_documents: watches.append(_HandWatch(on_documents)) or watches[-1],
    )
    source = FirestorePendingSource(firestore_store, poll_s=60)
    source.open()

    def version(n):
        return parse_signal("a", pending(), version=f"2026-11-26T05:00:0{n}.000000000Z")

    watches[0].deliver([version(2)])
    assert [d.version for d in source.take(timeout_s=0.1)] == [version(2).version]
    watches[0].deliver([version(1)])  # late: older than what was returned
    assert source.take(timeout_s=0.1) == []
    watches[0].deliver([version(3)])
    assert [d.version for d in source.take(timeout_s=0.1)] == [version(3).version]
    source.close()
