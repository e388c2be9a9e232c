"""The activities sync's read-ahead (docs/design.md section 18.2): one thread asks the broker
for the next page and parses it while the writer stores the pages before it.

Why a thread: a first read of 100,000 activities is 1,000 pages, and each page is an HTTP
round trip (the broker's time, then parsing) followed by a database transaction (the server's
time, then the commit). Python gives the GIL away while it waits on a socket or on psycopg, so
the two overlap instead of adding up (docs/benchmarks.md).

What the writer can rely on:

- pages come in the order read, each once, and every page read before a failure comes before it;
- the read ends with exactly one :class:`ReadEnd`: the :class:`~brokerops.alpaca.ActivityRead`,
  or the exception the read raised (whatever it was: a broker error, a gateway without a method
  the reader calls, a bug), always sent from a ``finally``, so the writer never waits for a
  page that will not come;
- the reader's calls count wherever the caller's do (``gateway.count_calls_as``): a sync's
  ``api_calls`` and a reconciliation run's are what they were with one thread;
- closing the reader (the writer stopped: an activity refused, a database error) stops the
  thread at its next page and joins it; the queue is bounded, so it never reads more than
  :data:`AHEAD` pages past the writer.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from brokerops.alpaca.types import Activity

if TYPE_CHECKING:
    from brokerops.alpaca import ActivityRead, AlpacaGateway

#: Pages the reader may hold before the writer takes them (100 activities each).
AHEAD = 10
#: How often a blocked side looks whether the other one has gone.
POLL_S = 0.5
#: How long closing waits for the thread (one HTTP call at most: the gateway's timeout bounds it).
JOIN_S = 30.0


@dataclass(frozen=True)
class ReadEnd:
    """The end of the read: what it brought (``read``), or what it raised (``error``)."""

    read: ActivityRead | None = None
    error: BaseException | None = None


class _Closed(Exception):
    """Raised inside the reader when the writer has gone: ends the read at its next page."""


class PageReader:
    """``gateway.read_activities(after_id=...)`` in a thread, one page ahead of the writer.

    ``with PageReader(gateway, after_id=cursor) as reader:
    for pages, end in reader.batches(1000): ...`` gives the pages as read, then the end."""

    def __init__(self, gateway: AlpacaGateway, *, after_id: str | None) -> None:
        self._gateway = gateway
        self._after_id = after_id
        self._caller = threading.get_ident()
        self._queue: queue.Queue[list[Activity] | ReadEnd] = queue.Queue(maxsize=AHEAD)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="activities-reader", daemon=True)

    def __enter__(self) -> PageReader:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(JOIN_S)

    def batches(self, max_rows: int) -> Iterator[tuple[list[list[Activity]], ReadEnd | None]]:
        """The pages as they come, grouped: each batch is the pages waiting when the writer asks
        (at least one, at most ``max_rows`` activities unless one page alone holds more), and
        the last batch carries the :class:`ReadEnd` (after every page read before it)."""
        while True:
            pages: list[list[Activity]] = []
            rows = 0
            item = self._next(wait=True)
            while isinstance(item, list):
                pages.append(item)
                rows += len(item)
                if rows >= max_rows:
                    break
                item = self._next(wait=False)
                if item is None:
                    break
            end = item if isinstance(item, ReadEnd) else None
            yield pages, end
            if end is not None:
                return

    def _next(self, *, wait: bool) -> list[Activity] | ReadEnd | None:
        """The next page or the end; None when nothing is waiting and ``wait`` is False."""
        while True:
            try:
                return self._queue.get(timeout=POLL_S) if wait else self._queue.get_nowait()
            except queue.Empty:
                if not wait:
                    return None
                if self._thread.is_alive() or not self._queue.empty():
                    continue
                # Cannot happen (the end is sent from a finally); never wait for nothing.
                return ReadEnd(error=RuntimeError("the activities reader ended without a word"))

    def _run(self) -> None:
        end = ReadEnd(error=RuntimeError("the activities reader did not finish"))
        try:
            with self._gateway.count_calls_as(self._caller):
                read = self._gateway.read_activities(
                    after_id=self._after_id, on_page=self._put, keep=False
                )
            end = ReadEnd(read=read)
        except _Closed:
            pass  # the writer has gone: nobody reads the end
        except BaseException as exc:  # noqa: BLE001 - handed to the writer, which raises it
            end = ReadEnd(error=exc)
        finally:
            with contextlib.suppress(_Closed):  # the writer has gone: nobody waits for it
                self._put(end)

    def _put(self, item: list[Activity] | ReadEnd) -> None:
        while True:
            if self._closed.is_set():
                raise _Closed
            try:
                self._queue.put(item, timeout=POLL_S)
                return
            except queue.Full:
                continue
