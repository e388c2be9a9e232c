"""The gateway's read of account activities (docs/design.md section 18): incremental, from a
cursor, oldest first, page after page to the end.

alpaca-py's ``TradingClient`` has no call for ``GET /v2/account/activities`` (its
``BrokerClient`` reads the Broker API's), so the request goes through the client's own ``get``:
the same session, timeout, rate limiter, counting, retries and error mapping as every other read.

Cursor: Alpaca's activity ids (``20220304135420903::<uuid>``) start with the time they were
booked, so in ascending order each id sorts after the one before; ``page_token`` is the last id
read and the next page begins right after it. A page that repeats an id already read, or that
goes backwards (an id not after the cursor, or ids out of order), stops the read: what came
before is kept and the reason is recorded, so a broker that ignores the cursor can never make the
read loop. So does the page bound (``max_pages``); the next read goes on from the cursor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..constants import DEFAULT_MAX_ACTIVITY_PAGES, MAX_ACTIVITY_PAGE_SIZE
from ..parsing.activities import parse_activities
from ..types import Activity
from .session import GatewayCalls

ACTIVITIES_PATH = "/v2/account/activities"


@dataclass
class ActivityRead:
    """What one read of activities brought: the activities in the order read (each once), the
    cursor to keep (the last id read, else the one the read started after), the pages (calls)
    it took, and whether it reached the end; ``stop_reason`` says why not."""

    activities: list[Activity] = field(default_factory=list)
    last_id: str | None = None
    pages: int = 0
    complete: bool = False
    stop_reason: str | None = None


def _page_fault(page: Sequence[Activity], cursor: str | None, seen: set[str]) -> str | None:
    """Why ``page`` cannot be taken (a repeat, or ids going backwards), or None."""
    previous = cursor
    for activity in page:
        if activity.id in seen:
            return f"repeats activity {activity.id}"
        if previous is not None and activity.id <= previous:
            return f"goes backwards: activity {activity.id} is not after {previous}"
        seen.add(activity.id)
        previous = activity.id
    return None


class ActivityCalls(GatewayCalls):
    """``GET /v2/account/activities``, read incrementally."""

    def read_activities(
        self,
        *,
        after_id: str | None = None,
        activity_types: Iterable[str] | None = None,
        page_size: int = MAX_ACTIVITY_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_ACTIVITY_PAGES,
        on_page: Callable[[list[Activity]], None] | None = None,
        keep: bool = True,
    ) -> ActivityRead:
        """Every activity after ``after_id`` (all of them when None), oldest first
        (``direction=asc``), ``page_size`` a page (Alpaca's maximum, 100), to the end: the first
        page shorter than ``page_size``. Each page is one counted call, retried like any read;
        ``on_page`` sees each page as it is taken (a caller stores it and moves its cursor before
        the next is asked for, so a failure later loses nothing taken). A failed call raises the
        broker error (nothing taken after the last page seen by ``on_page``); a repeating or
        backwards page, or ``max_pages`` reached, ends the read incomplete with the reason.
        ``keep=False`` (with ``on_page``): ``activities`` stays empty, so a long first read
        holds one page at a time rather than every activity read (docs/benchmarks.md)."""
        if not 1 <= page_size <= MAX_ACTIVITY_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_ACTIVITY_PAGE_SIZE}")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        types = ",".join(t.strip().upper() for t in activity_types or () if t.strip())
        read = ActivityRead(last_id=after_id)
        seen: set[str] = set()
        while True:
            if read.pages >= max_pages:
                read.stop_reason = f"stopped after {max_pages} pages; the next read goes on"
                return read
            params: dict[str, Any] = {"direction": "asc", "page_size": page_size}
            if read.last_id is not None:
                params["page_token"] = read.last_id
            if types:
                params["activity_types"] = types
            page = self._read(ACTIVITIES_PATH, lambda p=params: self._activities_page(p))
            read.pages += 1
            fault = _page_fault(page, read.last_id, seen)
            if fault is not None:
                read.stop_reason = f"{ACTIVITIES_PATH}: page {read.pages} {fault}"
                return read
            if page:
                if keep:
                    read.activities.extend(page)
                read.last_id = page[-1].id
                if on_page is not None:
                    on_page(page)
            if len(page) < page_size:
                read.complete = True
                return read

    def _activities_page(self, params: dict[str, Any]) -> list[Activity]:
        return parse_activities(self._client.get("/account/activities", params))
