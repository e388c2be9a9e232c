"""The embedded signal store: signal documents as raw JSON rows of `LocalSignal`.

Same contract as the Firestore store (see `brokerops.intent.store`), on the Django database
(SQLite by default, PostgreSQL in production-like set-ups). A bulk read is one query on the
indexed `status` column; a transition reads its rows in one query per 500 ids, then writes up to
500 rows with one conditional ``UPDATE`` (each row only ``WHERE document_id = %s AND revision =
%s AND status = %s``) inside one transaction, so a row changed by anyone since the read is never
overwritten; the rows such a batch missed are retried one by one after a re-read. No row lock is
held between the read and the write (the same optimistic scheme as Firestore's update-time
precondition).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.db.models import Case, CharField, JSONField, Q, UUIDField, Value, When
from django.utils import timezone

from brokerops.intent.models import LocalSignal
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus, parse_signal
from brokerops.intent.store import (
    MAX_WRITE_ATTEMPTS,
    SignalRead,
    SignalStore,
    SignalStoreError,
    SignalStoreUnavailable,
    Transition,
    TransitionResult,
    applied,
    check_document_id,
    classify,
    plain_value,
    sort_read,
    transition_payload,
    validate_transitions,
)

#: Ids per `IN (...)` read and rows per INSERT batch.
CHUNK = 500


@contextlib.contextmanager
def _backend(action: str) -> Iterator[None]:
    """Translate database errors into the store's two error types."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise SignalStoreUnavailable(f"local signal store {action} failed: {exc}") from exc
    except DatabaseError as exc:
        raise SignalStoreError(f"local signal store {action} failed: {exc}") from exc


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _database_now(using: str) -> datetime:
    """The database server's clock (PostgreSQL); SQLite runs in this process, so its clock is
    this machine's."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT STATEMENT_TIMESTAMP()")
            return cursor.fetchone()[0]
    return timezone.now()


def _json_value(value: Any) -> Any:
    value = plain_value(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


class LocalSignalStore(SignalStore):
    """Signals in the Django database `using` (see `SignalStore` for the contract).

    Timestamps inside documents are ISO 8601 strings with an offset. Safe to call inside an
    outer transaction (the writes then commit with it).
    """

    def __init__(self, using: str = "default") -> None:
        self._using = using

    def __repr__(self) -> str:
        return f"LocalSignalStore(using={self._using!r})"

    def _rows(self):
        return LocalSignal.objects.using(self._using)

    # --- reads ----------------------------------------------------------------------------------

    def read(
        self, *, statuses: Collection[SignalStatus], include_unknown_status: bool = False
    ) -> SignalRead:
        wanted = sorted({SignalStatus(s).value for s in statuses})
        condition = Q(status__in=wanted)
        if include_unknown_status:
            known = [s.value for s in SignalStatus]
            condition |= Q(status__isnull=False) & ~Q(status__in=known)
        return self._read(self._rows().filter(condition))

    def read_all(self) -> SignalRead:
        return self._read(self._rows().all())

    def _read(self, queryset) -> SignalRead:
        signals: list[Signal] = []
        invalid: list[InvalidSignal] = []
        with _backend("read"):
            rows = queryset.order_by().values_list("document_id", "data")
            for doc_id, data in rows.iterator(chunk_size=2000):
                parsed = parse_signal(doc_id, data)
                (signals if isinstance(parsed, Signal) else invalid).append(parsed)
        return sort_read(signals, invalid)

    def get(self, signal_id: str) -> Signal | InvalidSignal | None:
        check_document_id(signal_id)
        with _backend("get"):
            data = self._rows().filter(document_id=signal_id).values_list("data", flat=True)
            found = list(data)
        return parse_signal(signal_id, found[0]) if found else None

    # --- transitions ----------------------------------------------------------------------------

    def transition_many(self, transitions: Sequence[Transition]) -> list[TransitionResult]:
        checked = validate_transitions(transitions)
        if not checked:
            return []
        stored: dict[str, tuple[Any, uuid.UUID]] = {}
        with _backend("read"):
            for chunk in _chunks([t.signal_id for t in checked], CHUNK):
                rows = self._rows().filter(document_id__in=chunk)
                for doc_id, data, revision in rows.values_list("document_id", "data", "revision"):
                    stored[doc_id] = (data, revision)
        results: dict[str, TransitionResult] = {}
        writes: list[tuple[Transition, Any, uuid.UUID]] = []
        for t in checked:
            data, revision = stored.get(t.signal_id, (None, None))
            skip = classify(t, data)
            if skip is None:
                writes.append((t, data, revision))
            else:
                results[t.signal_id] = skip
        if writes:
            with _backend("write"), transaction.atomic(using=self._using):
                now = _database_now(self._using)
                for batch in _chunks(writes, CHUNK):
                    results.update(self._write_batch(batch, now))
        return [results[t.signal_id] for t in checked]

    def _write_batch(
        self, batch: list[tuple[Transition, Any, uuid.UUID]], now: datetime
    ) -> dict[str, TransitionResult]:
        """One conditional UPDATE for the batch; rows it missed (changed since the read) go
        through :meth:`_write_one`. A row was written iff it carries the new revision we set."""
        new_revision = {t.signal_id: uuid.uuid4() for t, _, _ in batch}
        condition = Q()
        data_cases, status_cases, revision_cases = [], [], []
        for t, data, revision in batch:
            condition |= Q(document_id=t.signal_id, revision=revision, status=t.expected_status)
            new_data = {**data, **transition_payload(t, now.isoformat())}
            data_cases.append(
                When(document_id=t.signal_id, then=Value(new_data, output_field=JSONField()))
            )
            status_cases.append(When(document_id=t.signal_id, then=Value(t.new_status.value)))
            revision_cases.append(
                When(document_id=t.signal_id, then=Value(new_revision[t.signal_id]))
            )
        written = (
            self._rows()
            .filter(condition)
            .update(
                data=Case(*data_cases, output_field=JSONField()),
                status=Case(*status_cases, output_field=CharField()),
                revision=Case(*revision_cases, output_field=UUIDField()),
                updated_at=now,
            )
        )
        if written == len(batch):
            return {t.signal_id: applied(t) for t, _, _ in batch}
        done = set(
            self._rows()
            .filter(revision__in=list(new_revision.values()))
            .values_list("document_id", flat=True)
        )
        return {
            t.signal_id: applied(t)
            if t.signal_id in done
            else self._write_one(t, data, revision, now)
            for t, data, revision in batch
        }

    def _write_one(
        self, t: Transition, data: Any, revision: uuid.UUID, now: datetime
    ) -> TransitionResult:
        """Conditional write of one row, re-reading it after each conflict."""
        for _attempt in range(MAX_WRITE_ATTEMPTS):
            new_data = {**data, **transition_payload(t, now.isoformat())}
            written = (
                self._rows()
                .filter(
                    document_id=t.signal_id,
                    revision=revision,
                    status=t.expected_status.value,  # holds even for a writer that skips revision
                )
                .update(
                    data=new_data,
                    status=t.new_status.value,
                    revision=uuid.uuid4(),
                    updated_at=now,
                )
            )
            if written:
                return applied(t)
            row = self._rows().filter(document_id=t.signal_id).values_list("data", "revision")
            data, revision = row.first() or (None, None)
            skip = classify(t, data)
            if skip is not None:
                return skip
        raise SignalStoreUnavailable(
            f"signal {t.signal_id!r} kept changing during {MAX_WRITE_ATTEMPTS} write attempts"
        )

    # --- raw documents --------------------------------------------------------------------------

    def put_documents(self, docs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        count = 0
        seen: set[str] = set()
        with _backend("write"), transaction.atomic(using=self._using):
            now = _database_now(self._using)
            for chunk in _chunks(docs, CHUNK):
                objs = []
                for doc_id, data in chunk:
                    check_document_id(doc_id)
                    if doc_id in seen:
                        raise ValueError(f"document {doc_id!r} given twice")
                    seen.add(doc_id)
                    if not isinstance(data, Mapping):
                        raise TypeError(f"document {doc_id!r} must be a mapping")
                    document = _json_value(dict(data))
                    try:
                        json.dumps(document)
                    except (TypeError, ValueError) as exc:
                        raise TypeError(f"document {doc_id!r} is not JSON-like: {exc}") from exc
                    objs.append(
                        LocalSignal(
                            document_id=doc_id,
                            data=document,
                            status=LocalSignal.status_column(document),
                            revision=uuid.uuid4(),
                            updated_at=now,
                        )
                    )
                self._rows().bulk_create(
                    objs,
                    update_conflicts=True,
                    unique_fields=["document_id"],
                    update_fields=["data", "status", "revision", "updated_at"],
                )
                count += len(objs)
        return count

    def delete_all(self) -> int:
        with _backend("delete"):
            deleted, _by_model = self._rows().all().delete()
        return deleted
