"""Decoding of raw Firestore ``Document`` protobufs for the store's bulk reads.

The client library turns every streamed document into a ``DocumentSnapshot``: proto-plus wrappers
around each value, its own decoder, and two deep copies of the data (one when the snapshot is
built, one in ``to_dict()``). For a bulk read of thousands of signals that costs more than the
read itself, so `FirestoreSignalStore.read` decodes the raw protobufs here instead.

`decode_fields` gives what ``DocumentSnapshot.to_dict()`` gives for the same document (equal
values of the same types; checked document by document in
``tests/intent/test_intent_firestore_fast_read.py``): strings, integers, doubles (NaN and
infinities included), booleans and nulls are taken as they are; maps and arrays are walked here.
Everything else goes through the library's own decoder (``_helpers.decode_value`` /
``decode_dict``): references (which need the client), bytes, geo points, and any map with a key
starting with ``__`` (the library turns ``__type__`` maps into vectors and single-key ``__oid__``,
``__int__``... maps into BSON values).

Timestamps are the library's ``DatetimeWithNanoseconds``, built by the library's own function,
nanoseconds kept (``to_dict()`` loses the attribute: its deep copy of a ``DatetimeWithNanoseconds``
drops it; the value, to the microsecond, is equal. Firestore stores microseconds anyway).

`plain_fields` makes a decoded document plain (``str``, numbers, booleans, null, timestamps, maps
and arrays of them): whatever else a document holds (a reference, which carries the client, a
geo point, bytes, a vector) is replaced by a description and named as a problem, so the document
is invalid with its reason and every document can cross a process boundary (the listener's
pipe pickles what it sends: a reference there killed the hand-off).

`snapshot_version` gives a document's version from a library snapshot; `VersionFormatter` formats
an update time the same way (``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ``), straight from the protobuf's
seconds and nanos. `parse_document` parses a decoded document from its plain values only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from google.cloud.firestore_v1 import _helpers
from google.cloud.firestore_v1.document import DocumentReference

from brokerops.intent.schema import InvalidSignal, Signal, parse_signal

__all__ = [
    "VersionFormatter",
    "decode_fields",
    "parse_document",
    "parsed_snapshot",
    "plain_fields",
    "snapshot_version",
]

_library_value = _helpers.decode_value
_library_dict = _helpers.decode_dict
_from_timestamp_pb = DatetimeWithNanoseconds.from_timestamp_pb
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decode_fields(fields: Any, client: Any) -> Any:
    """The Python form of a protobuf map of ``Value`` (a document's ``fields`` or a map value's),
    as the library decodes it (see the module docstring). `client` resolves references."""
    out: dict[str, Any] = {}
    for key in fields:  # (a map container's items() is a Python-level generator: slower)
        if key.startswith("__"):
            # Maybe a vector or a BSON value: the library decides, for the whole map.
            return _library_dict(fields, client)
        value = fields[key]
        kind = value.WhichOneof("value_type")
        if kind == "string_value":
            out[key] = value.string_value
        elif kind == "integer_value":
            out[key] = value.integer_value
        elif kind == "double_value":
            out[key] = value.double_value
        elif kind == "boolean_value":
            out[key] = value.boolean_value
        elif kind == "null_value":
            out[key] = None
        elif kind == "timestamp_value":
            out[key] = _from_timestamp_pb(value.timestamp_value)
        elif kind == "map_value":
            out[key] = decode_fields(value.map_value.fields, client)
        elif kind == "array_value":
            out[key] = _decode_array(value.array_value.values, client)
        else:
            out[key] = _library_value(value, client)
    return out


def _decode_array(values: Any, client: Any) -> list[Any]:
    out: list[Any] = []
    append = out.append
    for value in values:
        kind = value.WhichOneof("value_type")
        if kind == "string_value":
            append(value.string_value)
        elif kind == "integer_value":
            append(value.integer_value)
        elif kind == "double_value":
            append(value.double_value)
        elif kind == "boolean_value":
            append(value.boolean_value)
        elif kind == "null_value":
            append(None)
        elif kind == "timestamp_value":
            append(_from_timestamp_pb(value.timestamp_value))
        elif kind == "map_value":
            append(decode_fields(value.map_value.fields, client))
        elif kind == "array_value":
            append(_decode_array(value.array_value.values, client))
        else:
            append(_library_value(value, client))
    return out


_PLAIN_SCALARS = (str, int, float, bool, type(None), datetime)
_FAST = frozenset({str, int, float, bool, type(None), DatetimeWithNanoseconds, datetime})


def plain_fields(data: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``data`` with plain values only, and a problem per value a signal cannot hold (see the
    module docstring); ``data`` itself when it is plain already (the common case)."""
    if all(type(value) in _FAST for value in data.values()):
        return data, ()
    problems: list[str] = []
    return _plain_map(data, "", problems), tuple(problems)


def _plain_map(data: dict[str, Any], prefix: str, problems: list[str]) -> dict[str, Any]:
    return {key: _plain(value, f"{prefix}{key}", problems) for key, value in data.items()}


def _plain(value: Any, path: str, problems: list[str]) -> Any:
    if isinstance(value, _PLAIN_SCALARS):
        return value
    if isinstance(value, dict):
        return _plain_map(value, f"{path}.", problems)
    if isinstance(value, list):
        return [_plain(item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    kind, shown = _unsupported(value)
    problems.append(f"field {path!r} holds a {kind}, which a signal cannot hold")
    return shown


def _unsupported(value: Any) -> tuple[str, str]:
    """What ``value`` is, and the plain text that stands for it."""
    if isinstance(value, DocumentReference):
        return "Firestore reference", f"<reference {value.path}>"
    if isinstance(value, _helpers.GeoPoint):
        return "geo point", f"<geo point {value.latitude}, {value.longitude}>"
    if isinstance(value, bytes):
        return "bytes value", f"<{len(value)} bytes>"
    name = type(value).__name__
    return f"{name} value", f"<{name}>"


class VersionFormatter:
    """Update-time protobufs to version strings; the date-and-time part is cached per second
    (the documents of one bulk read were mostly written in a few batches)."""

    __slots__ = ("_seconds",)

    def __init__(self) -> None:
        self._seconds: dict[int, str] = {}

    def __call__(self, stamp: Any) -> str:
        seconds = stamp.seconds
        prefix = self._seconds.get(seconds)
        if prefix is None:
            # What `snapshot_version` makes of the snapshot's update_time. The library computes
            # it as int(seconds * 1e6) microseconds after the epoch: exact in a float for every
            # time Firestore holds (years 1 to 9999), so equal to this.
            moment = _EPOCH + timedelta(seconds=seconds)
            prefix = self._seconds[seconds] = f"{moment:%Y-%m-%dT%H:%M:%S}"
        return f"{prefix}.{stamp.nanos:09d}Z"


def snapshot_version(snapshot: Any) -> str | None:
    """A snapshot's version: its update time, ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (UTC, nine
    digits of nanoseconds). None for a document that does not exist."""
    stamp = getattr(snapshot, "update_time", None)
    if stamp is None:
        return None
    nanos = getattr(stamp, "nanosecond", None)
    if nanos is None:
        nanos = stamp.microsecond * 1000
    utc = stamp.astimezone(UTC) if stamp.tzinfo is not None else stamp
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{nanos:09d}Z"


def parsed_snapshot(snapshot: Any) -> Signal | InvalidSignal:
    """A library snapshot (of a document that exists) parsed, with its version."""
    return parse_document(snapshot.id, snapshot.to_dict(), snapshot_version(snapshot))


def parse_document(doc_id: str, data: Any, version: str | None) -> Signal | InvalidSignal:
    """A decoded document parsed, from plain values only (`plain_fields`): a value a signal
    cannot hold makes it invalid, naming the field, and never travels on."""
    if not isinstance(data, dict):
        return parse_signal(doc_id, data, version=version)
    plain, problems = plain_fields(data)
    parsed = parse_signal(doc_id, plain, version=version)
    if not problems:
        return parsed
    reasons = parsed.reasons if isinstance(parsed, InvalidSignal) else ()
    return InvalidSignal(id=parsed.id, reasons=(*problems, *reasons), raw=plain, version=version)
