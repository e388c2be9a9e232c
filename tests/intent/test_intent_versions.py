"""Versions (docs/design.md section 4: a decision holds only for the document it was made on;
issue 9 item 7) and the rejection of PENDING documents that do not parse (docs/design.md section
3; issue 9 item 11), on both stores.
"""

import re

import pytest

from brokerops.intent.firestore import FirestoreSignalStore
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import Transition, TransitionOutcome

ACTIVE, PENDING, CLOSED = SignalStatus.ACTIVE, SignalStatus.PENDING, SignalStatus.CLOSED
CLOSED_MANUAL, SUBMITTED = SignalStatus.CLOSED_MANUAL, SignalStatus.SUBMITTED
REJECTED = SignalStatus.REJECTED
APPLIED, CHANGED = TransitionOutcome.APPLIED, TransitionOutcome.CHANGED
STATUS_MOVED, INVALID = TransitionOutcome.STATUS_MOVED, TransitionOutcome.INVALID


def doc(status="ACTIVE", symbol="MSFT", **fields):
    return {"symbol": symbol, "side": "buy", "qty": 1, "order_type": "market", "status": status,
            **fields}  # fmt: skip


# --- versions -------------------------------------------------------------------------------------


def test_every_read_carries_the_documents_version(signal_store, backdoor):
    signal_store.put_documents([("s1", doc()), ("bad", doc(qty="x"))])

    read = signal_store.read(statuses=[ACTIVE])
    [s1], [bad] = read.signals, read.invalid
    assert isinstance(s1.version, str) and s1.version
    assert isinstance(bad.version, str) and bad.version
    assert signal_store.get("s1").version == s1.version
    assert signal_store.read_all().signals[0].version == s1.version
    assert signal_store.get("bad").version == bad.version

    backdoor.update("s1", {"note": "any change"})
    assert signal_store.get("s1").version != s1.version
    if isinstance(signal_store, FirestoreSignalStore):
        # The update time in ISO form, to the nanosecond.
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", s1.version), s1.version


def test_a_transition_applied_gives_the_document_a_new_version(signal_store):
    signal_store.put_documents([("s1", doc())])
    before = signal_store.get("s1")
    result = signal_store.transition_many(
        [Transition("s1", ACTIVE, CLOSED, "closed", expected_version=before.version)]
    )[0]
    assert result.outcome is APPLIED
    assert result.current is None
    assert signal_store.get("s1").version != before.version


def test_a_symbol_changed_after_the_read_is_reported_changed_with_the_fresh_document(
    signal_store, backdoor
):
    signal_store.put_documents([("s1", doc(symbol="MSFT"))])
    [seen] = signal_store.read(statuses=[ACTIVE]).signals
    backdoor.update("s1", {"symbol": "AAPL"})

    result = signal_store.transition(
        signal_id="s1",
        expected_status=ACTIVE,
        new_status=CLOSED_MANUAL,
        reason="Alpaca holds no MSFT",
        expected_version=seen.version,
    )

    assert result.outcome is CHANGED
    assert not result.applied
    assert result.actual_status is ACTIVE
    assert "changed since it was read" in result.detail
    fresh = result.current
    assert isinstance(fresh, Signal)
    assert (fresh.symbol, fresh.status) == ("AAPL", ACTIVE)
    assert fresh.version != seen.version
    stored = backdoor.data("s1")
    assert (stored["status"], stored["symbol"]) == ("ACTIVE", "AAPL")
    assert "status_reason" not in stored

    # The caller re-evaluates on the fresh document and retries with its version.
    retry = signal_store.transition(
        signal_id="s1",
        expected_status=ACTIVE,
        new_status=CLOSED,
        reason="re-evaluated on AAPL",
        expected_version=fresh.version,
    )
    assert retry.outcome is APPLIED
    assert signal_store.get("s1").status is CLOSED
    assert signal_store.get("s1").status_reason == "re-evaluated on AAPL"


def test_a_change_between_the_stores_read_and_write_is_not_retried_over(signal_store, backdoor):
    """With `expected_version`, a conflict at write time is CHANGED, never retried on the fresh
    copy (without it, the same conflict is retried: see test_intent_store)."""
    signal_store.put_documents((i, doc()) for i in ["a", "b", "c"])
    versions = {s.id: s.version for s in signal_store.read(statuses=[ACTIVE]).signals}

    backdoor.before_next_write(lambda: backdoor.update("b", {"qty": 5}))
    results = signal_store.transition_many(
        [
            Transition(i, ACTIVE, CLOSED_MANUAL, "orphan", expected_version=versions[i])
            for i in "abc"
        ]
    )

    assert [r.outcome for r in results] == [APPLIED, CHANGED, APPLIED]
    assert results[1].current.qty == 5
    assert backdoor.data("b")["status"] == "ACTIVE"
    assert "status_reason" not in backdoor.data("b")


def test_a_status_moved_takes_precedence_and_carries_the_fresh_document(signal_store, backdoor):
    signal_store.put_documents([("s1", doc())])
    seen = signal_store.get("s1")
    backdoor.update("s1", {"status": "CLOSED", "symbol": "AAPL"})

    result = signal_store.transition_many(
        [Transition("s1", ACTIVE, CLOSED_MANUAL, "orphan", expected_version=seen.version)]
    )[0]

    assert result.outcome is STATUS_MOVED
    assert result.actual_status is CLOSED
    assert (result.current.status, result.current.symbol) == (CLOSED, "AAPL")


def test_every_skipped_outcome_carries_what_was_read(signal_store):
    signal_store.put_documents([("moved", doc("CLOSED")), ("bad", doc(qty="many"))])
    results = signal_store.transition_many(
        [
            Transition("moved", ACTIVE, CLOSED_MANUAL, "x"),
            Transition("bad", ACTIVE, CLOSED_MANUAL, "x"),
            Transition("gone", ACTIVE, CLOSED_MANUAL, "x"),
        ]
    )
    moved, bad, gone = results
    assert (moved.outcome, moved.current.status) == (STATUS_MOVED, CLOSED)
    assert moved.current.version == signal_store.get("moved").version
    assert bad.outcome is INVALID
    assert isinstance(bad.current, InvalidSignal) and bad.current.raw["qty"] == "many"
    assert bad.current.version == signal_store.get("bad").version
    assert (gone.outcome, gone.current) == (TransitionOutcome.NOT_FOUND, None)


def test_versions_mix_with_plain_transitions_in_one_batch(signal_store, backdoor):
    ids = [f"s{i:03d}" for i in range(20)]
    signal_store.put_documents((i, doc()) for i in ids)
    versions = {s.id: s.version for s in signal_store.read(statuses=[ACTIVE]).signals}
    for i in ids[:5]:
        backdoor.update(i, {"symbol": "AAPL"})
    backdoor.calls.clear()

    results = signal_store.transition_many(
        [
            Transition(i, ACTIVE, CLOSED, "x", expected_version=versions[i] if n % 2 else None)
            for n, i in enumerate(ids)
        ]
    )

    outcomes = [r.outcome for r in results]
    assert outcomes[:5] == [APPLIED, CHANGED, APPLIED, CHANGED, APPLIED]
    assert set(outcomes[5:]) == {APPLIED}
    if isinstance(signal_store, FirestoreSignalStore):
        assert backdoor.calls == {"batch_get_documents": 1, "commit": 1}
    else:
        assert (backdoor.calls["SELECT"], backdoor.calls["UPDATE"]) == (1, 1)


def test_a_version_from_elsewhere_never_matches(signal_store):
    signal_store.put_documents([("s1", doc())])
    result = signal_store.transition_many(
        [Transition("s1", ACTIVE, CLOSED, "x", expected_version="not-a-version")]
    )[0]
    assert result.outcome is CHANGED
    assert signal_store.get("s1").status is ACTIVE


def test_transition_argument_types_are_checked(signal_store):
    signal_store.put_documents([("s1", doc())])
    with pytest.raises(TypeError, match="expected_version"):
        signal_store.transition_many([Transition("s1", ACTIVE, CLOSED, "x", expected_version=3)])
    with pytest.raises(TypeError, match="allow_invalid"):
        signal_store.transition_many([Transition("s1", ACTIVE, CLOSED, "x", allow_invalid="yes")])
    assert signal_store.get("s1").status is ACTIVE


# --- PENDING documents that do not parse ------------------------------------------------------


def test_an_invalid_pending_document_is_rejected_when_asked(signal_store, backdoor):
    signal_store.put_documents(
        [
            ("no-limit", doc("PENDING", order_type="limit")),
            ("huge", doc("PENDING", qty="1e20")),
            ("valid", doc("PENDING")),
        ]
    )
    read = signal_store.read(statuses=[PENDING])
    assert [i.id for i in read.invalid] == ["huge", "no-limit"]
    before = {i: backdoor.data(i) for i in ["no-limit", "huge"]}

    results = signal_store.transition_many(
        [
            Transition(
                i.id,
                PENDING,
                REJECTED,
                "; ".join(i.reasons),
                {"client_order_id": "bo-never-written"},
                allow_invalid=True,
            )
            for i in read.invalid
        ]
        + [Transition("valid", PENDING, SUBMITTED, "sent", {"client_order_id": "bo-v"}, None, True)]
    )

    assert [(r.signal_id, r.outcome, r.actual_status) for r in results] == [
        ("huge", APPLIED, REJECTED),
        ("no-limit", APPLIED, REJECTED),
        ("valid", APPLIED, SUBMITTED),
    ]
    for doc_id, old in before.items():
        new = backdoor.data(doc_id)
        assert new["status"] == "REJECTED"
        assert ("less than 1e12" if doc_id == "huge" else "limit_price") in new["status_reason"]
        assert new["updated_at"]
        # Only status, status_reason and updated_at were written: never `fields`.
        unchanged = {k: v for k, v in new.items() if k not in ("status", "status_reason",
                                                                "updated_at")}  # fmt: skip
        assert unchanged == {k: v for k, v in old.items() if k != "status"}
        assert "client_order_id" not in new
    assert signal_store.get("valid").client_order_id == "bo-v"
    rejected = signal_store.read(statuses=[REJECTED])  # rejected, and still as invalid as it was
    assert sorted(i.id for i in rejected.invalid) == ["huge", "no-limit"]


def test_without_allow_invalid_an_invalid_document_stays_untouched(signal_store, backdoor):
    signal_store.put_documents([("no-limit", doc("PENDING", order_type="limit"))])
    before = backdoor.data("no-limit")
    result = signal_store.transition_many([Transition("no-limit", PENDING, REJECTED, "x")])[0]
    assert result.outcome is INVALID
    assert backdoor.data("no-limit") == before


@pytest.mark.parametrize(
    "status", ["PENDNG", "pending", 7, None, ["PENDING"], {"s": "PENDING"}], ids=repr
)
def test_a_document_whose_status_cannot_be_read_is_never_touched(signal_store, backdoor, status):
    data = doc("PENDING", order_type="limit")
    data["status"] = status
    signal_store.put_documents([("s1", data)])
    before = backdoor.data("s1")

    result = signal_store.transition_many(
        [Transition("s1", PENDING, REJECTED, "x", allow_invalid=True)]
    )[0]

    assert result.outcome is INVALID
    assert isinstance(result.current, InvalidSignal)
    assert backdoor.data("s1") == before


def test_an_invalid_document_with_another_known_status_has_moved(signal_store, backdoor):
    """A retry after a rejection whose outcome was unknown: STATUS_MOVED, as for valid ones."""
    signal_store.put_documents([("s1", doc("PENDING", order_type="limit"))])
    first = signal_store.transition_many(
        [Transition("s1", PENDING, REJECTED, "no limit_price", allow_invalid=True)]
    )[0]
    assert first.outcome is APPLIED
    again = signal_store.transition_many(
        [Transition("s1", PENDING, REJECTED, "no limit_price", allow_invalid=True)]
    )[0]
    assert (again.outcome, again.actual_status) == (STATUS_MOVED, REJECTED)
    assert isinstance(again.current, InvalidSignal)
    assert backdoor.data("s1")["status_reason"] == "no limit_price"


def test_an_invalid_document_is_held_to_its_version_too(signal_store, backdoor):
    signal_store.put_documents([("s1", doc("PENDING", order_type="limit"))])
    [seen] = signal_store.read(statuses=[PENDING]).invalid
    backdoor.update("s1", {"limit_price": 10})  # fixed by its producer: now a valid limit order

    result = signal_store.transition_many(
        [
            Transition(
                "s1",
                PENDING,
                REJECTED,
                "no limit_price",
                expected_version=seen.version,
                allow_invalid=True,
            )
        ]
    )[0]

    assert result.outcome is CHANGED
    assert isinstance(result.current, Signal)
    assert result.current.limit_price == 10
    assert backdoor.data("s1")["status"] == "PENDING"


def test_an_invalid_document_changed_under_the_write_is_retried_without_a_version(
    signal_store, backdoor
):
    signal_store.put_documents([("s1", doc("PENDING", order_type="limit", qty="1e20"))])
    backdoor.before_next_write(lambda: backdoor.update("s1", {"note": "touched"}))

    result = signal_store.transition_many(
        [Transition("s1", PENDING, REJECTED, "no limit_price", allow_invalid=True)]
    )[0]

    assert result.outcome is APPLIED
    stored = backdoor.data("s1")
    assert (stored["status"], stored["note"], stored["qty"]) == ("REJECTED", "touched", "1e20")
