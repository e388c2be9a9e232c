"""Which orders a run reads: all of the look-back, or only what changed since the last successful
run of the account (docs/design.md section 18.3).

An incremental read is every open order (``status=open``, one page up to 500), the closed orders
submitted since the last run's reads began (``status=closed&after=...``), and the orders that
left the open list since then, read together by ``symbols`` between the earliest and the latest
of their submission times (Alpaca's ``after``/``until`` are exclusive bounds on ``submitted_at``).
The final orders of our prefix that no attempt names, seen by the last run, are kept whole in
its base and compared again without a call (a final order never changes at Alpaca), so a break
about one is found again and not resolved for not being read.

It is checked before the diff sees it, and anything it cannot account for makes the run read the
whole look-back instead, in the same run, saying why: no previous successful run, the daily full
read due (``RECONCILE_FULL_EVERY_S``), a look-back reaching further back than the last run's, an
activities sync that did not complete, a ledger cursor that is not the one the last run left, a
fill since that cursor whose order was not read, an order that left the open list and was not
found, one of our open attempts whose order was not read, more changed orders than
:data:`MAX_CHANGED`. So the diff is handed, for every order it looks at (our open attempts'
orders, orders not final, orders of our prefix we never recorded), what a full read gives.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings

from brokerops.alpaca import Order
from brokerops.alpaca.listing import OrderSummaries
from brokerops.text import db_text
from ledger.models import AccountActivity
from ledger.selectors import activities_after, activity_cursor
from ledger.services import activities_sync
from orders import lifecycle
from orders.pairing import READ_SLACK

from .models import OrdersReadBase

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)

FULL = "full"
INCREMENTAL = "incremental"
#: More orders changed since the last run than this (left the open list, or filled): read all.
MAX_CHANGED = 2000
#: At most this many symbols in the one ``symbols=`` query of the orders that left the list.
MAX_SYMBOLS = 100
#: Around the submission times of the orders read again: Alpaca's bounds are exclusive and
#: its timestamps have nanoseconds, ours microseconds.
_MARGIN = timedelta(milliseconds=1)


class Fallback(Exception):
    """What the incremental read could not account for; the run reads in full, saying this."""


@dataclass
class OrdersRead:
    """The orders a run compares, and which read gave them."""

    orders: OrderSummaries
    mode: str
    reason: str
    counts: dict[str, int] = field(default_factory=dict)

    def report(self) -> dict[str, object]:
        """What the run's summary says of its read (``summary["orders_read"]``)."""
        # The reason may quote a broker's id: made safe for the database as any broker text.
        return {"mode": self.mode, "reason": db_text(self.reason), **self.counts}


@dataclass(frozen=True)
class Seen:
    """An order as the base keeps it: enough to read it again."""

    id: str
    symbol: str
    stamp: datetime

    def row(self) -> list[str]:
        return [self.id, self.symbol, self.stamp.isoformat()]

    @classmethod
    def of(cls, order: Order) -> Seen:
        return cls(order.id, order.symbol, order.submitted_at or order.created_at)


@dataclass(frozen=True)
class BaseUpdate:
    """What a run leaves for the next one to read from (stored only when it succeeds)."""

    read_at: datetime
    full_read_at: datetime
    after: datetime
    activity_pk: int | None
    orders: dict[str, list]


def read_base(account: str) -> OrdersReadBase | None:
    return OrdersReadBase.objects.filter(account=account).first()


def base_record(*, account: str, run_id: int, update: BaseUpdate) -> None:
    """The account's base is now ``update``, from run ``run_id`` (one row per account)."""
    OrdersReadBase.objects.update_or_create(
        account=account,
        defaults={
            "run_id": run_id,
            "read_at": update.read_at,
            "full_read_at": update.full_read_at,
            "after": update.after,
            "activity_pk": update.activity_pk,
            "orders_json": json.dumps(update.orders),
        },
    )


def full_reason(
    *, base: OrdersReadBase | None, requested: bool, now: datetime, after: datetime
) -> str:
    """Why this run reads in full before reading anything ("" when it may read incrementally)."""
    if requested:
        return "a full read was asked for (reconcile --full)"
    if base is None:
        return "no previous successful run of the account to read from"
    every = timedelta(seconds=settings.RECONCILE_FULL_EVERY_S)
    if now - base.full_read_at >= every:
        return (
            f"the daily full read is due (last at {base.full_read_at.isoformat()}, "
            f"RECONCILE_FULL_EVERY_S={settings.RECONCILE_FULL_EVERY_S})"
        )
    if after < base.after:
        return (
            f"the look-back starts at {after.isoformat()}, before the last run's "
            f"({base.after.isoformat()})"
        )
    return ""


def sync_activities(*, account: str, gateway: AlpacaGateway) -> str:
    """Bring the ledger up to date before the orders are read, so that the fills the next run
    checks are those booked after this run's reads began; gives what went wrong ("" when all
    went well). An empty ledger is not read here: its first read is its own task's (a long
    one, docs/design.md section 18.2)."""
    if activity_cursor(account=account) is None:
        return "no activity cursor yet (the ledger holds no activities of the account)"
    try:
        synced = activities_sync(account=account, gateway=gateway)
    except Exception as exc:  # noqa: BLE001 - the full read goes on without the ledger
        logger.warning("account %r: activities sync failed: %s", account, exc)
        return f"the activities sync failed: {type(exc).__name__}: {exc}"
    if synced.skipped:
        return f"the activities sync did not run: {synced.skipped}"
    if not synced.complete:
        return f"the activities read is incomplete: {synced.stop_reason}"
    return ""


def fills_since(*, account: str, base: OrdersReadBase) -> list[str]:
    """The Alpaca order ids of the fills stored since the last run's cursor; raises
    :class:`Fallback` when that cursor cannot be trusted or there are too many."""
    if base.activity_pk is None:
        raise Fallback("no activity cursor in the last run (the ledger held no activities then)")
    if not AccountActivity.objects.filter(account=account, pk=base.activity_pk).exists():
        raise Fallback(f"cursor gap: the last run's ledger row #{base.activity_pk} is gone")
    fills = list(
        activities_after(account=account, after_pk=base.activity_pk, families=["FILL"])
        .exclude(order_id="")
        .values_list("order_id", flat=True)[: MAX_CHANGED + 1]
    )
    if len(fills) > MAX_CHANGED:
        raise Fallback(f"more than {MAX_CHANGED} fills since the last run")
    return fills


def last_activity_pk(account: str) -> int | None:
    """The ledger's last row of the account (the next run's fills come after it)."""
    return (
        AccountActivity.objects.filter(account=account)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )


def read_changed(
    *, gateway: AlpacaGateway, base: OrdersReadBase, submit: Callable[..., Future]
) -> tuple[Future[OrderSummaries], Future[OrderSummaries]]:
    """The open orders, and the closed ones submitted since the last run's reads began, asked for
    side by side (``submit`` runs a call on the run's pool)."""
    since = base.read_at - READ_SLACK
    return (
        submit(gateway.list_order_summaries, status="open"),
        submit(gateway.list_order_summaries, status="closed", after=since),
    )


def read_left(
    *, gateway: AlpacaGateway, base: OrdersReadBase, read: set[str], after: datetime
) -> tuple[OrderSummaries | None, list[Seen], set[str]]:
    """The orders the last run saw open that neither read has brought: one ``status=closed``
    read by their symbols between their earliest and latest submission (None when there are
    none); and the ids of those submitted before the look-back (no full read has them: not
    read, but accounted for)."""
    unread = [s for s in _base_orders(base) if s.id not in read]
    outside = {s.id for s in unread if s.stamp <= after}
    wanted = [s for s in unread if s.id not in outside]
    if not wanted:
        return None, [], outside
    if len(wanted) > MAX_CHANGED:
        raise Fallback(f"{len(wanted)} orders left the open list (more than {MAX_CHANGED})")
    symbols = sorted({s.symbol for s in wanted})
    if len(symbols) > MAX_SYMBOLS:
        raise Fallback(f"orders that left the open list span {len(symbols)} symbols")
    left = gateway.list_order_summaries(
        status="closed",
        after=min(s.stamp for s in wanted) - _MARGIN,
        until=max(s.stamp for s in wanted) + _MARGIN,
        symbols=symbols,
    )
    found = {o.id for o in left}
    missing = [s.id for s in wanted if s.id not in found]
    if missing:
        raise Fallback(
            f"{len(missing)} order(s) that left the open list were not found among the closed "
            f"orders (first: {missing[0]})"
        )
    return left, wanted, outside


def _base_orders(base: OrdersReadBase) -> list[Seen]:
    rows = stored_orders(base).get("open", [])
    seen = {}
    for order_id, symbol, stamp in rows:
        seen[order_id] = Seen(order_id, symbol, datetime.fromisoformat(stamp))
    return list(seen.values())


def merge(reads: Iterable[OrderSummaries], *, after: datetime) -> OrderSummaries:
    """The orders of ``reads`` submitted after ``after`` (what a full read from there returns),
    each once, oldest first as a full read lists them."""
    picked: dict[str, tuple[datetime, int, OrderSummaries, int]] = {}
    for number, summaries in enumerate(reads):
        for index, summary in enumerate(summaries):
            if summary.id in picked:
                continue
            order = summaries.order(index)
            stamp = order.submitted_at or order.created_at
            if stamp is not None and stamp > after:
                picked[summary.id] = (stamp, number, summaries, index)
    merged = OrderSummaries()
    for _stamp, _number, summaries, index in sorted(
        picked.values(), key=lambda item: (item[0], item[1], item[3])
    ):
        merged.extend_from(summaries, [index])
    return merged


def check_covered(
    *,
    orders: OrderSummaries,
    read_ids: set[str],
    attempt_client_ids: Iterable[str],
    fills: Iterable[str],
) -> None:
    """Raises :class:`Fallback` unless every open attempt's order and every fill's order was read
    (``read_ids``: every order any read returned, in the look-back or not)."""
    client_ids = {o.client_order_id for o in orders}
    unread = [c for c in attempt_client_ids if c not in client_ids]
    if unread:
        raise Fallback(
            f"{len(unread)} open attempt(s) whose order the incremental read did not return "
            f"(first: {unread[0]})"
        )
    missing = [order_id for order_id in dict.fromkeys(fills) if order_id not in read_ids]
    if missing:
        raise Fallback(
            f"{len(missing)} fill(s) since the activity cursor name orders the incremental read "
            f"did not return (first: {missing[0]})"
        )


def base_orders(
    *, open_orders: OrderSummaries, not_final_only: bool, orders: OrderSummaries, unknown: list[int]
) -> dict[str, list]:
    """The next run's base: the open orders (those of ``open_orders``, of a full read those not
    final), and the orders of our prefix no attempt names (``unknown``: indexes in ``orders``)
    that are final: kept whole, as received, since they can no longer change (Alpaca's orders
    never reopen), so the next run compares them again without reading them again."""
    # Each status tested once, not each of a full read's 200,000 orders.
    statuses = {summary.status for summary in open_orders} if not_final_only else set()
    final_statuses = {status for status in statuses if lifecycle.is_terminal(status)}
    open_rows = [
        Seen.of(open_orders.order(i)).row()
        for i, summary in enumerate(open_orders)
        if summary.status not in final_statuses
    ]
    final = [orders.order(i).raw for i in unknown if lifecycle.is_terminal(orders[i].status)]
    return {"open": open_rows, "final": final}


def stored_orders(base: OrdersReadBase) -> dict[str, list]:
    """What ``base`` keeps of the orders it saw (see :func:`base_orders`)."""
    return json.loads(base.orders_json or "{}")


def carried(base: OrdersReadBase) -> OrderSummaries:
    """The final orders of our prefix no attempt names, as the last run kept them."""
    return OrderSummaries.from_rows(stored_orders(base).get("final", []))
