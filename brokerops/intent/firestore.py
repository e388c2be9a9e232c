"""The Firestore signal store: the only code in brokerops that talks to Firestore.

Reads are streamed queries: ``status in [...]`` (at most 30 values per query, Firestore's limit),
or, when unknown statuses are wanted too, one ``status not-in [the known statuses not wanted]``.
Bulk reads decode the raw protobufs of the stream (`brokerops.intent.firestore_decode`: the same
values as the library's snapshots, at a fraction of the cost), and the client built by
`firestore_client()` reads server streams on the calling thread (see `firestore_client`).
Transitions read their documents with one `get_all` per 1,000 ids and write them in atomic batches
of at most 500 writes (production Firestore's limit; the emulator accepts more), each write with
an update-time precondition. A batch that fails a precondition is retried document by document
so that one signal changed by someone else does not hold back the rest.

A document's version is its update time as Firestore reports it, in ISO 8601 form with all nine
digits of nanoseconds (``2025-01-02T03:04:05.123456789Z``); a transition's `expected_version`
is compared with the version of the snapshot the store just read, and the write then carries
that snapshot's update time as its precondition.

`FirestoreSignalStore` needs only a client and a collection name, not Django settings;
`brokerops.intent.firestore_client.firestore_client()` builds (and caches) the client the way the
settings ask. The real-time listener of `watch_pending` is `brokerops.intent.firestore_watch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter

from brokerops.intent.firestore_client import CONFLICT, RETRYABLE, firestore_errors
from brokerops.intent.firestore_decode import (
    VersionFormatter,
    decode_fields,
    parse_document,
    parsed_snapshot,
    snapshot_version,
)
from brokerops.intent.firestore_watch import PendingWatch
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import (
    PlannedWrite,
    SignalRead,
    SignalStore,
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
from brokerops.intent.watch import ListenerSpec, SnapshotHook

logger = logging.getLogger(__name__)

#: Values allowed in one ``in`` filter.
IN_QUERY_LIMIT = 30
#: Writes allowed in one commit by production Firestore.
BATCH_WRITE_LIMIT = 500
#: Documents fetched per BatchGetDocuments call.
GET_ALL_CHUNK = 1000


class FirestoreSignalStore(SignalStore):
    """Signals as documents of one Firestore collection (see `SignalStore` for the contract).

    `timeout` (seconds) is the deadline of every call to Firestore, retries included (the
    client's own default policy retries for up to 300 s, which would stall a run on an outage);
    a streamed read must finish within it. Past it, the call raises `SignalStoreUnavailable`.
    """

    def __init__(
        self, client: firestore.Client, collection: str = "signals", *, timeout: float = 30.0
    ) -> None:
        self._client = client
        self._collection = client.collection(collection)
        retry = retries.Retry(
            predicate=RETRYABLE, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout
        )
        self._call: dict[str, Any] = {"retry": retry, "timeout": timeout}

    def __repr__(self) -> str:
        project, collection = self._client.project, self._collection.id
        return f"FirestoreSignalStore(project={project!r}, collection={collection!r})"

    # --- reads ----------------------------------------------------------------------------------

    def read(
        self, *, statuses: Collection[SignalStatus], include_unknown_status: bool = False
    ) -> SignalRead:
        wanted = sorted({SignalStatus(s).value for s in statuses})
        known = [s.value for s in SignalStatus]
        others = [s for s in known if s not in wanted]
        if include_unknown_status and others and wanted:
            # One query instead of ``in wanted`` plus ``not-in known``: ``not-in`` matches
            # documents whose status exists, is not null and is none of the values (a string
            # or any other type), so excluding the known statuses not wanted leaves exactly
            # the wanted ones and the unknown ones. At most 6 values (`not-in` takes 10).
            queries = [self._collection.where(filter=FieldFilter("status", "not-in", others))]
        else:
            queries = [
                self._collection.where(filter=FieldFilter("status", "in", chunk))
                for chunk in chunks(wanted, IN_QUERY_LIMIT)
            ]
            if include_unknown_status:
                # `not-in` takes at most 10 values; there are 7 statuses.
                queries.append(
                    self._collection.where(filter=FieldFilter("status", "not-in", known))
                )
        signals: list[Signal] = []
        invalid: list[InvalidSignal] = []
        with firestore_errors("read"):
            for query in queries:
                self._read_into(query, signals, invalid)
        return sort_read(signals, invalid)

    def read_all(self) -> SignalRead:
        signals: list[Signal] = []
        invalid: list[InvalidSignal] = []
        with firestore_errors("read"):
            self._read_into(self._collection._query(), signals, invalid)
        return sort_read(signals, invalid)

    def _read_into(self, query: Any, signals: list[Signal], invalid: list[InvalidSignal]) -> None:
        for doc_id, data, version in self._stream_documents(query):
            parsed = parse_document(doc_id, data, version)
            (signals if isinstance(parsed, Signal) else invalid).append(parsed)

    def _stream_documents(self, query: Any) -> Iterator[tuple[str, dict[str, Any], str]]:
        """``(id, data, version)`` of every document `query` matches, as ``query.stream()``
        would give them (``snapshot.id``, ``snapshot.to_dict()``, `snapshot_version`) but
        decoded from the raw protobufs (`brokerops.intent.firestore_decode`) without building
        snapshots.

        The call is the library's: the same RunQuery request through the client's generated
        API, with this store's retry and timeout; and as ``Query.stream`` does, a retryable
        error in the middle of the stream restarts the query after the last document received.
        """
        client = self._client
        api = client._firestore_api
        retry, timeout = self._call["retry"], self._call["timeout"]
        request, expected_prefix, kwargs = query._prep_stream(None, retry, timeout)
        responses = api.run_query(request=request, metadata=client._rpc_metadata, **kwargs)
        version = VersionFormatter()
        last: tuple[str, Any] | None = None
        while True:
            try:
                response = next(responses, None)
            except gexc.GoogleAPICallError as exc:
                if not retry._predicate(exc):
                    raise
                after = "the start" if last is None else repr(last[0][:40])
                logger.info("Firestore read interrupted (%s): resuming after %s", exc, after)
                resume = query if last is None else query.start_after(self._snapshot(*last))
                request, _, kwargs = resume._prep_stream(None, retry, timeout)
                responses = api.run_query(request=request, metadata=client._rpc_metadata, **kwargs)
                continue
            if response is None:
                return
            pb = response._pb
            if not pb.HasField("document"):
                continue  # progress-only message (read time, skipped results)
            document = pb.document
            prefix, _, doc_id = document.name.rpartition("/")
            if prefix != expected_prefix:  # as the library's `get_doc_id` checks
                raise ValueError(
                    "Unexpected document name",
                    document.name,
                    "Expected to begin with",
                    expected_prefix,
                )
            last = (doc_id, document)
            yield doc_id, decode_fields(document.fields, client), version(document.update_time)

    def _snapshot(self, doc_id: str, document: Any) -> firestore.DocumentSnapshot:
        """A snapshot of a raw document, as a query cursor (to resume a stream after it)."""
        data = decode_fields(document.fields, self._client)
        reference = self._collection.document(doc_id)
        return firestore.DocumentSnapshot(reference, data, True, None, None, None)

    def get(self, signal_id: str) -> Signal | InvalidSignal | None:
        check_document_id(signal_id)
        with firestore_errors("get"):
            snapshot = self._collection.document(signal_id).get(**self._call)
        if not snapshot.exists:
            return None
        return parsed_snapshot(snapshot)

    def get_many(self, signal_ids: Sequence[str]) -> dict[str, Signal | InvalidSignal | None]:
        """One BatchGetDocuments call per 1,000 ids."""
        for signal_id in signal_ids:
            check_document_id(signal_id)
        snapshots = self._get_many(list(dict.fromkeys(signal_ids)))
        return {
            i: parsed_snapshot(snapshots[i]) if snapshots[i].exists else None for i in signal_ids
        }

    def _get_many(self, ids: Sequence[str]) -> dict[str, Any]:
        """Snapshots by id (missing documents included, with ``exists`` False)."""
        snapshots: dict[str, Any] = {}
        with firestore_errors("read"):
            for chunk in chunks(ids, GET_ALL_CHUNK):
                refs = [self._collection.document(i) for i in chunk]
                for snapshot in self._client.get_all(refs, **self._call):
                    snapshots[snapshot.id] = snapshot
        return snapshots

    # --- transitions ----------------------------------------------------------------------------

    def transition_many(self, transitions: Sequence[Transition]) -> list[TransitionResult]:
        checked = validate_transitions(transitions)
        if not checked:
            return []
        snapshots = self._get_many([t.signal_id for t in checked])
        results: dict[str, TransitionResult] = {}
        writes: list[tuple[PlannedWrite, Any]] = []
        for t in checked:
            snapshot = snapshots[t.signal_id]
            plan = _classify(t, snapshot)
            if isinstance(plan, PlannedWrite):
                writes.append((plan, snapshot))
            else:
                results[t.signal_id] = plan

        for chunk in chunks(writes, BATCH_WRITE_LIMIT):
            batch = self._client.batch()
            for plan, snapshot in chunk:
                batch.update(
                    snapshot.reference,
                    plan.payload(firestore.SERVER_TIMESTAMP),
                    option=self._client.write_option(last_update_time=snapshot.update_time),
                )
            with firestore_errors("commit"):
                try:
                    batch.commit(**self._call)
                    committed = True
                except CONFLICT as exc:
                    # The batch is atomic: nothing in it was written. Redo it one by one.
                    logger.info("signal batch of %d hit a changed document (%s)", len(chunk), exc)
                    committed = False
            for plan, snapshot in chunk:
                t = plan.transition
                results[t.signal_id] = applied(t) if committed else self._write_one(plan, snapshot)
        return [results[t.signal_id] for t in checked]

    def _write_one(self, plan: PlannedWrite, snapshot: Any) -> TransitionResult:
        """Conditional write of one document, re-reading (and re-classifying) it after each
        conflict: with an `expected_version` the re-read comes back `CHANGED`."""
        ref = snapshot.reference

        def write(plan: PlannedWrite) -> bool:
            with firestore_errors("commit"):
                try:
                    ref.update(
                        plan.payload(firestore.SERVER_TIMESTAMP),
                        option=self._client.write_option(last_update_time=snapshot.update_time),
                        **self._call,
                    )
                except CONFLICT:
                    return False
            return True

        def reread(t: Transition) -> TransitionResult | PlannedWrite:
            nonlocal snapshot
            with firestore_errors("commit"):
                snapshot = ref.get(**self._call)
            return _classify(t, snapshot)

        return write_with_retries(plan, write, reread)

    # --- raw documents --------------------------------------------------------------------------

    def put_documents(self, docs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        count = 0
        for chunk in chunks(checked_documents(docs), BATCH_WRITE_LIMIT):
            batch = self._client.batch()
            for doc_id, data in chunk:
                batch.set(self._collection.document(doc_id), plain_value(data))
            with firestore_errors("write"):
                batch.commit(**self._call)
            count += len(chunk)
        return count

    def delete_all(self) -> int:
        count = 0
        with firestore_errors("delete"):
            refs = (s.reference for s in self._collection.select([]).stream(**self._call))
            for chunk in chunks(refs, BATCH_WRITE_LIMIT):
                batch = self._client.batch()
                for ref in chunk:
                    batch.delete(ref)
                batch.commit(**self._call)
                count += len(chunk)
        return count

    # --- real-time listener ---------------------------------------------------------------------

    def watch_pending(
        self,
        on_documents: Callable[[list[Signal | InvalidSignal]], None],
        *,
        on_snapshot: SnapshotHook | None = None,
    ) -> PendingWatch:
        """Listen to the PENDING documents: Firestore's real-time listener (``on_snapshot``) on
        the query ``status == "PENDING"``.

        `on_documents` runs on the listener's own thread (keep it short: hand the documents
        over): first with every PENDING document (the listener's initial snapshot, the
        catch-up), then with each document that enters the query or changes within it, parsed
        with its version. Documents leaving the query (moved out of PENDING, deleted) are not
        reported. The listener resumes by itself after a transient error; when it gives up,
        `PendingWatch.failure` says so and the caller opens a new one. `on_snapshot` (same
        thread) sees each snapshot whole: the documents, the ids that left the query, and its
        read time (epoch seconds).
        """
        query = self._collection.where(
            filter=FieldFilter("status", "==", SignalStatus.PENDING.value)
        )
        return PendingWatch(query, on_documents, on_snapshot=on_snapshot)

    def listener_spec(self) -> ListenerSpec:
        """What another process needs to listen to this store (`firestore_listener`)."""
        return ListenerSpec(
            project=self._client.project,
            emulator_host=getattr(self._client, "_emulator_host", None),
            collection=self._collection.id,
        )


def _classify(t: Transition, snapshot: Any) -> TransitionResult | PlannedWrite:
    if not snapshot.exists:
        return classify(t, None, None)
    return classify(t, snapshot.to_dict(), snapshot_version(snapshot))
