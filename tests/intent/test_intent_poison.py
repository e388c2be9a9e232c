"""Poison numbers stored in either store (issue 9 items 1, 2 and 11): read back as invalid with a
reason naming the field, never an exception, and a PENDING one can be moved to REJECTED.

Values are ones both stores hold: strings, doubles and 64-bit integers (Firestore's types).
"""

import time

import pytest

from brokerops.intent.schema import InvalidSignal, SignalStatus
from brokerops.intent.store import Transition, TransitionOutcome

PENDING, REJECTED = SignalStatus.PENDING, SignalStatus.REJECTED

#: (field, stored value, expected reason)
POISON = [
    ("qty", "1e20", "qty must be less than 1e12"),
    ("qty", 1e20, "qty must be less than 1e12"),
    ("qty", 1e308, "qty must be less than 1e12"),
    ("qty", 2**63 - 1, "qty must be less than 1e12"),
    ("qty", 10**12, "qty must be less than 1e12"),
    ("qty", "1e999999999", "qty must be less than 1e12"),
    ("qty", "1e99999999999999999999", "qty is out of range"),
    ("qty", "1e-10", "qty is finer than 1e-9"),
    ("qty", "0.0000000001", "qty is finer than 1e-9"),
    ("qty", 1e-10, "qty is finer than 1e-9"),
    ("qty", 5e-324, "qty is finer than 1e-9"),
    ("qty", "-1e999999999", "qty must be positive"),
    ("qty", -(2**63), "qty must be positive"),
    ("qty", "9" * 100_000, "qty is too long to be a number"),
    ("qty", "NaN", "qty must be finite"),
    ("qty", "-Infinity", "qty must be finite"),
    ("notional", "1e20", "notional must be less than 1e12"),
    ("notional", "1e-10", "notional is finer than 1e-9"),
    ("limit_price", 1e12, "limit_price must be less than 1e12"),
    ("limit_price", "0.0000000001", "limit_price is finer than 1e-9"),
    ("stop_price", "1e999999999", "stop_price must be less than 1e12"),
    ("timeout_seconds", 2**63 - 1, "timeout_seconds must be less than 1e12"),
]


def document(field, value, status="PENDING"):
    doc = {"symbol": "AAPL", "side": "buy", "qty": "1", "order_type": "market", "status": status}
    if field == "notional":
        del doc["qty"]
    if field == "limit_price":
        doc["order_type"] = "limit"
    if field == "stop_price":
        doc["order_type"] = "stop"
    doc[field] = value
    return doc


def test_poison_numbers_read_back_invalid_with_the_field_named(signal_store):
    ids = [f"poison-{n:02d}" for n in range(len(POISON))]
    docs = [(i, document(f, v)) for i, (f, v, _) in zip(ids, POISON, strict=True)]
    signal_store.put_documents([*docs, ("valid", document("qty", "0.000000001"))])

    started = time.perf_counter()
    read = signal_store.read(statuses=[PENDING])
    elapsed = time.perf_counter() - started

    assert [s.id for s in read.signals] == ["valid"]
    reasons = {i.id: " | ".join(i.reasons) for i in read.invalid}
    assert sorted(reasons) == ids
    for doc_id, (field, value, expected) in zip(ids, POISON, strict=True):
        assert expected in reasons[doc_id], (field, str(value)[:40], reasons[doc_id])
    assert all(len(r) < 300 for i in read.invalid for r in i.reasons)
    assert elapsed < 5, f"reading poison took {elapsed:.2f}s"
    for doc_id in ids:
        assert isinstance(signal_store.get(doc_id), InvalidSignal)


def test_pending_poison_is_rejected_in_one_batch_and_the_valid_signal_beside_it_moves(
    signal_store, backdoor
):
    ids = [f"poison-{n:02d}" for n in range(len(POISON))]
    signal_store.put_documents(
        [(i, document(f, v)) for i, (f, v, _) in zip(ids, POISON, strict=True)]
        + [("valid", document("qty", "2"))]
    )
    read = signal_store.read(statuses=[PENDING])
    backdoor.calls.clear()

    results = signal_store.transition_many(
        [
            Transition(
                i.id,
                PENDING,
                REJECTED,
                "; ".join(i.reasons),
                expected_version=i.version,
                allow_invalid=True,
            )
            for i in read.invalid
        ]
        + [
            Transition(
                "valid",
                PENDING,
                SignalStatus.SUBMITTED,
                "sent",
                expected_version=read.signals[0].version,
            )
        ]
    )

    calls = dict(backdoor.calls)
    assert {r.outcome for r in results} == {TransitionOutcome.APPLIED}
    after = signal_store.read_all()
    assert {i.raw_status for i in after.invalid} == {"REJECTED"}
    assert [(s.id, s.status) for s in after.signals] == [("valid", SignalStatus.SUBMITTED)]
    by_id = {i.id: i for i in after.invalid}
    for doc_id, (field, value, _) in zip(ids, POISON, strict=True):
        stored = by_id[doc_id].raw[field]  # the poison itself is never rewritten
        # (PostgreSQL's jsonb gives a double such as 1e308 back as the integer it equals.)
        assert stored == value or float(stored) == value, (field, str(value)[:40])
    if "commit" in calls or "batch_get_documents" in calls:
        assert calls == {"batch_get_documents": 1, "commit": 1}
    else:
        assert (calls["SELECT"], calls["UPDATE"]) == (1, 1)


@pytest.mark.parametrize("status", ["PENDNG", 7, None])
def test_poison_whose_status_cannot_be_read_is_left_untouched(signal_store, backdoor, status):
    data = document("qty", "1e20")
    data["status"] = status
    signal_store.put_documents([("s1", data)])
    before = backdoor.data("s1")
    result = signal_store.transition_many(
        [Transition("s1", PENDING, REJECTED, "x", allow_invalid=True)]
    )[0]
    assert result.outcome is TransitionOutcome.INVALID
    assert backdoor.data("s1") == before
