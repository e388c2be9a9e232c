"""New PENDING signals as they appear: the signal store's side of the watcher (docs/design.md
section 15).

A `PendingSource` is one connection to the store. Once opened, `take()` returns every PENDING
document first (the catch-up), then each document that becomes PENDING or changes while
PENDING, parsed with its version (`Signal` or `InvalidSignal`). A document comes back again
only with a new version. A lost connection raises `SignalStoreError` from `take()`: the caller
closes the source and opens a new one (which catches up again).

- Firestore (`FirestorePendingSource`): the store's real-time listener on ``status ==
  "PENDING"`` (`FirestoreSignalStore.watch_pending`). Its callbacks run on Firestore's thread;
  they only put documents on a queue that `take()` empties on the caller's thread. A backstop
  poll of the same query every ``poll_s`` runs alongside: the listener can fall seconds behind
  under load (measured on the emulator at 50 writes/s: delivery p99 10 s in one run of two),
  and the poll bounds that. Each document version is returned once, whichever saw it first,
  and never after a newer one. With ``listener_process`` the listener runs in a child process
  of its own (`brokerops.intent.firestore_listener`), out of reach of the sending threads'
  interpreter lock; its documents arrive the same way.
- The local store (`PollingPendingSource`) has no push: `take()` reads the PENDING documents
  every ``poll_s`` (a bulk read on the indexed status column) and returns those not returned
  before at that version.
"""

from __future__ import annotations

import abc
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import SignalStore, SignalStoreUnavailable

Document = Signal | InvalidSignal
#: Document versions a Firestore source remembers having returned (its dedup of listener + poll).
RETURNED_MEMORY = 100_000
#: A listener's whole snapshot: documents in the query, ids that left it, read time (epoch s).
SnapshotHook = Callable[[list[Document], list[str], float | None], None]


@dataclass(frozen=True)
class ListenerSpec:
    """What another process needs to listen to a Firestore store's PENDING signals."""

    project: str
    emulator_host: str | None
    collection: str


class SnapshotView:
    """The PENDING query as of a listener's last snapshot, and that snapshot's read time (the
    server's clock, epoch seconds): what `PendingSource.pending_as_of` answers from."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}
        self._at: float | None = None
        self._lock = threading.Lock()

    def apply(self, docs: Sequence[Document], removed: Sequence[str], read_at: float | None):
        with self._lock:
            for doc_id in removed:
                self._docs.pop(doc_id, None)
            self._docs.update((doc.id, doc) for doc in docs)
            self._at = read_at

    def as_of(self, signal_ids: Sequence[str], max_age_s: float) -> dict[str, Document]:
        """The documents among `signal_ids` in the view, when its read time is at most
        `max_age_s` old by this machine's clock; {} when older."""
        with self._lock:
            if self._at is None or time.time() - self._at > max_age_s:
                return {}
            return {i: self._docs[i] for i in signal_ids if i in self._docs}


class SnapshotListener(abc.ABC):
    """What Firestore's two listeners share (`PendingWatch` in this process,
    `ProcessPendingWatch` in a child of its own): the last snapshot's view, the count of
    snapshots, the documents handed on, and why the listener stopped."""

    def __init__(
        self,
        on_documents: Callable[[list[Document]], None],
        on_snapshot: SnapshotHook | None = None,
    ) -> None:
        self._on_documents = on_documents
        self._on_snapshot_hook = on_snapshot
        self._view = SnapshotView()
        self._error: str | None = None
        self.snapshots = 0

    def _received(self, docs: list[Document], removed: list[str], read_at: float | None) -> None:
        """One snapshot: into the view, to the hook, and its documents handed on."""
        self._view.apply(docs, removed, read_at)
        self.snapshots += 1
        if self._on_snapshot_hook is not None:
            self._on_snapshot_hook(docs, removed, read_at)
        if docs:
            self._on_documents(docs)

    def pending_as_of(self, signal_ids: Sequence[str], max_age_s: float) -> dict[str, Document]:
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
        return self._ended()

    @abc.abstractmethod
    def _ended(self) -> str | None:
        """Why the listener ended without saying so (None: it runs)."""


class PendingSource(abc.ABC):
    """One connection watching PENDING documents (see the module docstring)."""

    @abc.abstractmethod
    def open(self) -> None:
        """Connect; raises `SignalStoreError` when the store cannot be reached."""

    @abc.abstractmethod
    def take(self, timeout_s: float) -> list[Document]:
        """New PENDING documents, waiting up to `timeout_s` for the first; `[]` when none came.
        Raises `SignalStoreError` when the connection is lost."""

    @abc.abstractmethod
    def close(self) -> None:
        """Disconnect (idempotent)."""

    @property
    @abc.abstractmethod
    def listening(self) -> bool:
        """The catch-up is done: a document written from now on comes as a change."""

    @abc.abstractmethod
    def pending_as_of(self, signal_ids: Sequence[str], max_age_s: float) -> dict[str, Document]:
        """The documents among `signal_ids` this connection saw PENDING in a consistent read of
        the store at most `max_age_s` ago (as good as reading them then); the others are not
        returned (unknown, or not PENDING)."""


class PollingPendingSource(PendingSource):
    """A poll of `store.read(statuses=[PENDING])` every `poll_s` seconds."""

    def __init__(self, store: SignalStore, *, poll_s: float = 0.5) -> None:
        if not poll_s > 0:
            raise ValueError("poll_s must be positive")
        self._store = store
        self._poll_s = poll_s
        self._versions: dict[str, str | None] = {}
        self._next_read = 0.0
        self._reads = 0
        self._last_read: dict[str, Document] = {}
        self._last_read_at = float("-inf")

    def open(self) -> None:
        self._versions.clear()  # the first take() returns every PENDING document
        self._next_read = 0.0
        self._reads = 0
        self._last_read, self._last_read_at = {}, float("-inf")

    def take(self, timeout_s: float) -> list[Document]:
        wait = self._next_read - time.monotonic()
        if wait > timeout_s:
            time.sleep(timeout_s)
            return []
        if wait > 0:
            time.sleep(wait)
        self._next_read = time.monotonic() + self._poll_s
        read_at = time.monotonic()
        read = self._store.read(statuses=[SignalStatus.PENDING])
        self._reads += 1
        docs: list[Document] = [*read.signals, *read.invalid]
        self._last_read, self._last_read_at = {d.id: d for d in docs}, read_at
        seen, self._versions = self._versions, {d.id: d.version for d in docs}
        return [d for d in docs if d.id not in seen or seen[d.id] != d.version]

    def close(self) -> None:
        self._versions.clear()

    @property
    def listening(self) -> bool:
        return self._reads > 0

    def pending_as_of(self, signal_ids: Sequence[str], max_age_s: float) -> dict[str, Document]:
        if time.monotonic() - self._last_read_at > max_age_s:
            return {}
        return {i: self._last_read[i] for i in signal_ids if i in self._last_read}


class FirestorePendingSource(PendingSource):
    """Firestore's real-time listener, with a backstop poll every `poll_s` seconds (None: the
    listener alone); `store` is a `FirestoreSignalStore`. With `listener_process` the listener
    runs in a child process of its own (`brokerops.intent.firestore_listener`), else on a
    thread of this one."""

    def __init__(
        self, store: SignalStore, *, poll_s: float | None = None, listener_process: bool = False
    ) -> None:
        if poll_s is not None and not poll_s > 0:
            raise ValueError("poll_s must be positive")
        self._store = store
        self._poll_s = poll_s
        self._listener_process = listener_process
        self._queue: queue.SimpleQueue[list[Document]] = queue.SimpleQueue()
        self._watch = None
        self._returned: OrderedDict[str, str | None] = OrderedDict()  # id -> version returned
        self._next_poll = float("inf")

    def open(self) -> None:
        self._queue = queue.SimpleQueue()
        self._returned = OrderedDict()
        if self._listener_process:
            from brokerops.intent.firestore_listener import ProcessPendingWatch

            spec = self._store.listener_spec()  # type: ignore[attr-defined]
            self._watch = ProcessPendingWatch(spec, self._queue.put)
        else:
            self._watch = self._store.watch_pending(self._queue.put)  # type: ignore[attr-defined]
        # The listener's first snapshot is the catch-up: the first poll comes one period later.
        self._next_poll = (
            time.monotonic() + self._poll_s if self._poll_s is not None else float("inf")
        )

    def take(self, timeout_s: float) -> list[Document]:
        if self._watch is None:
            raise SignalStoreUnavailable("the Firestore listener is not open")
        docs: list[Document] = []
        wait = max(0.0, min(timeout_s, self._next_poll - time.monotonic()))
        try:
            docs.extend(self._queue.get(timeout=wait))
            while True:
                docs.extend(self._queue.get_nowait())
        except queue.Empty:
            pass
        # A dead listener is replaced (its reconnect catches up) even while the poll finds work.
        if not docs and (failure := self._watch.failure):
            raise SignalStoreUnavailable(f"Firestore listener: {failure}")
        if time.monotonic() >= self._next_poll:
            docs.extend(self._poll())
        return self._unreturned(docs)

    def _poll(self) -> list[Document]:
        """The PENDING documents as the store has them now (raises `SignalStoreError`)."""
        self._next_poll = time.monotonic() + self._poll_s  # type: ignore[operator]
        read = self._store.read(statuses=[SignalStatus.PENDING])
        return [*read.signals, *read.invalid]

    def _unreturned(self, docs: list[Document]) -> list[Document]:
        fresh = []
        for doc in docs:
            if doc.id in self._returned and not _newer(doc.version, self._returned[doc.id]):
                continue  # returned already, or an older version (a listener far behind)
            self._returned[doc.id] = doc.version
            self._returned.move_to_end(doc.id)
            fresh.append(doc)
        # The listener may deliver a version long after the poll did: remember many (the oldest
        # are forgotten first; one returned twice only costs an "already" outcome).
        while len(self._returned) > RETURNED_MEMORY:
            self._returned.popitem(last=False)
        return fresh

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    @property
    def listening(self) -> bool:
        return self.snapshots > 0

    def pending_as_of(self, signal_ids: Sequence[str], max_age_s: float) -> dict[str, Document]:
        if self._watch is None:
            return {}
        return self._watch.pending_as_of(signal_ids, max_age_s)

    @property
    def snapshots(self) -> int:
        """Snapshots received so far on this connection (0 until the first: not yet listening)."""
        return self._watch.snapshots if self._watch is not None else 0


def _newer(version: str | None, returned: str | None) -> bool:
    """Firestore's versions are update times of one fixed width (`snapshot_version`): they
    sort as text. None (no version) only differs."""
    if version is None or returned is None:
        return version != returned
    return version > returned


def pending_source(
    store: SignalStore, *, poll_s: float, listener_process: bool = False
) -> PendingSource:
    """The way to watch `store`: Firestore's listener (with a backstop poll every `poll_s`
    seconds; in a process of its own with `listener_process`), else a poll every `poll_s`
    seconds."""
    if hasattr(store, "watch_pending"):
        return FirestorePendingSource(store, poll_s=poll_s, listener_process=listener_process)
    return PollingPendingSource(store, poll_s=poll_s)
