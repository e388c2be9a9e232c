"""The real-time listener of the PENDING signals (`FirestoreSignalStore.watch_pending`).

`PendingWatch` wraps the library's ``on_snapshot`` listener: it parses each snapshot's documents,
keeps the last snapshot's view (`brokerops.intent.watch.SnapshotView`), and gives the library's
stream the reopen throttle the library leaves out (`_throttle_reopens`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from google.api_core import bidi

from brokerops.intent.firestore_client import firestore_errors
from brokerops.intent.firestore_decode import parsed_snapshot
from brokerops.intent.schema import InvalidSignal, Signal
from brokerops.intent.watch import SnapshotHook, SnapshotListener

logger = logging.getLogger(__name__)


class PendingWatch(SnapshotListener):
    """One running listener of `FirestoreSignalStore.watch_pending`; `close()` stops it."""

    def __init__(
        self,
        query: Any,
        on_documents: Callable[[list[Signal | InvalidSignal]], None],
        *,
        on_snapshot: SnapshotHook | None = None,
    ) -> None:
        super().__init__(on_documents, on_snapshot)
        with firestore_errors("listen"):
            self._watch = query.on_snapshot(self._on_snapshot)
        _throttle_reopens(self._watch)

    def _on_snapshot(self, _documents: Any, changes: Any, read_time: Any) -> None:
        try:
            docs = [parsed_snapshot(c.document) for c in changes if c.type.name != "REMOVED"]
            removed = [c.document.id for c in changes if c.type.name == "REMOVED"]
            read_at = read_time.timestamp() if read_time is not None else None
            self._received(docs, removed, read_at)
        except Exception as exc:
            logger.exception("Firestore listener: snapshot not handled")
            self._error = f"snapshot not handled: {type(exc).__name__}: {exc}"

    def _ended(self) -> str | None:
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
