"""Reads of the stored activities (docs/design.md section 18.2): the cursor, and what the
explained breaks and the incremental runs will ask (an account's activities after a point, an
order's, a symbol's).

Order: rows are stored in the order the read took them (ascending ids, checked by the gateway)
and the chain's lock makes the primary key follow that order, so ``id`` is booking order within
an account. Sorting by ``activity_id`` in SQL is avoided on purpose: PostgreSQL compares text
by the database's collation, which need not be the code-point order the gateway checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db.models import QuerySet

from brokerops.alpaca.types import ACTIVITY_FAMILIES

from .models import AccountActivity


def activity_cursor(*, account: str) -> str | None:
    """Alpaca's id of the account's last stored activity (the next read starts after it), or
    None when nothing is stored yet. One probe of the ``(account, id)`` index."""
    return (
        AccountActivity.objects.filter(account=account)
        .order_by("-id")
        .values_list("activity_id", flat=True)
        .first()
    )


def activities_after(
    *, account: str, after_pk: int | None = None, families: Iterable[str] | None = None
) -> QuerySet[AccountActivity]:
    """The account's activities stored after the row ``after_pk`` (all when None), in booking
    order; ``families`` keeps those of the given families (``SPLIT`` also takes ``SSP``, the
    families of :attr:`brokerops.alpaca.types.Activity.family`). A ``DIV*`` or unknown type is
    matched by its own type name."""
    rows = AccountActivity.objects.filter(account=account)
    if after_pk is not None:
        rows = rows.filter(pk__gt=after_pk)
    if families is not None:
        wanted = {f.upper() for f in families}
        types = {code for code, family in ACTIVITY_FAMILIES.items() if family in wanted}
        rows = rows.filter(activity_type__in=types | wanted)
    return rows.order_by("id")


def activities_for_orders(*, order_ids: Iterable[str]) -> QuerySet[AccountActivity]:
    """The activities naming these Alpaca order ids (their fills), in booking order."""
    ids = [i for i in order_ids if i]
    return AccountActivity.objects.filter(order_id__in=ids).order_by("id")


def activities_for_symbol(
    *, account: str, symbols: Iterable[str], since: datetime | None = None
) -> QuerySet[AccountActivity]:
    """The account's activities on any of ``symbols`` (each stored form: ``BTCUSD`` and
    ``BTC/USD`` are two), occurred at or after ``since`` when given, in booking order."""
    rows = AccountActivity.objects.filter(account=account, symbol__in=list(symbols))
    if since is not None:
        rows = rows.filter(occurred_at__gte=since)
    return rows.order_by("id")
