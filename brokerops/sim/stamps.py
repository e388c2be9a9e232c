"""The paper broker's clock and counters: nanosecond stamps that never tie, order sequence
numbers and trade ids. The book's parts share one :class:`Stamps` (under the book's lock)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from .model import parse_time, to_nanos

FIRST_TRADE_ID = 52_983_525_029_461
#: ``submitted_at`` precedes ``created_at`` by 1 µs to about 1 ms (Alpaca: a few ms).
SUBMIT_LEAD_NS = (1_000, 997_000)


class Stamps:
    """Time and ids for one book; not locked itself (the book's lock guards it)."""

    def __init__(self, clock: Callable[[], int] = time.time_ns) -> None:
        self.clock = clock
        self._seq = 0
        self._trade_seq = FIRST_TRADE_ID
        self._last_time = 0
        self._last_submitted = 0

    def now(self) -> int:
        """Nanoseconds, strictly later than every stamp handed out before (orders never tie)."""
        now = self.clock()
        if now <= self._last_time:
            now = self._last_time + 1
        self._last_time = now
        return now

    def submission(self, seq: int) -> tuple[int, int]:
        """``(submitted_at, created_at)`` of a new order: ``created_at`` is now, ``submitted_at``
        a little (1 µs to 1 ms) before it, yet after every earlier order's ``submitted_at``."""
        created = self.now()
        low, span = SUBMIT_LEAD_NS
        lead = low + (seq * 7_919 * 1_000) % span
        submitted = max(created - lead, self._last_submitted + 1)
        self._last_submitted = submitted
        return submitted, created

    def seeded_submission(self) -> int:
        """``submitted_at`` of a seeded order given none: now, and later submissions follow it."""
        submitted = self.now()
        self._last_submitted = max(self._last_submitted, submitted)
        return submitted

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def next_trade_id(self) -> int:
        self._trade_seq += 1
        return self._trade_seq


def stamp(value: datetime | str | int | None) -> int | None:
    """Nanoseconds since the epoch from a datetime (naive: UTC), RFC 3339 text or an int."""
    if value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_time(value)
    return to_nanos(value)
