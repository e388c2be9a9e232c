"""The Firestore store's bulk reads decode raw protobufs (`brokerops.intent.firestore_decode`)
instead of building the library's snapshots: they must give exactly what the library gives.

Every document here is written through the client library and read back both ways: the store's
fast path, and ``parse_signal(snapshot.id, snapshot.to_dict(), version=snapshot_version(...))``
on the library's own snapshots.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from google.api_core import exceptions as gexc
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud import firestore
from google.cloud.firestore_v1.vector import Vector
from google.protobuf.timestamp_pb2 import Timestamp

from brokerops.intent.firestore import FirestoreSignalStore
from brokerops.intent.firestore_decode import (
    VersionFormatter,
    decode_fields,
    parse_document,
    snapshot_version,
)
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import SignalStoreError, SignalStoreUnavailable

pytestmark = pytest.mark.firestore

ACTIVE, SUBMITTED = SignalStatus.ACTIVE, SignalStatus.SUBMITTED

NANOS = DatetimeWithNanoseconds(2025, 1, 2, 3, 4, 5, nanosecond=123456789, tzinfo=UTC)
MICROS = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
BEFORE_EPOCH = datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)
FIRST_DAY = datetime(1, 1, 1, tzinfo=UTC)
# The library writes a datetime through a float of seconds: .999999 of the last second of 9999
# would round up past the last representable one, .5 does not.
LAST = DatetimeWithNanoseconds(9999, 12, 31, 23, 59, 59, nanosecond=500000000, tzinfo=UTC)
FAR = DatetimeWithNanoseconds(5000, 7, 8, 9, 10, 11, nanosecond=1000, tzinfo=UTC)

LONG_ID = "é" * 750  # 1,500 bytes of UTF-8: the longest id Firestore takes
ODD_IDS = [" ", "日本語-ü-🚀", LONG_ID, "#?&%", "____", "a.b", "`x`", "\x00nul", "tab\there"]


def signal(status: Any = "ACTIVE", **fields: Any) -> dict[str, Any]:
    return {
        "symbol": "AAPL",
        "side": "buy",
        "qty": 1,
        "order_type": "market",
        "status": status,
        **fields,
    }


def every_value(client: firestore.Client) -> dict[str, Any]:
    """One field of every kind a Firestore document can hold."""
    return {
        "s": "text",
        "s_empty": "",
        "s_unicode": "ünïcødé 🚀 \x00 end",
        "s_long": "x" * 100_000,
        "i_zero": 0,
        "i_neg": -1,
        "i_max": 2**63 - 1,
        "i_min": -(2**63),
        "f": 0.1,
        "f_huge": 1e308,
        "f_tiny": 5e-324,
        "f_negzero": -0.0,
        "f_nan": float("nan"),
        "f_inf": float("inf"),
        "f_neginf": float("-inf"),
        "b_true": True,
        "b_false": False,
        "null": None,
        "t_nanos": NANOS,
        "t_micros": MICROS,
        "t_before_epoch": BEFORE_EPOCH,
        "t_first": FIRST_DAY,
        "t_last": LAST,
        "t_far": FAR,
        "bytes": b"\x00\xff raw",
        "geo": firestore.GeoPoint(51.5, -0.12),
        "ref": client.document("other/doc-1"),
        "vector": Vector([1.0, 2.5, -3.0]),
        "map": {"a": 1, "b": {"c": [1, "two", None, {"d": NANOS}]}, "__note": "kept", "_x_": 2},
        "map_empty": {},
        "array": [1, 2.5, "three", True, None, NANOS, {"k": [b"\x01", 1e308]}, {}],
        "array_empty": [],
        "unicode key ✓": "v",
        "dotted.key": "v",
        "`backticked`": "v",
    }


def documents(client: firestore.Client) -> dict[str, dict[str, Any]]:
    """Valid and invalid signals, odd ids, and every kind of value, under statuses a read asks
    for (ACTIVE, SUBMITTED), does not ask for (CLOSED) and does not know."""
    docs: dict[str, dict[str, Any]] = {
        "valid-plain": signal(),
        "valid-full": signal(
            "SUBMITTED",
            symbol="btc-usd",
            side="SELL",
            qty=None,
            notional="1234.5",
            order_type="stop_limit",
            limit_price=10.25,
            stop_price="9.5",
            time_in_force="GTC",
            timeout_seconds=30,
            extended_hours=True,
            client_order_id="bo-valid-full",
            alpaca_order_id="a1b2",
            created_at=NANOS,
            updated_at=MICROS,
            status_reason="submitted",
            extra={"ignored": [1, 2]},
        ),
        "valid-iso-times": signal(created_at="2025-01-02T03:04:05.123456+02:00"),
        "valid-every-value": {**signal(), **every_value(client)},
        "invalid-every-value": {**signal(qty="x"), **every_value(client)},
        "invalid-nan-qty": signal(qty=float("nan")),
        "invalid-huge-qty": signal(qty=1e308),
        "invalid-int-qty": signal(qty=2**63 - 1),
        "invalid-bool-qty": signal(qty=True),
        "invalid-map-symbol": signal(symbol={"a": 1}),
        "invalid-time": signal(created_at="yesterday"),
        "invalid-missing": {"status": "ACTIVE"},
        "invalid-stamp-type": signal(updated_at=firestore.GeoPoint(1, 2)),
        "unknown-typo": signal("ACTIV"),
        "unknown-lower": signal("active"),
        "unknown-number": signal(7),
        "unknown-float": signal(float("nan")),
        "unknown-list": signal(["ACTIVE"]),
        "unknown-map": signal({"s": "ACTIVE"}),
        "unknown-bool": signal(True),
        "unknown-stamp": signal(NANOS),
        "unknown-every-value": {**every_value(client), "status": "NEW"},
        "closed": signal("CLOSED"),
        "closed-every-value": {**every_value(client), "status": "CLOSED"},
        "no-status": {k: v for k, v in signal().items() if k != "status"},
        "null-status": signal(None),
    }
    for i, doc_id in enumerate(ODD_IDS):
        docs[doc_id] = signal(["ACTIVE", "SUBMITTED", "?"][i % 3], n=i)
    return docs


@pytest.fixture
def written(firestore_store: FirestoreSignalStore) -> dict[str, dict[str, Any]]:
    """The documents, written through the client library (not `put_documents`, which turns
    decimals into strings): what any other producer could store."""
    client = firestore_store._client
    docs = documents(client)
    batch = client.batch()
    for doc_id, data in docs.items():
        batch.set(firestore_store._collection.document(doc_id), data)
    batch.commit()
    return docs


def same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (NaN equals NaN, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Signal | InvalidSignal):
        fields = a.__dataclass_fields__
        return all(same(getattr(a, f), getattr(b, f)) for f in fields)
    if isinstance(a, Vector):
        return same(list(a), list(b))
    return a == b


def library_documents(store: FirestoreSignalStore) -> dict[str, tuple[dict[str, Any], str]]:
    """Every document as the library reads it: ``snapshot.to_dict()`` and the version."""
    return {s.id: (s.to_dict(), snapshot_version(s)) for s in store._collection.stream()}


def library_parse(store: FirestoreSignalStore) -> dict[str, Signal | InvalidSignal]:
    """The library's snapshots through the store's parse of a decoded document (values a signal
    cannot hold, such as a reference, make it invalid)."""
    return {
        doc_id: parse_document(doc_id, data, version)
        for doc_id, (data, version) in library_documents(store).items()
    }


def test_decoded_documents_are_what_the_library_gives(firestore_store, written):
    expected = library_documents(firestore_store)
    assert set(expected) == set(written)

    fast = {
        doc_id: (data, version)
        for doc_id, data, version in firestore_store._stream_documents(
            firestore_store._collection._query()
        )
    }

    assert set(fast) == set(expected)
    for doc_id, (data, version) in expected.items():
        assert same(fast[doc_id][0], data), doc_id
        assert fast[doc_id][1] == version, doc_id
        assert len(version) == len("2025-01-02T03:04:05.123456789Z")


def test_timestamps_keep_their_nanoseconds(firestore_store, written):
    fast = {
        doc_id: data
        for doc_id, data, _ in firestore_store._stream_documents(
            firestore_store._collection._query()
        )
    }
    values = fast["valid-every-value"]
    # Firestore keeps microseconds: 123456789 ns is stored as 123456 us.
    assert values["t_nanos"] == NANOS.replace(microsecond=123456)
    assert values["t_nanos"].nanosecond == 123456000
    assert values["t_last"].nanosecond == 500000000
    assert values["map"]["b"]["c"][3]["d"].nanosecond == 123456000
    assert isinstance(values["t_micros"], DatetimeWithNanoseconds)
    # The library's to_dict() deep-copies the value, which drops the nanosecond attribute
    # (the datetime itself, to the microsecond, is equal): the fast path keeps it.
    slow = library_documents(firestore_store)["valid-every-value"][0]
    assert slow["t_nanos"] == values["t_nanos"]


def test_the_extreme_timestamps_decode_as_the_library_decodes_them(firestore_store):
    firestore_store._collection.document("far").set(
        signal(created_at=FIRST_DAY, updated_at=LAST, more=[LAST, {"far": FAR}])
    )
    expected = library_parse(firestore_store)["far"]

    (found,) = firestore_store.read(statuses=[ACTIVE]).signals

    assert same(found, expected)
    assert (found.created_at, found.updated_at) == (FIRST_DAY, LAST)
    assert found.updated_at.isoformat() == "9999-12-31T23:59:59.500000+00:00"


def test_read_gives_what_parse_signal_gives_on_the_librarys_snapshots(firestore_store, written):
    expected = library_parse(firestore_store)

    result = firestore_store.read(statuses=[ACTIVE, SUBMITTED], include_unknown_status=True)
    everything = firestore_store.read_all()

    wanted = {
        doc_id
        for doc_id, data in written.items()
        if data.get("status") is not None and data["status"] != "CLOSED"
    }
    got = {p.id: p for p in [*result.signals, *result.invalid]}
    assert set(got) == wanted
    for doc_id, parsed in got.items():
        assert same(parsed, expected[doc_id]), doc_id
    assert len(everything) == len(written)
    for parsed in [*everything.signals, *everything.invalid]:
        assert same(parsed, expected[parsed.id]), parsed.id
    assert [s.id for s in result.signals] == sorted(s.id for s in result.signals)
    assert [i.id for i in result.invalid] == sorted(i.id for i in result.invalid)
    assert {"valid-plain", "valid-full", " "} <= {s.id for s in result.signals}
    assert {"invalid-every-value", "unknown-every-value", LONG_ID} <= {i.id for i in result.invalid}
    # A reference, a geo point, bytes, a vector: values a signal cannot hold, each named.
    reasons = " ".join(got["valid-every-value"].reasons)
    for field in ("bytes", "geo", "ref", "vector"):
        assert f"field {field!r} holds a" in reasons
    assert isinstance(got["valid-full"], Signal)
    assert got["valid-full"].created_at.nanosecond == 123456000


@pytest.mark.parametrize(
    ("statuses", "unknown", "queries"),
    [
        ([ACTIVE], False, 1),
        ([ACTIVE, SUBMITTED], True, 1),  # one not-in query: the unknown ones come with it
        ([], True, 1),
        (list(SignalStatus), False, 1),
        (list(SignalStatus), True, 2),  # nothing to exclude: in + not-in
    ],
)
def test_read_finds_the_same_documents_whatever_the_queries(
    firestore_store, written, backdoor, statuses, unknown, queries
):
    expected = library_parse(firestore_store)
    values = {s.value for s in statuses}
    backdoor.calls.clear()

    result = firestore_store.read(statuses=statuses, include_unknown_status=unknown)

    status_of = {doc_id: data.get("status") for doc_id, data in written.items()}
    wanted = {
        doc_id
        for doc_id, status in status_of.items()
        if (isinstance(status, str) and status in values)
        or (
            unknown
            and status is not None
            and not (isinstance(status, str) and status in SignalStatus._value2member_map_)
        )
    }
    got = {p.id: p for p in [*result.signals, *result.invalid]}
    assert set(got) == wanted
    assert all(same(p, expected[i]) for i, p in got.items())
    assert backdoor.calls == {"run_query": queries}


@pytest.fixture
def signal_store(firestore_store):
    """The backdoor fixture's store (Firestore only here)."""
    return firestore_store


def _interrupt_first_stream(monkeypatch, store, error: Exception, after: int) -> list[Any]:
    """Make the first RunQuery stream fail with `error` after `after` responses; later calls go
    through. Returns the requests sent."""
    api = store._client._firestore_api
    rpc = api.run_query
    requests: list[Any] = []

    def run_query(*args, **kwargs):
        requests.append(kwargs["request"])
        responses = rpc(*args, **kwargs)
        if len(requests) > 1:
            return responses

        def failing():
            for i, response in enumerate(responses):
                if i == after:
                    raise error
                yield response

        return failing()

    monkeypatch.setattr(api, "run_query", run_query)
    return requests


@pytest.mark.parametrize(
    ("unknown", "tenth"),
    [
        (False, "sig-009"),
        (True, "sig-008"),  # a not-in query is ordered by status first: "ACTIV" comes first
    ],
)
def test_a_stream_broken_midway_resumes_after_the_last_document(
    firestore_store, monkeypatch, unknown, tenth
):
    firestore_store.put_documents((f"sig-{i:03d}", signal()) for i in range(50))
    firestore_store.put_documents([("typo", signal("ACTIV"))])
    expected = firestore_store.read(statuses=[ACTIVE], include_unknown_status=unknown)
    requests = _interrupt_first_stream(
        monkeypatch, firestore_store, gexc.ServiceUnavailable("stream reset"), after=10
    )

    result = firestore_store.read(statuses=[ACTIVE], include_unknown_status=unknown)

    assert result == expected
    assert len(requests) == 2
    cursor = requests[1]["structured_query"].start_at
    assert cursor.before is False  # start_after the tenth document
    assert cursor.values[-1].reference_value.endswith(f"/signals/{tenth}")


@pytest.mark.parametrize(
    ("error", "raised"),
    [
        (gexc.PermissionDenied("no"), SignalStoreError),
        (gexc.DeadlineExceeded("slow"), SignalStoreUnavailable),
    ],
)
def test_a_stream_broken_by_a_final_error_raises_the_stores_error(
    firestore_store, monkeypatch, error, raised
):
    firestore_store.put_documents((f"sig-{i:03d}", signal()) for i in range(20))
    requests = _interrupt_first_stream(monkeypatch, firestore_store, error, after=5)

    with pytest.raises(raised, match="Firestore read failed") as caught:
        firestore_store.read(statuses=[ACTIVE])

    assert len(requests) == 1
    if raised is SignalStoreError:
        assert not isinstance(caught.value, SignalStoreUnavailable)


def test_the_clients_streams_are_read_on_the_calling_thread(firestore_store):
    """`firestore_client()` builds a channel whose server streams are read by the iterating
    thread, not handed over message by message from gRPC's own thread (the bulk read's main
    cost otherwise)."""
    transport = firestore_store._client._firestore_api._transport
    assert type(transport.run_query).__name__ == "_SingleThreadedUnaryStreamMultiCallable"
    assert type(transport.batch_get_documents).__name__ == (
        "_SingleThreadedUnaryStreamMultiCallable"
    )


def test_version_strings_match_snapshot_version():
    format_version = VersionFormatter()
    for seconds, nanos in [
        (1_700_000_000, 123_456_789),
        (1_700_000_000, 5),
        (1_700_000_000, 0),
        (0, 999_999_999),
        (-1, 500_000_000),
        (253_402_300_799, 999_999_999),
        (-62_135_596_800, 0),
    ]:
        stamp = Timestamp(seconds=seconds, nanos=nanos)
        snapshot = type("S", (), {"update_time": DatetimeWithNanoseconds.from_timestamp_pb(stamp)})
        assert format_version(stamp) == snapshot_version(snapshot)
        assert format_version(stamp) == snapshot_version(snapshot)  # from the cache
    stamp = Timestamp(
        seconds=int(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp()), nanos=1000
    )
    assert format_version(stamp) == "2025-01-02T03:04:05.000001000Z"


def test_decode_fields_handles_special_maps_through_the_library(firestore_store):
    client = firestore_store._client
    ref = firestore_store._collection.document("v")
    ref.set({"vector": Vector([0.5]), "plain": {"__type__x": 1}, "nan": math.nan})
    from google.cloud.firestore_v1.types import document as document_types

    raw = client._firestore_api.get_document(request={"name": ref._document_path})
    fields = document_types.Document.pb(raw).fields
    decoded = decode_fields(fields, client)
    assert same(decoded, ref.get().to_dict())
    assert isinstance(decoded["vector"], Vector)
