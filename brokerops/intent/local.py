"""The embedded signal store: signal documents as raw JSON rows of `LocalSignal`.

Same contract as the Firestore store (see `brokerops.intent.store`), on the Django database
(SQLite by default, PostgreSQL in production-like set-ups). A bulk read is one query on the
indexed `status` column; a transition reads its rows in one query per 500 ids, then writes up to
500 rows with one conditional ``UPDATE`` (each row only ``WHERE document_id = %s AND revision =
%s AND status = %s``) inside one transaction, so a row changed by anyone since the read is never
overwritten; the rows such a batch missed are retried one by one after a re-read. No row lock is
held between the read and the write (the same optimistic scheme as Firestore's update-time
precondition). A document's version is its row's `revision` (a UUID, as a string).

Ids are Firestore's (see `check_document_id`): up to 1,500 bytes of UTF-8, in a column of 1,500
characters with a unique index. PostgreSQL text cannot hold NUL, which Firestore ids may contain,
so the column stores NUL as "/": a character no id contains, so the mapping is one-to-one and
leaves every other id as it is (`stored_document_id` / `document_id_from_column`).
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from brokerops.intent.models import LocalSignal, document_id_from_column, stored_document_id
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus, parse_signal
from brokerops.intent.store import (
    AccountScope,
    PlannedWrite,
    SignalRead,
    SignalStore,
    SignalStoreError,
    SignalStoreUnavailable,
    Transition,
    TransitionResult,
    applied,
    check_document_id,
    checked_documents,
    chunks,
    classify,
    plain_value,
    sort_read,
    validate_transitions,
    write_with_retries,
)

#: Ids per `IN (...)` read and rows per INSERT batch.
CHUNK = 500
#: Rows fetched at a time by a bulk read.
READ_CHUNK = 2000


@contextlib.contextmanager
def _backend(action: str) -> Iterator[None]:
    """Translate database errors into the store's two error types."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise SignalStoreUnavailable(f"local signal store {action} failed: {exc}") from exc
    except DatabaseError as exc:
        raise SignalStoreError(f"local signal store {action} failed: {exc}") from exc


def _database_now(using: str) -> datetime:
    """The database server's clock (PostgreSQL); SQLite runs in this process, so its clock is
    this machine's."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT STATEMENT_TIMESTAMP()")
            return cursor.fetchone()[0]
    return timezone.now()


def _version(revision: uuid.UUID | None) -> str | None:
    return None if revision is None else str(revision)


_HEX_UUID = re.compile("[0-9a-f]{32}").fullmatch


def _revision_version(value: Any) -> str | None:
    """`_version` of a `revision` column value as the cursor gives it: a UUID (PostgreSQL), or
    the 32 hex digits a UUID is stored as where the database has no UUID type (SQLite)."""
    if value is None:
        return None
    if type(value) is str:
        if _HEX_UUID(value):  # what str(uuid.UUID(value)) gives, without building the UUID
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
        return str(uuid.UUID(value))
    return str(value)


def _json_documents(values: list[Any]) -> list[Any]:
    """`_json_document` of each value, decoded in one call as the elements of one JSON array when
    they are all text (the column holds JSON only: SQLite checks it, PostgreSQL stores jsonb).
    Anything else, or an array that does not come out one element per value, is decoded one
    value at a time."""
    if all(type(value) is str for value in values):
        try:
            documents = json.loads("[" + ",".join(values) + "]")
        except (ValueError, RecursionError):
            documents = None
        if type(documents) is list and len(documents) == len(values):
            return documents
    return [_json_document(value) for value in values]


def _json_document(value: Any) -> Any:
    """A `data` column value as the cursor gives it (JSON text), decoded as
    `JSONField.from_db_value` decodes it: text that is not JSON is returned as it is."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _json_value(value: Any) -> Any:
    value = plain_value(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return value


def _batch_update(
    batch: list[tuple[PlannedWrite, Any, uuid.UUID]],
    new_revision: Mapping[str, uuid.UUID],
    now: datetime,
    connection: Any,
) -> tuple[str, list[Any]]:
    """The batch's conditional UPDATE and its parameters: each row gets its new data, status
    and revision only while it is as it was read (same revision, or still none, and the
    expected status).

    The statement is the one the ORM builds from ``filter(Q(...) | ...).update(field=Case(
    When(...), ...))``, written out here: building 1,500 ``When`` expressions through the ORM
    costs more than the write itself."""
    quote = connection.ops.quote_name
    field = LocalSignal._meta.get_field
    data_field, revision_field = field("data"), field("revision")
    table = quote(LocalSignal._meta.db_table)
    id_column, data_column, status_column, revision_column, updated_column = (
        quote(field(name).column)
        for name in ("document_id", "data", "status", "revision", "updated_at")
    )
    data_params: list[Any] = []
    status_params: list[Any] = []
    revision_params: list[Any] = []
    conditions: list[str] = []
    condition_params: list[Any] = []
    for plan, data, revision in batch:
        t = plan.transition
        row_id = stored_document_id(t.signal_id)
        new_data = {**data, **plan.payload(now.isoformat())}
        data_params += [row_id, data_field.get_db_prep_save(new_data, connection)]
        status_params += [row_id, t.new_status.value]
        revision_params += [
            row_id,
            revision_field.get_db_prep_save(new_revision[t.signal_id], connection),
        ]
        if revision is None:
            revision_test = f"{revision_column} IS NULL"
            condition_params += [row_id, t.expected_status.value]
        else:
            revision_test = f"{revision_column} = %s"
            read_revision = revision_field.get_db_prep_value(revision, connection)
            condition_params += [row_id, read_revision, t.expected_status.value]
        conditions.append(f"({id_column} = %s AND {revision_test} AND {status_column} = %s)")
    cases = " ".join([f"WHEN {id_column} = %s THEN %s"] * len(batch))
    ids = [stored_document_id(plan.transition.signal_id) for plan, _, _ in batch]
    # The batch's ids first: a hashed look-up per row. Without it a planner whose statistics
    # are stale (a table just filled) reads every row of a status and tests each against all
    # the batch's conditions: 1 s per 500 rows among 100,000 (docs/benchmarks.md).
    sql = (
        f"UPDATE {table} SET {data_column} = CASE {cases} ELSE NULL END, "  # noqa: S608
        f"{status_column} = CASE {cases} ELSE NULL END, "
        f"{revision_column} = CASE {cases} ELSE NULL END, {updated_column} = %s "
        f"WHERE {id_column} IN ({', '.join(['%s'] * len(ids))}) AND ({' OR '.join(conditions)})"
    )
    updated_at = field("updated_at").get_db_prep_save(now, connection)
    params = [
        *data_params,
        *status_params,
        *revision_params,
        updated_at,
        *ids,
        *condition_params,
    ]
    return sql, params


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
        return self._read(self._rows().filter(_status_rows(statuses, include_unknown_status)))

    def read_for(
        self,
        scope: AccountScope,
        *,
        statuses: Collection[SignalStatus],
        include_unknown_status: bool = False,
    ) -> SignalRead:
        """`read` of one account's rows by the indexed `account` column, then kept exactly as
        :meth:`AccountScope.select` keeps them (a column cut to 100 characters decides
        nothing)."""
        condition = _status_rows(statuses, include_unknown_status) & _account_rows(scope)
        return scope.select(self._read(self._rows().filter(condition)))

    def read_all(self) -> SignalRead:
        return self._read(self._rows().all())

    def _read(self, queryset) -> SignalRead:
        """The rows of ``queryset``, parsed. The query is the ORM's, but its rows are read from
        the cursor as they come and converted here (the JSON text decoded as `JSONField` does,
        the revision formatted as ``str(UUID)``) rather than through the ORM's per-row converters,
        which cost as much as parsing the documents."""
        signals: list[Signal] = []
        invalid: list[InvalidSignal] = []
        rows = queryset.order_by().values_list("document_id", "data", "revision")
        connection = connections[self._using]
        with _backend("read"):
            sql, params = rows.query.get_compiler(using=self._using).as_sql()
            with connection.chunked_cursor() as cursor:
                cursor.execute(sql, params)
                while chunk := cursor.fetchmany(READ_CHUNK):
                    documents = _json_documents([data for _, data, _ in chunk])
                    for (stored_id, _, revision), document in zip(chunk, documents, strict=True):
                        parsed = parse_signal(
                            document_id_from_column(stored_id),
                            document,
                            version=_revision_version(revision),
                        )
                        (signals if isinstance(parsed, Signal) else invalid).append(parsed)
        return sort_read(signals, invalid)

    def get(self, signal_id: str) -> Signal | InvalidSignal | None:
        check_document_id(signal_id)
        with _backend("get"):
            rows = self._rows().filter(document_id=stored_document_id(signal_id))
            found = list(rows.values_list("data", "revision"))
        if not found:
            return None
        data, revision = found[0]
        return parse_signal(signal_id, data, version=_version(revision))

    def get_many(self, signal_ids: Sequence[str]) -> dict[str, Signal | InvalidSignal | None]:
        """One query per `CHUNK` ids."""
        found: dict[str, Signal | InvalidSignal | None] = dict.fromkeys(signal_ids)
        stored_ids = [stored_document_id(check_document_id(i)) for i in dict.fromkeys(signal_ids)]
        with _backend("get"):
            for chunk in chunks(stored_ids, CHUNK):
                rows = self._rows().filter(document_id__in=chunk)
                for stored_id, data, revision in rows.values_list(
                    "document_id", "data", "revision"
                ):
                    signal_id = document_id_from_column(stored_id)
                    found[signal_id] = parse_signal(signal_id, data, version=_version(revision))
        return found

    # --- transitions ----------------------------------------------------------------------------

    def transition_many(self, transitions: Sequence[Transition]) -> list[TransitionResult]:
        checked = validate_transitions(transitions)
        if not checked:
            return []
        stored: dict[str, tuple[Any, uuid.UUID]] = {}
        with _backend("read"):
            for chunk in chunks([stored_document_id(t.signal_id) for t in checked], CHUNK):
                rows = self._rows().filter(document_id__in=chunk)
                for stored_id, data, revision in rows.values_list(
                    "document_id", "data", "revision"
                ):
                    stored[document_id_from_column(stored_id)] = (data, revision)
        results: dict[str, TransitionResult] = {}
        writes: list[tuple[PlannedWrite, Any, uuid.UUID]] = []
        for t in checked:
            data, revision = stored.get(t.signal_id, (None, None))
            plan = classify(t, data, _version(revision))
            if isinstance(plan, PlannedWrite):
                writes.append((plan, data, revision))
            else:
                results[t.signal_id] = plan
        if writes:
            with _backend("write"), transaction.atomic(using=self._using):
                now = _database_now(self._using)
                for batch in chunks(writes, CHUNK):
                    results.update(self._write_batch(batch, now))
        return [results[t.signal_id] for t in checked]

    def _write_batch(
        self, batch: list[tuple[PlannedWrite, Any, uuid.UUID]], now: datetime
    ) -> dict[str, TransitionResult]:
        """One conditional UPDATE for the batch (`_batch_update`); rows it missed (changed
        since the read) go through :meth:`_write_one`. A row was written iff it carries the new
        revision we set."""
        new_revision = {plan.transition.signal_id: uuid.uuid4() for plan, _, _ in batch}
        connection = connections[self._using]
        sql, params = _batch_update(batch, new_revision, now, connection)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written = cursor.rowcount
        if written == len(batch):
            return {plan.transition.signal_id: applied(plan.transition) for plan, _, _ in batch}
        done = {
            document_id_from_column(stored_id)
            for stored_id in self._rows()
            .filter(revision__in=list(new_revision.values()))
            .values_list("document_id", flat=True)
        }
        return {
            plan.transition.signal_id: applied(plan.transition)
            if plan.transition.signal_id in done
            else self._write_one(plan, data, revision, now)
            for plan, data, revision in batch
        }

    def _write_one(
        self, plan: PlannedWrite, data: Any, revision: uuid.UUID, now: datetime
    ) -> TransitionResult:
        """Conditional write of one row, re-reading (and re-classifying) it after each conflict:
        with an `expected_version` the re-read comes back `CHANGED`."""
        t = plan.transition
        rows = self._rows().filter(document_id=stored_document_id(t.signal_id))
        last = [data, revision]  # the row as last read

        def write(step: PlannedWrite) -> bool:
            return bool(
                rows.filter(
                    revision=last[1],
                    status=t.expected_status.value,  # holds even for a writer that skips revision
                ).update(
                    data={**last[0], **step.payload(now.isoformat())},
                    status=t.new_status.value,
                    revision=uuid.uuid4(),
                    updated_at=now,
                )
            )

        def reread(transition: Transition) -> TransitionResult | PlannedWrite:
            last[:] = rows.values_list("data", "revision").first() or (None, None)
            return classify(transition, last[0], _version(last[1]))

        return write_with_retries(plan, write, reread)

    # --- raw documents --------------------------------------------------------------------------

    def put_documents(self, docs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        count = 0
        with _backend("write"), transaction.atomic(using=self._using):
            now = _database_now(self._using)
            for chunk in chunks(checked_documents(docs), CHUNK):
                objs = []
                for doc_id, data in chunk:
                    document = _json_value(dict(data))
                    try:
                        json.dumps(document)
                    except (TypeError, ValueError) as exc:
                        raise TypeError(f"document {doc_id!r} is not JSON-like: {exc}") from exc
                    objs.append(
                        LocalSignal(
                            document_id=stored_document_id(doc_id),
                            data=document,
                            status=LocalSignal.status_column(document),
                            account=LocalSignal.account_column(document),
                            revision=uuid.uuid4(),
                            updated_at=now,
                        )
                    )
                self._rows().bulk_create(
                    objs,
                    update_conflicts=True,
                    unique_fields=["document_id"],
                    update_fields=["data", "status", "account", "revision", "updated_at"],
                )
                count += len(objs)
        return count

    def delete_all(self) -> int:
        with _backend("delete"):
            deleted, _by_model = self._rows().all().delete()
        return deleted


def _status_rows(statuses: Collection[SignalStatus], include_unknown_status: bool) -> Q:
    """The rows `read` takes: a wanted status, or (asked for) a status no `SignalStatus` is."""
    condition = Q(status__in=sorted({SignalStatus(s).value for s in statuses}))
    if include_unknown_status:
        known = [s.value for s in SignalStatus]
        condition |= Q(status__isnull=False) & ~Q(status__in=known)
    return condition


def _account_rows(scope: AccountScope) -> Q:
    """The rows that may be ``scope``'s: naming it, naming none when it is the default, and,
    for the account that reports unowned signals, naming none or an unknown account."""
    rows = Q(account=scope.name)
    default = scope.accounts.default
    if scope.name == scope.accounts.rows_owner:
        return rows | Q(account__isnull=True) | ~Q(account__in=scope.accounts.names)
    if default is not None and default.name == scope.name:
        rows |= Q(account__isnull=True)
    return rows
