"""Firestore's real-time listener in a process of its own, for the signal watcher
(docs/design.md section 15).

The Python client's listener does real work per change (protobuf decoding, its document tree,
our parsing) on a thread that shares the interpreter lock with the watcher's workers. At 50
signals a second on two cores it fell seconds behind in about half the benchmark runs, where the
same listener alone delivers with p99 10 ms. Here it runs in a child process (spawned: gRPC does
not survive a fork) with its own interpreter lock; each snapshot comes back over a pipe, already
parsed, and a reader thread hands it on.

`ProcessPendingWatch` offers what the in-process `PendingWatch` offers (`snapshots`, `failure`,
`pending_as_of`, `close`). The child ends when its listener fails (the failure is sent first),
when it is closed, or when its parent is gone (it checks twice a second): an orphaned listener
never outlives its watcher.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection

from brokerops.intent.watch import Document, ListenerSpec, SnapshotListener

logger = logging.getLogger(__name__)
#: How often the child checks that its listener runs and its parent lives.
CHILD_CHECK_S = 0.5
#: How long `close()` waits for the child before killing it.
CLOSE_WAIT_S = 3.0


class ProcessPendingWatch(SnapshotListener):
    """A `PendingWatch` run by a child process; `on_documents` runs on this process's reader
    thread (keep it short: hand the documents over)."""

    def __init__(self, spec: ListenerSpec, on_documents: Callable[[list[Document]], None]):
        super().__init__(on_documents)
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_listen,
            args=(spec, child_conn, os.getpid()),
            name="firestore-listener",
            daemon=True,
        )
        self._process.start()
        child_conn.close()  # the child's end: once the child exits, recv() ends with EOFError
        self._reader = threading.Thread(
            target=self._read, name="firestore-listener-reader", daemon=True
        )
        self._reader.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _read(self) -> None:
        while True:
            try:
                message = self._conn.recv()
            except (EOFError, OSError):
                self._error = self._error or "the listener process ended"
                return
            kind = message[0]
            if kind == "snapshot":
                _, docs, removed, read_at = message
                self._received(docs, removed, read_at)
            elif kind == "failure":
                self._error = message[1]

    def _ended(self) -> str | None:
        if not self._process.is_alive():
            return f"the listener process exited ({self._process.exitcode})"
        return None

    def close(self) -> None:
        self._error = self._error or "closed"
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(CLOSE_WAIT_S)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(CLOSE_WAIT_S)
        with contextlib.suppress(OSError):
            self._conn.close()
        self._reader.join(CLOSE_WAIT_S)


def _listen(spec: ListenerSpec, conn: Connection, parent_pid: int) -> None:
    """The child process: listen, send each snapshot, end with the listener or the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which closes us
    from brokerops.intent.firestore import FirestoreSignalStore
    from brokerops.intent.firestore_client import firestore_client
    from brokerops.intent.store import SignalStoreError

    sending = threading.Lock()

    def send(message: tuple) -> None:
        with sending:
            conn.send(message)

    try:
        client = firestore_client(project=spec.project, emulator_host=spec.emulator_host)
        store = FirestoreSignalStore(client, spec.collection)
        watch = store.watch_pending(
            lambda docs: None,  # sent whole by the hook below
            on_snapshot=lambda docs, removed, read_at: send(("snapshot", docs, removed, read_at)),
        )
    except SignalStoreError as exc:
        with contextlib.suppress(OSError):
            send(("failure", f"{type(exc).__name__}: {exc}"))
        return
    try:
        while os.getppid() == parent_pid:
            if watch.failure is not None:
                with contextlib.suppress(OSError):
                    send(("failure", watch.failure))
                return
            time.sleep(CHILD_CHECK_S)
    finally:
        watch.close()
        conn.close()
