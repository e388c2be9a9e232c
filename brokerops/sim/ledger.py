"""One account's activities, as ``GET /v2/account/activities`` serves them (docs/design.md
section 18): a fill's ``FILL`` (the trade shape: ``type``, ``transaction_time``, ``side``,
``order_id``, ``cum_qty``, ``leaves_qty``, ``order_status``), and the non-trade shape (``date``,
``net_amount``, ``description``, ``symbol``, ``qty``, ``price``, ``status``, and
``activity_sub_type`` / ``per_share_amount`` where Alpaca gives them) for the crypto fees
(``CFEE``) and the corporate actions (``corporate.py``).

Ids are Alpaca's form, ``YYYYMMDDHHMMSSmmm::<uuid>``: the booking time (UTC) then a UUID whose
high bits count the account's activities, so ids sort in the order booked. Paging as Alpaca's:
``direction`` (``desc`` by default), ``page_size`` (at most and by default 100, unless ``date``
is given: then every match), ``page_token`` (the page starts right after that id going ``asc``,
ends right before it going ``desc``), ``after``/``until`` (exclusive), ``date`` (that UTC day),
``activity_types`` (a list, or the path's one type). Not locked itself: the book's lock guards it.

A crypto buy's ``CFEE`` is held until :meth:`Ledger.post_held` (Alpaca posts the fees at the end
of the day) unless ``fees_at_once`` is set.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

from .errors import invalid
from .model import Order, fmt_decimal, fmt_time, parse_time
from .stamps import Stamps

MAX_PAGE_SIZE = 100
#: Activity types a filter may name (Alpaca's list, older codes and its TRANS/MISC groups).
KNOWN_TYPES = frozenset(
    {
        "FILL",
        "TRANS",
        "MISC",
        "ACATC",
        "ACATS",
        "CFEE",
        "CIL",
        "CSD",
        "CSW",
        "DIV",
        "DIVCGL",
        "DIVCGS",
        "DIVFEE",
        "DIVFT",
        "DIVNRA",
        "DIVROC",
        "DIVTW",
        "DIVTXEX",
        "DIVWH",
        "EXTRD",
        "FEE",
        "FXTRD",
        "INT",
        "INTNRA",
        "INTTW",
        "INTPNL",
        "JNL",
        "JNLC",
        "JNLS",
        "MA",
        "MEM",
        "NC",
        "OCT",
        "OPASN",
        "OPCSH",
        "OPEXC",
        "OPEXP",
        "OPTRD",
        "PTC",
        "PTR",
        "REORG",
        "SC",
        "SPIN",
        "SPLIT",
        "SSO",
        "SSP",
        "SWP",
        "VOF",
        "WH",
    }
)
COIN_FEE_DESCRIPTION = "Coin Pair Transaction Fee (Non USD)"


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")


class Ledger:
    """The activities of one book, oldest first."""

    def __init__(self, stamps: Stamps) -> None:
        self._stamps = stamps
        self._rows: list[dict[str, object]] = []
        self._ids: list[str] = []
        self._times: list[int] = []
        self._held: list[dict[str, object]] = []
        #: Post a crypto buy's fee at once instead of at the end of the day.
        self.fees_at_once = False

    def _new_id(self, ns: int) -> str:
        moment = datetime.fromtimestamp(ns // 1_000_000_000, UTC).strftime("%Y%m%d%H%M%S")
        millis = (ns // 1_000_000) % 1000
        tail = uuid.UUID(int=(len(self._rows) + 1) << 64 | uuid.uuid4().int >> 64)
        return f"{moment}{millis:03d}::{tail}"

    def _append(self, row: dict[str, object], ns: int) -> dict[str, object]:
        row = {"id": self._new_id(ns), **row}
        self._rows.append(row)
        self._ids.append(row["id"])  # type: ignore[arg-type]
        self._times.append(ns)
        return row

    # ------------------------------------------------------------------ booking

    def record_fill(self, order: Order, qty: Decimal, price: Decimal, ns: int) -> dict:
        """A ``FILL`` for one execution of ``order``, as booked at ``ns``."""
        filled = order.filled_qty
        leaves = (order.qty - filled) if order.qty is not None else Decimal(0)
        status = order.status
        row = {
            "activity_type": "FILL",
            "transaction_time": fmt_time(ns),
            "type": "fill" if status == "filled" else "partial_fill",
            "price": fmt_decimal(price),
            "qty": fmt_decimal(qty),
            "side": order.side,
            "symbol": order.asset.position_symbol,
            "leaves_qty": fmt_decimal(max(leaves, Decimal(0))),
            "order_id": order.id,
            "cum_qty": fmt_decimal(filled),
            "order_status": status,
        }
        return self._append(row, ns)

    def record_coin_fee(self, symbol: str, fee: Decimal, price: Decimal) -> dict | None:
        """A crypto buy's fee taken in the coin: posted now, or held for :meth:`post_held`."""
        row = {
            "activity_type": "CFEE",
            "net_amount": "0",
            "description": COIN_FEE_DESCRIPTION,
            "symbol": symbol,
            "qty": fmt_decimal(-fee),
            "price": fmt_decimal(price),
            "status": "executed",
        }
        if self.fees_at_once:
            return self.post(row)
        self._held.append(row)
        return None

    def post_held(self) -> list[dict[str, object]]:
        """The end of the day: every fee held is posted now; returns them as served."""
        held, self._held = self._held, []
        return [self.post(row) for row in held]

    def hold(self, activity_id: str) -> dict[str, object]:
        """Take a posted activity back, as not posted yet (one leg of a corporate action that
        Alpaca posts later than the other): it is posted again, with a new id, by
        :meth:`post_held`. ``KeyError`` for an id never posted."""
        index = self._ids.index(activity_id) if activity_id in self._ids else None
        if index is None:
            raise KeyError(f"no posted activity {activity_id!r}")
        row = self._rows.pop(index)
        del self._ids[index], self._times[index]
        held = {k: v for k, v in row.items() if k != "id"}
        self._held.append(held)
        return held

    def held_count(self) -> int:
        return len(self._held)

    def post(self, row: dict[str, object], ns: int | None = None) -> dict[str, object]:
        """A non-trade activity booked now (``date`` filled in when absent)."""
        ns = self._stamps.now() if ns is None else ns
        row = dict(row)
        row.setdefault("date", _day(ns))
        row.setdefault("status", "executed")
        return self._append(row, ns)

    # ------------------------------------------------------------------ serving

    def rows(self) -> list[dict[str, object]]:
        return list(self._rows)

    def page(self, query: dict[str, str], path_type: str | None = None) -> list[dict]:
        """``GET /v2/account/activities[/{type}]`` for ``query`` (see the module docstring)."""
        types = _types(query.get("activity_types"), path_type)
        direction = (query.get("direction") or "desc").lower()
        if direction not in ("asc", "desc"):
            raise invalid(f"invalid direction: {direction}")
        date = query.get("date") or None
        size = _page_size(query.get("page_size"), unbounded=date is not None)
        after, until = _bound(query, "after"), _bound(query, "until")
        if date is not None:
            after, until = _day_bounds(date)
        token = query.get("page_token") or None
        taken: list[dict[str, object]] = []
        for index in self._indexes(direction, token):
            ns = self._times[index]
            if (after is not None and ns <= after) or (until is not None and ns >= until):
                continue
            row = self._rows[index]
            if types is None or row["activity_type"] in types:
                taken.append(row)
                if size is not None and len(taken) >= size:
                    break
        return taken

    def _indexes(self, direction: str, token: str | None) -> Iterator[int]:
        if direction == "asc":
            start = 0 if token is None else bisect_right(self._ids, token)
            return iter(range(start, len(self._ids)))
        end = len(self._ids) if token is None else bisect_left(self._ids, token)
        return iter(range(end - 1, -1, -1))


def _types(text: str | None, path_type: str | None) -> frozenset[str] | None:
    names = [path_type] if path_type else [t for t in (text or "").split(",") if t.strip()]
    if not names:
        return None
    wanted = {name.strip().upper() for name in names}
    for name in sorted(wanted - KNOWN_TYPES):
        raise invalid(f"invalid activity type: {name}")
    return frozenset(wanted)


def _page_size(text: str | None, *, unbounded: bool) -> int | None:
    if not text:
        return None if unbounded else MAX_PAGE_SIZE
    try:
        size = int(text)
    except ValueError:
        raise invalid(f"invalid page_size: {text}") from None
    if size < 1:
        raise invalid("page_size must be > 0")
    return size if unbounded else min(size, MAX_PAGE_SIZE)


def _bound(query: dict[str, str], name: str) -> int | None:
    text = query.get(name)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise invalid(f"invalid {name}: {text}") from None


def _day_bounds(text: str) -> tuple[int, int]:
    try:
        start = parse_time(text[:10])
    except ValueError:
        raise invalid(f"invalid date: {text}") from None
    return start - 1, start + 86_400 * 1_000_000_000
