"""Document ids are whatever Firestore accepts (docs/design.md section 3, issue 9 item 3), in both
stores.

Firestore's rules: a non-empty string of at most 1,500 bytes of UTF-8, without "/", neither "."
nor "..", not reserved (``__.+__``: the documentation says ``__.*__``, the emulator accepts
"____"). Everything else (a single space, 300 characters, 1,500 bytes of multi-byte characters,
NUL, "#?&%") is an ordinary id: data, never a path.
"""

import pytest
from django.db import IntegrityError, connection, transaction

from brokerops.intent.models import LocalSignal
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.signal_model import DOCUMENT_ID_MAX_BYTES
from brokerops.intent.store import Transition, TransitionOutcome, check_document_id

PENDING, SUBMITTED = SignalStatus.PENDING, SignalStatus.SUBMITTED


def doc(status="PENDING", **fields):
    return {"symbol": "AAPL", "side": "buy", "qty": 1, "order_type": "market", "status": status,
            **fields}  # fmt: skip


#: Ids Firestore accepts (each checked against the emulator below).
ACCEPTED = {
    "space": " ",
    "spaces": "   ",
    "300 chars": "x" * 300,
    "1,500 ASCII bytes": "y" * 1500,
    "1,500 bytes of 2-byte chars": "\u00e9" * 750,
    "1,500 bytes of 3-byte chars": "\u20ac" * 500,
    "1,500 bytes of 4-byte chars": "\U0001d11e" * 375,
    "unicode": "sig-\u65e5\u672c-\u00df-\U0001f680",
    "a b": "a b",
    "#?&%": "#?&%",
    "percent-encoded slash": "a%2Fb",
    "query-like": "?a=1&b=2#frag",
    "backslash": "a\\b",
    "quotes": 'it\'s "quoted"',
    "sql-ish": "x'; DROP TABLE intent_localsignal; --",
    "three dots": "...",
    "dot prefix": ".a",
    "two underscores": "__",
    "three underscores": "___",
    "four underscores": "____",  # documented as reserved (__.*__), yet Firestore accepts it
    "underscore prefix": "__a",
    "underscore suffix": "a__",
    "underscores inside": "__a__b",
    "newline": "a\nb",
    "tab": "\t",
    "NUL": "a\x00b",
    "only NUL": "\x00",
    "noncharacter": "\uffff",
    "last code point": "\U0010ffff",
}

#: Ids Firestore refuses.
REFUSED = {
    "empty": "",
    "slash": "a/b",
    "only slash": "/",
    "trailing slash": "a/",
    "dot": ".",
    "two dots": "..",
    "reserved": "__a__",
    "reserved shortest": "_____",
    "reserved with NUL": "__\x00__",
    "reserved with newline": "__\n__",
    "1,501 bytes": "\u00e9" * 750 + "z",
    "1,501 ASCII bytes": "y" * 1501,
    "lone surrogate": "a\ud800",
}


def test_check_document_id_follows_firestores_rules():
    for name, doc_id in ACCEPTED.items():
        assert check_document_id(doc_id) == doc_id, name
    for name, doc_id in REFUSED.items():
        with pytest.raises(ValueError, match="document id"):
            check_document_id(doc_id)
            pytest.fail(f"{name} accepted")
    for not_a_string in (None, 5, b"abc", ["a"]):
        with pytest.raises(ValueError, match="document id"):
            check_document_id(not_a_string)
    assert DOCUMENT_ID_MAX_BYTES == 1500


@pytest.mark.firestore
def test_firestore_itself_accepts_and_refuses_the_same_ids(firestore_store):
    """The rule is Firestore's: the emulator agrees with `check_document_id` on every id."""
    collection = firestore_store._collection
    for name, doc_id in ACCEPTED.items():
        collection.document(doc_id).set({"n": 1}, timeout=10)
        assert collection.document(doc_id).get(timeout=10).exists, name
    for name, doc_id in REFUSED.items():
        if not doc_id or "/" in doc_id:
            continue  # the client itself turns these into other paths: never sent as ids
        with pytest.raises(Exception):  # noqa: B017 - the server's or the encoder's refusal
            collection.document(doc_id).set({"n": 1}, timeout=10)
            pytest.fail(f"{name} accepted by the emulator")


def test_every_id_firestore_accepts_round_trips_and_transitions(signal_store):
    ids = list(ACCEPTED.values())
    assert signal_store.put_documents((i, doc(note=name)) for name, i in ACCEPTED.items()) == len(
        ids
    )

    read = signal_store.read(statuses=[PENDING])
    assert read.invalid == []
    assert sorted(s.id for s in read.signals) == sorted(ids)
    assert sorted(s.id for s in signal_store.read_all().signals) == sorted(ids)
    for doc_id in ids:
        got = signal_store.get(doc_id)
        assert isinstance(got, Signal) and got.id == doc_id, repr(doc_id)[:40]

    results = signal_store.transition_many(
        [Transition(i, PENDING, SUBMITTED, "order sent", {"client_order_id": "bo-x"}) for i in ids]
    )

    assert [(r.signal_id, r.outcome) for r in results] == [
        (i, TransitionOutcome.APPLIED) for i in ids
    ]
    after = signal_store.read(statuses=[SUBMITTED, PENDING])
    assert sorted(s.id for s in after.signals) == sorted(ids)
    assert {s.status for s in after.signals} == {SUBMITTED}
    # Ids that only look alike stay apart: nothing was stored under a neighbour's id.
    assert signal_store.get("a") is None and signal_store.get("b") is None
    assert signal_store.get("  ") is None and signal_store.get("x" * 299) is None


@pytest.mark.parametrize("name", list(REFUSED))
def test_every_id_firestore_refuses_is_refused_before_anything_is_written(signal_store, name):
    doc_id = REFUSED[name]
    with pytest.raises(ValueError, match="document id"):
        signal_store.put_documents([("fine", doc()), (doc_id, doc())])
    with pytest.raises(ValueError, match="document id"):
        signal_store.get(doc_id)
    signal_store.put_documents([("fine", doc())])
    with pytest.raises(ValueError, match="document id"):
        signal_store.transition_many(
            [
                Transition("fine", PENDING, SUBMITTED, "x"),
                Transition(doc_id, PENDING, SUBMITTED, "x"),
            ]
        )
    everything = signal_store.read_all()
    assert [s.id for s in everything.signals] == ["fine"]
    assert signal_store.get("fine").status is PENDING


def test_an_id_is_data_not_a_path(signal_store):
    """Ids that would mean something else as a path or a pattern are stored as given."""
    tricky = ["..a", "a..", "a%2F..%2Fb", "*", "%", "_", "[a]", "signals", "(default)"]
    signal_store.put_documents((i, doc()) for i in tricky)
    assert sorted(s.id for s in signal_store.read_all().signals) == sorted(tricky)
    assert signal_store.get("%").id == "%"
    assert signal_store.get("a") is None  # "%" and "_" are no wildcards


# --- the local table ------------------------------------------------------------------------------


def test_the_local_column_holds_1500_bytes():
    field = LocalSignal._meta.get_field("document_id")
    assert field.max_length >= DOCUMENT_ID_MAX_BYTES
    assert field.unique


@pytest.mark.django_db
def test_the_unique_index_holds_ids_of_1500_bytes():
    """A 1,500-byte key fits PostgreSQL's btree (at most about 2,700 bytes) and SQLite's."""
    from brokerops.intent.local import LocalSignalStore

    store = LocalSignalStore()
    long_a, long_b = "\u20ac" * 499 + "a", "\u20ac" * 499 + "b"  # 1,498 bytes, differ at the end
    widest = "y" * 1500
    store.put_documents([(long_a, doc()), (long_b, doc()), (widest, doc())])
    assert LocalSignal.objects.count() == 3
    store.put_documents([(long_a, doc("ACTIVE"))])  # replaces, does not duplicate
    assert LocalSignal.objects.count() == 3
    with pytest.raises(IntegrityError), transaction.atomic():
        LocalSignal.objects.create(document_id=widest, data={}, updated_at="2025-01-01T00:00Z")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT character_maximum_length FROM information_schema.columns "
                "WHERE table_name = 'intent_localsignal' AND column_name = 'document_id'"
            )
            assert cursor.fetchone()[0] >= DOCUMENT_ID_MAX_BYTES


@pytest.mark.parametrize(
    "signal_store", [pytest.param("firestore", marks=pytest.mark.firestore)], indirect=True
)
def test_firestore_batches_of_long_ids_stay_within_500_writes(signal_store, backdoor):
    ids = [f"{i:04d}" + "\u20ac" * 498 for i in range(600)]  # 1,498 bytes each
    signal_store.put_documents((i, doc()) for i in ids)
    backdoor.calls.clear()
    results = signal_store.transition_many([Transition(i, PENDING, SUBMITTED, "x") for i in ids])
    assert all(r.applied for r in results)
    assert backdoor.calls == {"batch_get_documents": 1, "commit": 2}


def test_a_nul_in_an_id_is_kept_apart_from_a_slash_lookalike(signal_store):
    """The local store keeps NUL (which PostgreSQL text cannot hold) without confusing ids."""
    signal_store.put_documents([("a\x00b", doc()), ("a\x00\x00b", doc("ACTIVE"))])
    assert signal_store.get("a\x00b").status is PENDING
    assert signal_store.get("a\x00\x00b").status is SignalStatus.ACTIVE
    assert signal_store.get("a\x00c") is None
    assert sorted(s.id for s in signal_store.read_all().signals) == ["a\x00\x00b", "a\x00b"]
