"""The ledger's writer and its sync (docs/design.md section 18.2).

:func:`activities_record` is the one writer of :class:`~ledger.models.AccountActivity`: it
stores the activities of one account not stored yet, in the order given, skipping (never
failing on) an id already there. :func:`activities_sync` reads an account's new activities from
its cursor through the gateway and records each page as it arrives, so a crash mid-read loses
nothing stored and the next sync goes on from the cursor.

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
from django.utils import timezone

from audit.chain import CHAINS_BY_NAME, chain_append
from audit.services import chain_heads_record_moved
from brokerops.alpaca import broker_gateway
from brokerops.alpaca.accounts import account_or_default
from brokerops.alpaca.types import Activity
from brokerops.locks import single_flight

from .models import CODE_MAX, ID_MAX, ORDER_ID_MAX, SYMBOL_MAX, AccountActivity
from .selectors import activity_cursor

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)

CHAIN = "account_activities"
#: The single-flight lock of an account's sync: ``f"{SYNC_LOCK}:{account}"``.
SYNC_LOCK = "ledger-activities"
ACTOR = "activities-sync"
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
    if not activities:
        return Recorded(0, 0)
    using = router.db_for_write(AccountActivity)
    with transaction.atomic(using=using):
        _hold_chain_lock(using)
        ids = [a.id for a in activities]
        stored = set(
            AccountActivity.objects.using(using)
            .filter(account=account, activity_id__in=ids)
            .values_list("activity_id", flat=True)
        )
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


def _row(account: str, activity: Activity, now) -> AccountActivity:
    return AccountActivity(
        account=account,
        activity_id=activity.id,
        activity_type=activity.activity_type,
        sub_type=activity.sub_type or "",
        symbol=activity.symbol or "",
        side=activity.side or "",
        qty=activity.qty,
        price=activity.price,
        net_amount=activity.net_amount,
        occurred_at=activity.time,
        order_id=activity.order_id or "",
        status=activity.status or "",
        description=activity.description or "",
        raw=activity.raw,
        recorded_at=now,
    )


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
    refused: list[str] = []
    pages_taken = [0]

    def on_page(page: list[Activity]) -> None:
        pages_taken[0] += 1
        try:
            recorded = activities_record(account=account, activities=page)
        except ActivityRefused as exc:
            refused.append(str(exc))
            raise
        result.new += recorded.new
        result.already_stored += recorded.already_stored

    with gateway.count_calls(current_thread_only=True) as calls:
        try:
            read = gateway.read_activities(
                after_id=result.cursor_before, on_page=on_page, keep=False
            )
        except ActivityRefused:
            read = None
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
    if read is None:
        result.pages, result.stop_reason = pages_taken[0], f"refused {refused[0]}"
    else:
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
