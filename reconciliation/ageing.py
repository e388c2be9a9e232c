"""How old a break is and whether it is overdue (docs/design.md section 17): one definition for
``manage.py breaks``, the end-of-day report, the overdue alert and the breaks pages.

Pure: a break's age is counted from when its current episode opened (``opened_at``: a reopened
break starts again), its due time is ``due_at`` (opened plus ``BREAK_DUE_<SEVERITY>_S``), and only
a live break (open, acknowledged, proposed) can be overdue: a signed-off or cleared one is done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from .models import Break

#: States still to be worked on (the same set as :data:`reconciliation.breaks.LIVE`).
LIVE_STATES = frozenset({Break.State.OPEN, Break.State.ACKNOWLEDGED, Break.State.PROPOSED})


@dataclass(frozen=True)
class AgeBucket:
    key: str
    label: str
    #: Ages below this are in the bucket (None: no upper bound, the last bucket).
    below: timedelta | None


AGE_BUCKETS: tuple[AgeBucket, ...] = (
    AgeBucket("under_1h", "under 1 h", timedelta(hours=1)),
    AgeBucket("under_1d", "under 1 day", timedelta(days=1)),
    AgeBucket("under_3d", "under 3 days", timedelta(days=3)),
    AgeBucket("older", "3 days or older", None),
)
BUCKET_LABELS = {b.key: b.label for b in AGE_BUCKETS}


def age(opened_at: datetime, now: datetime) -> timedelta:
    """How long the break has been open (never negative: a clock a little behind is no age)."""
    return max(now - opened_at, timedelta(0))


def age_bucket(opened_at: datetime, now: datetime) -> str:
    """The key of the bucket of a break opened at ``opened_at``, at ``now``."""
    elapsed = age(opened_at, now)
    for bucket in AGE_BUCKETS:
        if bucket.below is None or elapsed < bucket.below:
            return bucket.key
    raise AssertionError("the last bucket has no bound")  # pragma: no cover


def age_bucket_q(key: str, now: datetime) -> Q:
    """The breaks in bucket ``key`` at ``now`` as a filter on ``opened_at`` (for lists and
    counts in the database); a :class:`KeyError` names an unknown bucket."""
    index = [b.key for b in AGE_BUCKETS].index(key) if key in BUCKET_LABELS else None
    if index is None:
        raise KeyError(f"no age bucket {key!r} (one of {', '.join(BUCKET_LABELS)})")
    bucket, lower = AGE_BUCKETS[index], AGE_BUCKETS[index - 1].below if index else None
    q = Q()
    if bucket.below is not None:
        q &= Q(opened_at__gt=now - bucket.below)
    if lower is not None:
        q &= Q(opened_at__lte=now - lower)
    return q


def is_overdue(*, state: str, due_at: datetime, now: datetime) -> bool:
    """A live break past its due time."""
    return state in LIVE_STATES and due_at <= now


def overdue_q(now: datetime) -> Q:
    """:func:`is_overdue` as a filter."""
    return Q(state__in=LIVE_STATES, due_at__lte=now)


def human_age(elapsed: timedelta) -> str:
    """A duration as people say it, to its largest unit: "40 s", "12 min", "3 h", "2 days" (the
    one wording of ages and due times: pages, command, report, alerts)."""
    seconds = max(0, int(elapsed.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h"
    days = seconds // 86400
    return f"{days} day" if days == 1 else f"{days} days"
