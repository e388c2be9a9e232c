"""The thread that sends delayed orders to the fill model when their fill delay has passed.

With ``Fidelity.fill_delay_s`` > 0 a new order waits in the book (``pending_new``) until
:meth:`Book.release_due` releases it. :class:`FillScheduler` calls that on time in the background
while the broker runs: it sleeps on the book's condition until the next order is due or a new one
is scheduled, and ``stop`` wakes and joins it. Without the thread (a broker that is not running)
``Book.settle`` and ``Book.release_pending`` release orders themselves.
"""

from __future__ import annotations

import logging
import threading
import time

from .book import Book

logger = logging.getLogger(__name__)


class FillScheduler:
    """Releases due orders of one book in a daemon thread; ``start``/``stop`` as often as needed."""

    def __init__(self, book: Book, name: str = "paper-broker-fills") -> None:
        self._book = book
        self._name = name
        self._thread: threading.Thread | None = None
        self._stopping = False

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Wake the thread and join it; orders still pending stay pending (state survives)."""
        thread = self._thread
        if thread is None:
            return
        with self._book.changed:
            self._stopping = True
            self._book.changed.notify_all()
        thread.join()
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        book = self._book
        with book.changed:
            while not self._stopping:
                try:
                    book.release_due()
                except Exception:  # a simulator bug: log it, keep the thread (and stop()) alive
                    logger.exception("paper broker failed to release delayed orders")
                    book.changed.wait(0.05)
                    continue
                due = book.next_due()
                if due is None:
                    book.changed.wait()
                    continue
                wait = due - time.monotonic()
                if wait > 0:
                    book.changed.wait(wait)
