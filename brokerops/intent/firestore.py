"""The Firestore signal store: the only code in brokerops that talks to Firestore.

Reads are streamed queries: ``status in [...]`` (at most 30 values per query, Firestore's limit),
or, when unknown statuses are wanted too, one ``status not-in [the known statuses not wanted]``.
Bulk reads decode the raw protobufs of the stream (`brokerops.intent.firestore_decode`: the same
values as the library's snapshots, at a fraction of the cost), and the client built by
`firestore_client()` reads server streams on the calling thread (`_CallingThreadStreamsTransport`).
Transitions read their documents with one `get_all` per 1,000 ids and write them in atomic batches
of at most 500 writes (production Firestore's limit; the emulator accepts more), each write with
an update-time precondition. A batch that fails a precondition is retried document by document
so that one signal changed by someone else does not hold back the rest.

A document's version is its update time as Firestore reports it, in ISO 8601 form with all nine
digits of nanoseconds (``2025-01-02T03:04:05.123456789Z``); a transition's `expected_version`
is compared with the version of the snapshot the store just read, and the write then carries
that snapshot's update time as its precondition.

`FirestoreSignalStore` needs only a client and a collection name, not Django settings;
`firestore_client()` builds (and caches) the client the way the settings ask.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, timedelta
from typing import Any

from google.api_core import bidi
from google.api_core import exceptions as gexc
from google.api_core import retry as retries
from google.auth import exceptions as auth_exceptions
from google.cloud import firestore
from google.cloud.firestore_v1.base_query import FieldFilter
from google.cloud.firestore_v1.services.firestore import client as gapic_client
from google.cloud.firestore_v1.services.firestore.transports.grpc import FirestoreGrpcTransport

from brokerops.intent.firestore_decode import VersionFormatter, decode_fields, plain_fields
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus, parse_signal
from brokerops.intent.store import (
    MAX_WRITE_ATTEMPTS,
    PlannedWrite,
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
    validate_transitions,
)
from brokerops.intent.watch import ListenerSpec, SnapshotHook, SnapshotView

logger = logging.getLogger(__name__)

#: Values allowed in one ``in`` filter.
IN_QUERY_LIMIT = 30
#: Writes allowed in one commit by production Firestore.
BATCH_WRITE_LIMIT = 500
#: Documents fetched per BatchGetDocuments call.
GET_ALL_CHUNK = 1000
#: Project used with the emulator when none is configured.
DEFAULT_EMULATOR_PROJECT = "brokerops-local"

_EMULATOR_ENV = "FIRESTORE_EMULATOR_HOST"
_TRANSIENT = (
    gexc.ServiceUnavailable,
    gexc.DeadlineExceeded,
    gexc.InternalServerError,
    gexc.ResourceExhausted,
    gexc.TooManyRequests,
    gexc.Aborted,
    gexc.RetryError,
    auth_exceptions.TransportError,
)
# A write's precondition failed: the document changed (or vanished) since it was read. The
# emulator reports a vanished document as FAILED_PRECONDITION too.
_CONFLICT = (gexc.FailedPrecondition, gexc.NotFound)
# Errors worth another attempt within one call's deadline. A commit is safe to retry: its writes
# carry update-time preconditions (or are whole-document sets).
_RETRYABLE = retries.if_exception_type(
    gexc.ServiceUnavailable, gexc.InternalServerError, gexc.ResourceExhausted
)


@contextlib.contextmanager
def _backend(action: str) -> Iterator[None]:
    """Translate Google client errors into the store's two error types."""
    try:
        yield
    except _TRANSIENT as exc:
        raise SignalStoreUnavailable(f"Firestore {action} failed: {exc}") from exc
    except (gexc.GoogleAPIError, auth_exceptions.GoogleAuthError) as exc:
        raise SignalStoreError(f"Firestore {action} failed: {exc}") from exc


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


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
            predicate=_RETRYABLE, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout
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
                for chunk in _chunks(wanted, IN_QUERY_LIMIT)
            ]
            if include_unknown_status:
                # `not-in` takes at most 10 values; there are 7 statuses.
                queries.append(
                    self._collection.where(filter=FieldFilter("status", "not-in", known))
                )
        signals: list[Signal] = []
        invalid: list[InvalidSignal] = []
        with _backend("read"):
            for query in queries:
                self._read_into(query, signals, invalid)
        return sort_read(signals, invalid)

    def read_all(self) -> SignalRead:
        signals: list[Signal] = []
        invalid: list[InvalidSignal] = []
        with _backend("read"):
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
        with _backend("get"):
            snapshot = self._collection.document(signal_id).get(**self._call)
        if not snapshot.exists:
            return None
        return _parsed(snapshot)

    def get_many(self, signal_ids: Sequence[str]) -> dict[str, Signal | InvalidSignal | None]:
        """One BatchGetDocuments call per 1,000 ids."""
        for signal_id in signal_ids:
            check_document_id(signal_id)
        snapshots = self._get_many(list(dict.fromkeys(signal_ids)))
        return {i: _parsed(snapshots[i]) if snapshots[i].exists else None for i in signal_ids}

    def _get_many(self, ids: Sequence[str]) -> dict[str, Any]:
        """Snapshots by id (missing documents included, with ``exists`` False)."""
        snapshots: dict[str, Any] = {}
        with _backend("read"):
            for chunk in _chunks(ids, GET_ALL_CHUNK):
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

        for chunk in _chunks(writes, BATCH_WRITE_LIMIT):
            batch = self._client.batch()
            for plan, snapshot in chunk:
                batch.update(
                    snapshot.reference,
                    plan.payload(firestore.SERVER_TIMESTAMP),
                    option=self._client.write_option(last_update_time=snapshot.update_time),
                )
            with _backend("commit"):
                try:
                    batch.commit(**self._call)
                    committed = True
                except _CONFLICT as exc:
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
        t = plan.transition
        ref = snapshot.reference
        for _attempt in range(MAX_WRITE_ATTEMPTS):
            with _backend("commit"):
                try:
                    ref.update(
                        plan.payload(firestore.SERVER_TIMESTAMP),
                        option=self._client.write_option(last_update_time=snapshot.update_time),
                        **self._call,
                    )
                    return applied(t)
                except _CONFLICT:
                    pass
                snapshot = ref.get(**self._call)
            next_step = _classify(t, snapshot)
            if not isinstance(next_step, PlannedWrite):
                return next_step
            plan = next_step
        raise SignalStoreUnavailable(
            f"signal {t.signal_id!r} kept changing during {MAX_WRITE_ATTEMPTS} write attempts"
        )

    # --- raw documents --------------------------------------------------------------------------

    def put_documents(self, docs: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        count = 0
        seen: set[str] = set()
        for chunk in _chunks(docs, BATCH_WRITE_LIMIT):
            batch = self._client.batch()
            for doc_id, data in chunk:
                check_document_id(doc_id)
                if doc_id in seen:
                    raise ValueError(f"document {doc_id!r} given twice")
                seen.add(doc_id)
                if not isinstance(data, Mapping):
                    raise TypeError(f"document {doc_id!r} must be a mapping")
                batch.set(self._collection.document(doc_id), plain_value(data))
            with _backend("write"):
                batch.commit(**self._call)
            count += len(chunk)
        return count

    def delete_all(self) -> int:
        count = 0
        with _backend("delete"):
            refs = (s.reference for s in self._collection.select([]).stream(**self._call))
            for chunk in _chunks(refs, BATCH_WRITE_LIMIT):
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


class PendingWatch:
    """One running listener of `FirestoreSignalStore.watch_pending`; `close()` stops it."""

    def __init__(
        self,
        query: Any,
        on_documents: Callable[[list[Signal | InvalidSignal]], None],
        *,
        on_snapshot: SnapshotHook | None = None,
    ) -> None:
        self._on_documents = on_documents
        self._on_snapshot_hook = on_snapshot
        self._error: str | None = None
        self.snapshots = 0
        self._view = SnapshotView()
        with _backend("listen"):
            self._watch = query.on_snapshot(self._on_snapshot)
        _throttle_reopens(self._watch)

    def _on_snapshot(self, _documents: Any, changes: Any, read_time: Any) -> None:
        try:
            docs = [_parsed(c.document) for c in changes if c.type.name != "REMOVED"]
            removed = [c.document.id for c in changes if c.type.name == "REMOVED"]
            read_at = read_time.timestamp() if read_time is not None else None
            self._view.apply(docs, removed, read_at)
            self.snapshots += 1
            if self._on_snapshot_hook is not None:
                self._on_snapshot_hook(docs, removed, read_at)
            if docs:
                self._on_documents(docs)
        except Exception as exc:
            logger.exception("Firestore listener: snapshot not handled")
            self._error = f"snapshot not handled: {type(exc).__name__}: {exc}"

    def pending_as_of(
        self, signal_ids: Sequence[str], max_age_s: float
    ) -> dict[str, Signal | InvalidSignal]:
        """The documents among `signal_ids` that were PENDING in the last snapshot, when that
        snapshot's read time is at most `max_age_s` old (by this machine's clock): as good as
        a read of them that long ago. Empty when the listener is behind or failed."""
        if self.failure is not None:
            return {}
        return self._view.as_of(signal_ids, max_age_s)

    @property
    def failure(self) -> str | None:
        """Why the listener stopped (it will deliver nothing more), or None while it runs."""
        if self._error is not None:
            return self._error
        # The library closes its Watch for good on an error it does not retry (its
        # `is_active` is unusable: a classmethod); `_closed` is the only trace left of it.
        if getattr(self._watch, "_closed", False):
            return "the Firestore listener stopped"
        return None

    def close(self) -> None:
        self._error = self._error or "closed"
        with contextlib.suppress(Exception):  # already closed by the library: nothing to stop
            self._watch.close()


#: Stream reopens a listener may make in `REOPEN_WINDOW` (api_core's own throttle, which the
#: library's `Watch` does not ask for).
REOPEN_LIMIT = 5
REOPEN_WINDOW = timedelta(seconds=10)


def _throttle_reopens(watch: Any) -> None:
    """google-cloud-firestore's `Watch` reopens its stream at once after every recoverable
    error (api_core's `ResumableBidiRpc`, built without ``throttle_reopen``): with Firestore
    unreachable every open fails at once, and it looped ~2,000 times a second, a core spent
    until Firestore came back. This gives the stream the throttle the library leaves out."""
    rpc = getattr(watch, "_rpc", None)
    if rpc is None or not hasattr(rpc, "_reopen_throttle"):
        logger.warning("Firestore listener: no stream to throttle (library changed?)")
        return
    rpc._reopen_throttle = bidi._Throttle(access_limit=REOPEN_LIMIT, time_window=REOPEN_WINDOW)


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


def _parsed(snapshot: Any) -> Signal | InvalidSignal:
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


def _classify(t: Transition, snapshot: Any) -> TransitionResult | PlannedWrite:
    if not snapshot.exists:
        return classify(t, None, None)
    return classify(t, snapshot.to_dict(), snapshot_version(snapshot))


# --- client ---------------------------------------------------------------------------------------

_clients: dict[tuple[int, str | None, str | None], firestore.Client] = {}
_clients_lock = threading.Lock()


def firestore_client(*, project: str | None, emulator_host: str | None) -> firestore.Client:
    """A Firestore client for `project`, talking to the emulator at `emulator_host` when given.

    Cached per process (gRPC channels do not survive a fork) and per arguments. The arguments
    win over the process environment: the Google client reads ``FIRESTORE_EMULATOR_HOST`` from
    ``os.environ`` when it is built, so the variable is set (or removed) for the duration of the
    construction, under a lock, and restored afterwards. With an emulator the client uses
    anonymous credentials and `project` defaults to `DEFAULT_EMULATOR_PROJECT`; without one,
    Google's default credentials are used and a missing credential raises `SignalStoreError`.
    """
    key = (os.getpid(), project, emulator_host)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _build_client(project, emulator_host)
            _clients[key] = client
        return client


def _build_client(project: str | None, emulator_host: str | None) -> firestore.Client:
    saved = os.environ.get(_EMULATOR_ENV)
    try:
        if emulator_host:
            os.environ[_EMULATOR_ENV] = emulator_host
            project = project or DEFAULT_EMULATOR_PROJECT
        else:
            os.environ.pop(_EMULATOR_ENV, None)
        with _backend("client set-up"):
            client = firestore.Client(project=project)
            _read_streams_on_calling_thread(client)
            return client
    finally:
        if saved is None:
            os.environ.pop(_EMULATOR_ENV, None)
        else:
            os.environ[_EMULATOR_ENV] = saved


class _CallingThreadStreamsTransport(FirestoreGrpcTransport):
    """The library's gRPC transport, on a channel that reads server streams on the thread that
    iterates them (gRPC's ``SingleThreadedUnaryStream`` channel option).

    By default gRPC hands every streamed message from its polling thread to the reader thread:
    two thread switches and a lock per message, which cost more than decoding the document
    (about 0.2 ms a message, most of a 10,000-document read). The channel is built by the client
    library (credentials, emulator, keep-alive options), so the option is set on it here, before
    the transport creates its stubs. Unary-stream calls (RunQuery, BatchGetDocuments,
    RunAggregationQuery) are all consumed synchronously by the library and by this store.
    """

    def __init__(self, *args: Any, channel: Any = None, **kwargs: Any) -> None:
        if hasattr(channel, _SINGLE_THREADED_ATTR):
            setattr(channel, _SINGLE_THREADED_ATTR, True)
        super().__init__(*args, channel=channel, **kwargs)


# What `grpc.experimental.ChannelOptions.SingleThreadedUnaryStream` sets on a `grpc.Channel`.
_SINGLE_THREADED_ATTR = "_single_threaded_unary_stream"


def _read_streams_on_calling_thread(client: firestore.Client) -> None:
    """Build `client`'s API now, on `_CallingThreadStreamsTransport` (see there). Without the
    library internals this needs, the client keeps its default transport (slower, same results).
    """
    try:
        client._firestore_api_helper(
            _CallingThreadStreamsTransport, gapic_client.FirestoreClient, gapic_client
        )
    except AttributeError:  # pragma: no cover - a library version without the helper
        logger.warning("Firestore client: default gRPC transport (streams read on gRPC's thread)")
