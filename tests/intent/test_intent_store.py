"""The signal store contract, run against both stores (local database and Firestore emulator)."""

import os
import socket
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test.utils import override_settings

from brokerops.intent import firestore as firestore_module
from brokerops.intent.factory import get_signal_store
from brokerops.intent.firestore import FirestoreSignalStore
from brokerops.intent.firestore_client import firestore_client
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import SignalStoreUnavailable, Transition, TransitionOutcome

ACTIVE, PENDING, CLOSED = SignalStatus.ACTIVE, SignalStatus.PENDING, SignalStatus.CLOSED
CLOSED_MANUAL, SUBMITTED = SignalStatus.CLOSED_MANUAL, SignalStatus.SUBMITTED


def doc(status="ACTIVE", symbol="AAPL", **fields):
    return {
        "symbol": symbol,
        "side": "buy",
        "qty": 1,
        "order_type": "market",
        "status": status,
        **fields,
    }


#: One of each kind of broken document, all claiming a status a run would read.
MALFORMED = {
    "bad-types": doc(symbol=["AAPL"], qty={"n": 1}, extended_hours="no"),
    "bad-missing": {"symbol": "AAPL", "status": "ACTIVE"},
    "bad-negative": doc(qty=-3),
    "bad-nonnumeric": doc(qty="lots"),
    "bad-both": doc(notional=250),
    "bad-limit": doc(order_type="limit"),
}


def test_documents_round_trip_and_parse(signal_store):
    created = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)
    signal_store.put_documents(
        [
            ("s1", doc(qty=0.1, created_at=created, symbol="btc/usd")),
            ("s2", doc(qty=Decimal("2.50"), side="sell", symbol="TSLA")),
            ("bad", doc(qty=-1)),
        ]
    )
    s1 = signal_store.get("s1")
    assert isinstance(s1, Signal)
    assert (s1.symbol, s1.symbol_key, s1.qty) == ("BTC/USD", "BTCUSD", Decimal("0.1"))
    assert s1.created_at == created
    assert signal_store.get("s2").signed_qty == Decimal("-2.50")
    bad = signal_store.get("bad")
    assert isinstance(bad, InvalidSignal)
    assert "qty must be positive" in bad.reasons[0]
    assert signal_store.get("nope") is None


def test_symbol_forms_normalise_to_one_key(signal_store):
    forms = {"a": "BTC/USD", "b": "btc/usd", "c": "BTCUSD", "d": "BTC-USD", "e": " aapl "}
    signal_store.put_documents((k, doc(symbol=v)) for k, v in forms.items())
    found = {s.id: s for s in signal_store.read(statuses=[ACTIVE]).signals}
    assert {found[k].symbol_key for k in "abcd"} == {"BTCUSD"}
    assert found["a"].symbol == found["b"].symbol == found["d"].symbol == "BTC/USD"
    assert (found["e"].symbol, found["e"].symbol_key) == ("AAPL", "AAPL")


def test_bulk_read_of_5000_signals_is_one_query(signal_store, backdoor):
    statuses = ["ACTIVE", "PENDING", "CLOSED", "SUBMITTED"]
    docs = [(f"sig-{i:05d}", doc(statuses[i % 4], symbol=f"S{i % 50}")) for i in range(5000)]
    docs += [(f"zz-bad-{i}", doc("ACTIVE", qty="x")) for i in range(3)]
    signal_store.put_documents(docs)
    backdoor.calls.clear()

    result = signal_store.read(statuses={ACTIVE, PENDING})

    assert len(result.signals) == 2500
    assert {s.status for s in result.signals} == {ACTIVE, PENDING}
    assert [i.id for i in result.invalid] == ["zz-bad-0", "zz-bad-1", "zz-bad-2"]
    assert result.signals == sorted(result.signals, key=lambda s: s.id)
    if isinstance(signal_store, FirestoreSignalStore):
        assert backdoor.calls == {"run_query": 1}
    else:
        assert backdoor.calls == {"SELECT": 1}  # the count, not a clock, pins the cost


def test_read_reports_unknown_statuses_only_when_asked(signal_store):
    signal_store.put_documents(
        [
            ("ok", doc("ACTIVE")),
            ("typo", doc("ACTIV")),
            ("lower", doc("active")),
            ("number", doc(7)),
            ("null", doc(None)),
            ("missing", {"symbol": "AAPL", "side": "buy", "qty": 1, "order_type": "market"}),
        ]
    )
    plain = signal_store.read(statuses=[ACTIVE])
    assert ([s.id for s in plain.signals], plain.invalid) == (["ok"], [])

    wider = signal_store.read(statuses=[ACTIVE], include_unknown_status=True)
    assert [s.id for s in wider.signals] == ["ok"]
    assert [i.id for i in wider.invalid] == ["lower", "number", "typo"]

    everything = signal_store.read_all()
    assert [i.id for i in everything.invalid] == ["lower", "missing", "null", "number", "typo"]


def test_a_change_made_after_the_read_is_not_overwritten(signal_store, backdoor):
    signal_store.put_documents([("s1", doc("ACTIVE"))])
    [seen] = signal_store.read(statuses=[ACTIVE]).signals
    backdoor.update("s1", {"status": "CLOSED", "status_reason": "closed by the trader"})

    result = signal_store.transition(
        signal_id=seen.id,
        expected_status=seen.status,
        new_status=CLOSED_MANUAL,
        reason="no position at the broker",
    )

    assert result.outcome is TransitionOutcome.STATUS_MOVED
    assert (result.expected_status, result.actual_status) == (ACTIVE, CLOSED)
    assert not result.applied
    stored = backdoor.data("s1")
    assert (stored["status"], stored["status_reason"]) == ("CLOSED", "closed by the trader")


def test_a_change_landing_between_the_stores_read_and_write_wins(signal_store, backdoor):
    signal_store.put_documents((i, doc("ACTIVE")) for i in ["a", "b", "c", "d"])

    def another_writer():
        backdoor.update("b", {"status": "CLOSED", "status_reason": "trader"})
        backdoor.update("c", {"note": "touched, status unchanged"})

    backdoor.before_next_write(another_writer)
    results = signal_store.transition_many(
        [Transition(i, ACTIVE, CLOSED_MANUAL, "orphan") for i in ["a", "b", "c", "d"]]
    )

    outcomes = {r.signal_id: r.outcome for r in results}
    assert outcomes == {
        "a": TransitionOutcome.APPLIED,
        "b": TransitionOutcome.STATUS_MOVED,
        "c": TransitionOutcome.APPLIED,
        "d": TransitionOutcome.APPLIED,
    }
    assert backdoor.data("b")["status"] == "CLOSED"
    assert backdoor.data("b")["status_reason"] == "trader"
    c = backdoor.data("c")
    assert (c["status"], c["note"]) == ("CLOSED_MANUAL", "touched, status unchanged")


def test_transition_many_reports_each_outcome(signal_store):
    signal_store.put_documents(
        [
            ("applied", doc("PENDING")),
            ("moved", doc("ACTIVE")),
            ("invalid", doc("PENDING", qty="many")),
        ]
    )
    results = signal_store.transition_many(
        [
            Transition("applied", PENDING, SUBMITTED, "order sent", {"client_order_id": "bo-1"}),
            Transition("moved", PENDING, SUBMITTED, "order sent"),
            Transition("gone", PENDING, SUBMITTED, "order sent"),
            Transition("invalid", PENDING, SUBMITTED, "order sent"),
        ]
    )
    assert [(r.signal_id, r.outcome, r.actual_status) for r in results] == [
        ("applied", TransitionOutcome.APPLIED, SUBMITTED),
        ("moved", TransitionOutcome.STATUS_MOVED, ACTIVE),
        ("gone", TransitionOutcome.NOT_FOUND, None),
        ("invalid", TransitionOutcome.INVALID, "PENDING"),
    ]
    assert "qty is not numeric" in results[3].detail
    assert all(r.reason == "order sent" for r in results)
    applied = signal_store.get("applied")
    assert (applied.status, applied.client_order_id) == (SUBMITTED, "bo-1")
    assert signal_store.get("moved").status is ACTIVE


def test_transition_many_handles_thousands_in_batches(signal_store, backdoor):
    ids = [f"sig-{i:04d}" for i in range(1200)]
    signal_store.put_documents((i, doc("ACTIVE")) for i in ids)
    backdoor.calls.clear()

    results = signal_store.transition_many([Transition(i, ACTIVE, CLOSED, "closed") for i in ids])
    calls = dict(backdoor.calls)

    assert all(r.applied for r in results)
    assert len(signal_store.read(statuses=[CLOSED]).signals) == 1200
    if isinstance(signal_store, FirestoreSignalStore):
        # 2 BatchGetDocuments (1,000 ids each), 3 commits (at most 500 writes each).
        assert calls == {"batch_get_documents": 2, "commit": 3}
    else:
        # 3 reads of 500 ids, then one conditional UPDATE per 500 rows in one transaction.
        assert (calls["SELECT"], calls["UPDATE"]) == (3, 3)


def test_malformed_documents_are_reported_and_never_modified(signal_store, backdoor):
    signal_store.put_documents(MALFORMED.items())
    before = {i: backdoor.data(i) for i in MALFORMED}

    read = signal_store.read(statuses=[ACTIVE])
    assert read.signals == []
    reasons = {i.id: " ".join(i.reasons) for i in read.invalid}
    assert "symbol must be a string" in reasons["bad-types"]
    assert "qty must be a number" in reasons["bad-types"]
    assert "side is missing" in reasons["bad-missing"]
    assert "order_type is missing" in reasons["bad-missing"]
    assert "qty must be positive" in reasons["bad-negative"]
    assert "qty is not numeric" in reasons["bad-nonnumeric"]
    assert "both set" in reasons["bad-both"]
    assert "limit_price is required" in reasons["bad-limit"]

    results = signal_store.transition_many(
        [Transition(i, ACTIVE, CLOSED_MANUAL, "orphan") for i in MALFORMED]
    )
    assert {r.outcome for r in results} == {TransitionOutcome.INVALID}
    assert {i: backdoor.data(i) for i in MALFORMED} == before


def test_transition_stamps_server_time_and_records_the_reason(signal_store):
    signal_store.put_documents([("s1", doc("SUBMITTED", updated_at="2020-01-01T00:00:00Z"))])
    before = datetime.now(UTC)

    result = signal_store.transition(
        signal_id="s1",
        expected_status=SUBMITTED,
        new_status=ACTIVE,
        reason="filled at the broker",
        fields={"alpaca_order_id": "ord-9"},
    )

    after = datetime.now(UTC)
    assert result.outcome is TransitionOutcome.APPLIED
    signal = signal_store.get("s1")
    assert signal.status is ACTIVE
    assert signal.status_reason == "filled at the broker"
    assert signal.alpaca_order_id == "ord-9"
    assert signal.updated_at.tzinfo is not None
    # The server's clock, on this machine: within a second of ours (the emulator rounds to ms).
    assert before - timedelta(seconds=1) <= signal.updated_at <= after + timedelta(seconds=1)


def test_transition_arguments_are_checked_before_anything_is_written(signal_store):
    signal_store.put_documents([("s1", doc("ACTIVE"))])
    with pytest.raises(ValueError, match="cannot be set by a transition"):
        signal_store.transition(
            signal_id="s1",
            expected_status=ACTIVE,
            new_status=CLOSED,
            reason="x",
            fields={"qty": "5"},
        )
    with pytest.raises(ValueError, match="cannot be set by a transition"):
        signal_store.transition(
            signal_id="s1",
            expected_status=ACTIVE,
            new_status=CLOSED,
            reason="x",
            fields={"updated_at": "2020-01-01T00:00:00Z"},
        )
    with pytest.raises(ValueError, match="twice"):
        signal_store.transition_many(
            [Transition("s1", ACTIVE, CLOSED, "x"), Transition("s1", ACTIVE, CLOSED, "y")]
        )
    assert signal_store.get("s1").status is ACTIVE


def test_put_documents_replaces_whole_documents_and_delete_all_empties(signal_store):
    signal_store.put_documents([("s1", doc("ACTIVE", note="old"))])
    signal_store.put_documents([("s1", doc("PENDING"))])
    assert signal_store.get("s1").status is PENDING
    assert len(signal_store.read_all()) == 1
    with pytest.raises(ValueError, match="given twice"):
        signal_store.put_documents([("s2", doc()), ("s2", doc())])
    with pytest.raises(ValueError, match="not allowed"):
        signal_store.put_documents([("a/b", doc())])

    assert signal_store.delete_all() >= 1
    assert len(signal_store.read_all()) == 0


@pytest.mark.parametrize(
    "signal_store", [pytest.param("firestore", marks=pytest.mark.firestore)], indirect=True
)
def test_in_filters_are_split_into_chunks(signal_store, backdoor, monkeypatch):
    signal_store.put_documents((s.value, doc(s.value)) for s in SignalStatus)
    monkeypatch.setattr(firestore_module, "IN_QUERY_LIMIT", 2)
    backdoor.calls.clear()

    result = signal_store.read(statuses=set(SignalStatus))

    assert [s.id for s in result.signals] == sorted(s.value for s in SignalStatus)
    assert backdoor.calls == {"run_query": 4}


def test_get_signal_store_follows_settings(signal_store, configured_signal_store, monkeypatch):
    monkeypatch.delenv("FIRESTORE_EMULATOR_HOST", raising=False)
    signal_store.put_documents([("s1", doc("ACTIVE"))])

    store = get_signal_store()

    assert type(store) is type(signal_store)
    assert store.get("s1").status is ACTIVE


@pytest.mark.firestore
def test_the_emulator_setting_wins_over_the_environment(firestore_emulator, settings, monkeypatch):
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")  # nothing listens there
    settings.SIGNAL_STORE = "firestore"
    settings.GOOGLE_CLOUD_PROJECT = "brokerops-settings-test"  # a client not built before
    settings.FIRESTORE_EMULATOR_HOST = firestore_emulator.host

    store = get_signal_store()
    store.delete_all()
    store.put_documents([("s1", doc("ACTIVE"))])

    assert store.get("s1").status is ACTIVE
    assert get_signal_store()._client is store._client  # built once
    assert os.environ["FIRESTORE_EMULATOR_HOST"] == "127.0.0.1:9"  # restored


@pytest.mark.django_db
def test_local_store_is_the_default():
    with override_settings(SIGNAL_STORE="local"):
        assert isinstance(get_signal_store(), LocalSignalStore)


def test_an_unreachable_firestore_raises_unavailable_within_its_timeout():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = firestore_client(project="unreachable", emulator_host=f"127.0.0.1:{port}")
    store = FirestoreSignalStore(client, timeout=1)

    started = time.perf_counter()
    with pytest.raises(SignalStoreUnavailable, match="Firestore read failed"):
        store.read(statuses=[ACTIVE])
    assert time.perf_counter() - started < 5
