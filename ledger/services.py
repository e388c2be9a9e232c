"""The ledger's writer and its sync (docs/design.md section 18.2).

:func:`activities_record` is the one writer of :class:`~ledger.models.AccountActivity`: it
stores the activities of one account not stored yet, in the order given, skipping (never
failing on) an id already there. :func:`activities_sync` reads an account's new activities from
its cursor through the gateway and records the pages as they arrive (a thread reads ahead while
the pages before are stored: :mod:`ledger.reader`), in transactions of at most
:data:`BATCH_ROWS` activities committed in the order read, so a crash mid-read loses nothing
stored and the next sync goes on from the cursor.

Why no duplicate can enter, however many syncs run: the writer holds the chain's lock (a
PostgreSQL transaction-level advisory lock; SQLite writes one transaction at a time) while it
looks for the ids already stored and appends the rest, so two writers of the same page take
turns and the second finds the first's rows; the unique constraint ``(account, activity_id)``
stands behind it. A sync also holds its account's single-flight lock, so a second sync of one
account at once does nothing and says so instead of reading the same pages again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from django.db import connections, router, transaction
from django.db.models.base import ModelState
from django.utils import timezone

from audit.chain import CHAINS_BY_NAME, chain_append
from audit.services import chain_heads_record_moved
from brokerops.alpaca import broker_gateway
from brokerops.alpaca.accounts import account_or_default
from brokerops.alpaca.types import Activity
from brokerops.locks import single_flight

from .models import CODE_MAX, ID_MAX, ORDER_ID_MAX, SYMBOL_MAX, AccountActivity
from .reader import PageReader, ReadEnd
from .selectors import activity_cursor

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)

CHAIN = "account_activities"
#: The single-flight lock of an account's sync: ``f"{SYNC_LOCK}:{account}"``.
SYNC_LOCK = "ledger-activities"
ACTOR = "activities-sync"
#: Activities stored in one transaction at most: the pages waiting when the writer is ready
#: (ten at most of 100), so a writer behind the reader commits once for several pages.
BATCH_ROWS = 1000
_LIMITS = {
    "id": ID_MAX,
    "activity_type": CODE_MAX,
    "sub_type": CODE_MAX,
    "side": CODE_MAX,
    "status": CODE_MAX,
    "symbol": SYMBOL_MAX,
    "order_id": ORDER_ID_MAX,
}


class ActivityRefused(ValueError):
    """An activity the table cannot hold as sent (a field longer than its column): the sync
    stops before it, records why, and the next sync tries again from the cursor."""


@dataclass(frozen=True)
class Recorded:
    new: int
    already_stored: int


def activities_record(*, account: str, activities: Sequence[Activity]) -> Recorded:
    """Store ``activities`` of ``account`` in the order given, each once: an id already stored
    (or twice in ``activities``) is skipped and counted. Raises :class:`ActivityRefused`,
    storing nothing of the batch, when one of them cannot be held as sent."""
    for activity in activities:
        _check_fits(activity)
    return _record(account, activities)


def _record(account: str, activities: Sequence[Activity]) -> Recorded:
    """:func:`activities_record` of activities already checked to fit."""
    if not activities:
        return Recorded(0, 0)
    using = router.db_for_write(AccountActivity)
    with transaction.atomic(using=using):
        _hold_chain_lock(using)
        stored = _stored_ids(using, account, [a.id for a in activities])
        now = timezone.now()
        rows = []
        for activity in activities:
            if activity.id in stored:
                continue
            stored.add(activity.id)
            rows.append(_row(account, activity, now))
        chain_append(rows)
    return Recorded(new=len(rows), already_stored=len(activities) - len(rows))


def _check_fits(activity: Activity) -> None:
    for name, limit in _LIMITS.items():
        value = getattr(activity, name)
        if value is not None and len(value) > limit:
            raise ActivityRefused(
                f"activity {activity.id[:80]!r}: {name} longer than {limit} characters"
            )


def _hold_chain_lock(using: str) -> None:
    """Take the chain's lock now (chain_append takes it again: PostgreSQL's transaction locks
    stack), so the look-up of stored ids and the append see the same table."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAINS_BY_NAME[CHAIN].lock_key])


def _stored_ids(using: str, account: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` the account has stored already.

    On PostgreSQL one probe of the unique index per id: asked as ``activity_id IN (...)``, a
    planner without statistics of the table (a first read fills it faster than autovacuum
    analyses it) scanned every row of the account through the ``(account, id)`` index for each
    page, 40 ms a page at 100,000 rows, and the first read grew with the square of its size
    (docs/benchmarks.md). The ``LATERAL ... LIMIT 1`` cannot be planned as a join: each id is
    one look-up of ``(account, activity_id)``, whatever the statistics say."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return set(
            AccountActivity.objects.using(using)
            .filter(account=account, activity_id__in=ids)
            .values_list("activity_id", flat=True)
        )
    table = connection.ops.quote_name(AccountActivity._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT x.id FROM unnest(%s::text[]) AS x(id) CROSS JOIN LATERAL"  # noqa: S608
            f" (SELECT 1 FROM {table} AS t WHERE t.account = %s AND t.activity_id = x.id"
            " LIMIT 1) AS found",
            [ids, account],
        )
        return {row[0] for row in cursor.fetchall()}


#: AccountActivity's concrete fields in their order: the key and the two hashes, then the
#: chained fields (tests/ledger/test_record.py holds this to the model).
ROW_FIELDS = ("id", "prev_hash", "hash", *CHAINS_BY_NAME[CHAIN].fields)


def _row(account: str, activity: Activity, now) -> AccountActivity:
    """The unsaved row of ``activity``: what ``AccountActivity(*values)`` builds, without the
    constructor's per-field loop and its two signals (nobody listens to them for this model):
    a first read builds 100,000 rows, and the constructor took 1 s of the writer's 8
    (docs/benchmarks.md). tests/ledger/test_record.py checks both build the same row."""
    row = AccountActivity.__new__(AccountActivity)
    row._state = ModelState()
    row.__dict__.update(
        zip(
            ROW_FIELDS,
            (
                None,  # id: the database's
                "",  # prev_hash and hash: chain_append's
                "",
                account,
                activity.id,
                activity.activity_type,
                activity.sub_type or "",
                activity.symbol or "",
                activity.side or "",
                activity.qty,
                activity.price,
                activity.net_amount,
                activity.time,
                activity.order_id or "",
                activity.status or "",
                activity.description or "",
                activity.raw,
                now,
            ),
            strict=True,
        )
    )
    return row


@dataclass
class ActivitySync:
    """What one sync of an account's activities did: what the task returns and the command
    prints (:meth:`report`). ``complete`` False with ``stop_reason``: the read stopped early
    (a page repeating or going backwards, the page bound, an activity refused); what came
    before is stored and the next sync goes on from ``cursor``."""

    account: str
    skipped: str = ""  # another sync of the account held its lock
    cursor_before: str | None = None
    cursor: str | None = None
    pages: int = 0
    api_calls: int = 0
    new: int = 0
    already_stored: int = 0
    complete: bool = False
    stop_reason: str | None = None

    def report(self) -> dict[str, object]:
        report = asdict(self)
        if not self.skipped:
            del report["skipped"]
        return report


def activities_sync(
    *, account: str | None = None, gateway: AlpacaGateway | None = None
) -> ActivitySync:
    """Read ``account``'s new activities (the default account for None) from its cursor and
    store them page by page; single-flight per account (the lock ``ledger-activities:<name>``).
    A broker failure mid-read is raised after a warning naming what was stored before it."""
    name = account_or_default(account).name
    with single_flight(f"{SYNC_LOCK}:{name}") as acquired:
        if not acquired:
            why = f"another activities sync of account {name!r} holds the lock"
            logger.info("activities: %s", why)
            return ActivitySync(account=name, skipped=why)
        gateway = gateway if gateway is not None else broker_gateway(name)
        return _sync(name, gateway)


def _sync(account: str, gateway: AlpacaGateway) -> ActivitySync:
    result = ActivitySync(account=account, cursor_before=activity_cursor(account=account))
    refused: str | None = None
    pages = 0
    end: ReadEnd | None = None
    with gateway.count_calls(current_thread_only=True) as calls:
        try:
            # The reader's calls count here too (gateway.count_calls_as): see ledger.reader.
            with PageReader(gateway, after_id=result.cursor_before) as reader:
                for batch, end in reader.batches(BATCH_ROWS):
                    taken, refused = _record_pages(account, batch, result)
                    pages += taken
                    if refused is not None:
                        break  # closing the reader stops it at its next page
                    if end is not None and end.error is not None:
                        raise end.error  # after every page read before it was stored
        except Exception:
            logger.warning(
                "activities of account %r: the read failed after %s new row(s) were stored;"
                " the next sync goes on from the cursor",
                account,
                result.new,
            )
            raise
        finally:
            result.api_calls = calls.total
            if result.new:
                chain_heads_record_moved(recorded_by=ACTOR)  # the new rows are covered
    result.cursor = activity_cursor(account=account)
    if refused is not None:
        result.pages, result.stop_reason = pages, f"refused {refused}"
    else:
        read = end.read if end is not None else None
        assert read is not None  # the reader's end is a read or an error, raised above
        result.pages, result.complete, result.stop_reason = (
            read.pages,
            read.complete,
            read.stop_reason,
        )
    if not result.complete:
        logger.warning(
            "activities of account %r: read stopped early (%s); %s new row(s) stored, the next"
            " sync goes on from %s",
            account,
            result.stop_reason,
            result.new,
            result.cursor,
        )
    return result


def _record_pages(
    account: str, pages: list[list[Activity]], result: ActivitySync
) -> tuple[int, str | None]:
    """Store ``pages`` in one transaction, up to the first page holding an activity the table
    cannot hold (nothing of that page is stored, as when pages were stored one by one); gives
    the pages taken (the refused one included) and the refusal, if any."""
    fitting: list[Activity] = []
    taken, refused = 0, None
    for page in pages:
        taken += 1
        try:
            for activity in page:
                _check_fits(activity)
        except ActivityRefused as exc:
            refused = str(exc)
            break
        fitting.extend(page)
    recorded = _record(account, fitting)
    result.new += recorded.new
    result.already_stored += recorded.already_stored
    return taken, refused
