"""The local store's bulk read takes rows from the cursor and converts them itself: it must give
exactly what the ORM's converters (JSONField, UUIDField) would have given."""

import uuid

import pytest

from brokerops.intent.local import LocalSignalStore, _revision_version, _version
from brokerops.intent.models import LocalSignal, document_id_from_column
from brokerops.intent.schema import InvalidSignal, SignalStatus, parse_signal
from brokerops.intent.store import sort_read

DOCS = {
    "ok": {
        "symbol": "AAPL",
        "side": "buy",
        "qty": "10",
        "order_type": "market",
        "status": "ACTIVE",
    },
    "sell": {
        "symbol": "btc-usd",
        "side": "SELL",
        "qty": 0.5,
        "order_type": "limit",
        "limit_price": "64000.5",
        "status": "SUBMITTED",
        "created_at": "2024-05-01T14:30:00+00:00",
    },
    "typo": {
        "symbol": "AAPL",
        "side": "buy",
        "qty": "10",
        "order_type": "market",
        "status": "active",
    },
    "bad-qty": {
        "symbol": "AAPL",
        "side": "buy",
        "qty": "1e-10",
        "order_type": "market",
        "status": "ACTIVE",
    },
    "nul\x00id": {
        "symbol": "MSFT",
        "side": "buy",
        "notional": "100",
        "order_type": "market",
        "status": "ACTIVE",
    },
    "no-status": {"symbol": "AAPL"},
}


def _orm_read(queryset):
    """The read as the ORM gives it (the store's former way)."""
    signals, invalid = [], []
    for stored_id, data, revision in queryset.values_list("document_id", "data", "revision"):
        parsed = parse_signal(document_id_from_column(stored_id), data, version=_version(revision))
        (invalid if isinstance(parsed, InvalidSignal) else signals).append(parsed)
    return sort_read(signals, invalid)


@pytest.mark.django_db
def test_the_bulk_read_gives_what_the_orm_gives():
    store = LocalSignalStore()
    store.put_documents(DOCS.items())
    assert store.read_all() == _orm_read(LocalSignal.objects.all())
    read = store.read(
        statuses=[SignalStatus.ACTIVE, SignalStatus.SUBMITTED], include_unknown_status=True
    )
    assert read == _orm_read(LocalSignal.objects.exclude(status=None))
    assert {s.id for s in read.signals} == {"ok", "sell", "nul\x00id"}
    assert {i.id for i in read.invalid} == {"typo", "bad-qty"}
    assert all(
        s.version == str(LocalSignal.objects.get(document_id=s.id.replace("\x00", "/")).revision)
        for s in read.signals
    )


@pytest.mark.django_db
@pytest.mark.parametrize("data", [[1, 2], "ACTIVE", 42])
def test_a_document_that_is_not_a_map_reads_as_the_orm_reads_it(data):
    store = LocalSignalStore()
    store.put_documents([("odd", {"status": "ACTIVE"})])
    LocalSignal.objects.update(data=data)  # the status column still says ACTIVE
    (invalid,) = store.read(statuses=[SignalStatus.ACTIVE]).invalid
    assert store.read_all() == _orm_read(LocalSignal.objects.all())
    assert invalid.id == "odd" and "map of fields" in invalid.reasons[0]


@pytest.mark.parametrize(
    "stored",
    [
        "0123456789abcdef0123456789abcdef",
        "0123456789ABCDEF0123456789ABCDEF",
        "01234567-89ab-cdef-0123-456789abcdef",
        uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"),
        None,
    ],
)
def test_a_revision_reads_as_str_of_its_uuid(stored):
    expected = None if stored is None else str(uuid.UUID(str(stored)))
    assert (
        _revision_version(stored)
        == expected
        == _version(None if stored is None else uuid.UUID(str(stored)))
    )
