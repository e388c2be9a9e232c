"""The admin index's dashboard (docs/design.md section 7): the state of the books at a glance.

:func:`dashboard_read` assembles everything the template shows, in a fixed number of queries
whatever the size of the trail (four: the last run, the recent finished runs, the open attempts,
the signals closed today), plus one Redis read for the rate limiter:
- the last run and its status;
- mismatches by kind per day over the last :data:`CHART_DAYS` days (the viewer's days: their
  zone, :mod:`workspace.zone`), from each finished run's own ``summary["by_kind"]`` (no scan
  of the mismatch table), laid out as a stacked column chart with its axes, dates and counts
  written out (:func:`mismatch_chart`, pure) that the template draws as inline SVG;
- open (non-final) attempts, counted over the ``(status, created_at)`` index;
- signals closed by reconciliation today (``CLOSED_MANUAL`` repairs: their ``RunEvent``);
- the shared rate limiter, read without taking a token.

A reader limited to some accounts (:mod:`workspace.access`) gets every figure, chart and list
from their accounts' rows only, and no limiter of an account they do not see.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import timezone

from brokerops.accounts import configured
from brokerops.alpaca import PAPER_BROKER_KEYS, BrokerUnavailable
from orders import lifecycle
from orders.models import OrderAttempt
from reconciliation.models import Mismatch, ReconciliationRun, RunEvent
from workspace.access import may_see, only_visible

if TYPE_CHECKING:  # the limiter (redis) loads when the dashboard first reads it, not at start-up
    from brokerops.alpaca.limiter import LimiterState, RedisLimiter

logger = logging.getLogger(__name__)

#: How many days the mismatch chart covers (today included).
CHART_DAYS = 14
#: Run statuses that carry a ``summary["by_kind"]`` (a finished run, even one that failed).
FINISHED = (ReconciliationRun.Status.SUCCEEDED, ReconciliationRun.Status.FAILED)

# One colour per kind, told apart by a colour-blind reader too (Okabe-Ito plus two greys).
KIND_COLOURS: dict[str, str] = {
    Mismatch.Kind.ORPHAN_POSITION: "#D55E00",
    Mismatch.Kind.UNTRACKED_POSITION: "#E69F00",
    Mismatch.Kind.QTY_MISMATCH: "#0072B2",
    Mismatch.Kind.SIDE_MISMATCH: "#CC79A7",
    Mismatch.Kind.ORDER_NOT_FOUND: "#000000",
    Mismatch.Kind.ORDER_STATUS_DRIFT: "#56B4E9",
    Mismatch.Kind.UNKNOWN_ORDER: "#009E73",
    Mismatch.Kind.INVALID_SIGNAL: "#999999",
}
UNLISTED_COLOUR = "#666666"

# Chart geometry (SVG user units): the plot, and margins for the count axis (left), the counts
# above the columns (top) and the dates (bottom).
CHART_HEIGHT = 120
COLUMN_WIDTH = 26
COLUMN_GAP = 10
AXIS_LEFT = 34
AXIS_TOP = 16
AXIS_BOTTOM = 30


@dataclass(frozen=True)
class Segment:
    kind: str
    label: str
    count: int
    y: float
    height: float
    colour: str


@dataclass(frozen=True)
class Column:
    """One day: its mismatches by kind over the runs that started that day."""

    day: date
    runs: int
    total: int
    x: float
    segments: tuple[Segment, ...]

    @property
    def label(self) -> str:
        return f"{self.day:%b} {self.day.day}"  # "Dec 5"

    @property
    def centre(self) -> float:
        return self.x + COLUMN_WIDTH / 2

    @property
    def top(self) -> float:
        """Where the column's count is written (just above it)."""
        return min((s.y for s in self.segments), default=float(CHART_HEIGHT))


@dataclass(frozen=True)
class Tick:
    """A line of the count axis: its value and its height."""

    value: int
    y: float


@dataclass(frozen=True)
class KindTotal:
    kind: str
    label: str
    count: int
    colour: str


@dataclass(frozen=True)
class MismatchChart:
    """Stacked columns, one per day, oldest on the left (days without a run too); ``totals``
    per kind (every kind, zeros too); ``ticks`` the count axis."""

    columns: tuple[Column, ...]
    totals: tuple[KindTotal, ...]
    width: float
    height: float
    peak: int
    ticks: tuple[Tick, ...] = ()
    runs: int = 0

    @property
    def left(self) -> int:
        return AXIS_LEFT

    @property
    def top(self) -> int:
        return AXIS_TOP

    @property
    def outer_width(self) -> float:
        return AXIS_LEFT + self.width

    @property
    def outer_height(self) -> float:
        return AXIS_TOP + self.height + AXIS_BOTTOM

    @property
    def total(self) -> int:
        return sum(t.count for t in self.totals)


@dataclass(frozen=True)
class LimiterView:
    """What the dashboard says about the rate limiter: ``configured`` False without Redis (each
    process then has its own, which the admin cannot see); ``error`` when Redis did not answer."""

    configured: bool
    state: LimiterState | None = None
    error: str = ""
    hidden: bool = False  # another account's (the reader does not see it)


@dataclass(frozen=True)
class Dashboard:
    last_run: ReconciliationRun | None
    chart: MismatchChart
    runs_charted: int
    open_attempts: int
    open_statuses: tuple[str, ...]
    signals_closed_today: int
    today_start: datetime
    limiter: LimiterView
    accounts: tuple[str, ...] | None = None  # the reader's accounts (None: every account)
    days_charted: int = CHART_DAYS


def mismatch_chart(
    runs: Sequence[tuple[datetime, Mapping[str, int]]], *, days: Sequence[date]
) -> MismatchChart:
    """The chart of ``runs`` (started_at, counts by kind) over ``days`` (oldest first), each
    run counted on its day in the active time zone; runs outside ``days`` are left out."""
    labels = dict(Mismatch.Kind.choices)
    per_day: dict[date, dict[str, int]] = {day: {} for day in days}
    runs_per_day = dict.fromkeys(days, 0)
    for started_at, by_kind in runs:
        day = timezone.localtime(started_at).date()
        if day not in per_day:
            continue
        runs_per_day[day] += 1
        for kind, count in by_kind.items():
            per_day[day][kind] = per_day[day].get(kind, 0) + count
    peak = max((sum(c.values()) for c in per_day.values()), default=0)
    scale = CHART_HEIGHT / peak if peak else 0.0
    totals = dict.fromkeys(Mismatch.Kind.values, 0)
    columns = []
    for index, day in enumerate(days):
        by_kind = per_day[day]
        y = float(CHART_HEIGHT)
        segments = []
        for kind in _kinds_in_order(by_kind):
            count = by_kind[kind]
            if count <= 0:
                continue
            totals[kind] = totals.get(kind, 0) + count
            y -= count * scale
            segments.append(
                Segment(
                    kind=kind,
                    label=labels.get(kind, kind),
                    count=count,
                    y=round(y, 2),
                    height=round(count * scale, 2),
                    colour=KIND_COLOURS.get(kind, UNLISTED_COLOUR),
                )
            )
        columns.append(
            Column(
                day=day,
                runs=runs_per_day[day],
                total=sum(s.count for s in segments),
                x=COLUMN_GAP / 2 + index * (COLUMN_WIDTH + COLUMN_GAP),
                segments=tuple(segments),
            )
        )
    return MismatchChart(
        columns=tuple(columns),
        totals=tuple(
            KindTotal(
                kind=kind,
                label=labels.get(kind, kind),
                count=count,
                colour=KIND_COLOURS.get(kind, UNLISTED_COLOUR),
            )
            for kind, count in totals.items()
        ),
        width=max(len(columns), 1) * (COLUMN_WIDTH + COLUMN_GAP),
        height=CHART_HEIGHT,
        peak=peak,
        ticks=_ticks(peak),
        runs=sum(runs_per_day.values()),
    )


def _ticks(peak: int) -> tuple[Tick, ...]:
    """0, the peak, and a whole number halfway when there is one."""
    values = sorted({0, peak, peak // 2} if peak >= 2 else {0, peak})
    return tuple(
        Tick(value=v, y=round(CHART_HEIGHT - (v * CHART_HEIGHT / peak if peak else 0), 2))
        for v in values
    )


def chart_days(*, days: int = CHART_DAYS, now: datetime | None = None) -> list[date]:
    """The last ``days`` days in the active time zone, oldest first, today last."""
    today = timezone.localtime(now or timezone.now()).date()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def _kinds_in_order(by_kind: Mapping[str, int]) -> list[str]:
    known = [k for k in Mismatch.Kind.values if k in by_kind]
    return known + sorted(k for k in by_kind if k not in KIND_COLOURS)


def _counts(by_kind: object) -> dict[str, int]:
    if not isinstance(by_kind, dict):
        return {}
    return {str(k): v for k, v in by_kind.items() if isinstance(v, int) and v > 0}


def today_start(now: datetime | None = None) -> datetime:
    """Midnight today in the site's time zone (``TIME_ZONE``), as an aware datetime."""
    local = timezone.localtime(now or timezone.now())
    return timezone.make_aware(datetime.combine(local.date(), time.min), local.tzinfo)


def dashboard_read(
    *,
    days: int = CHART_DAYS,
    now: datetime | None = None,
    visible: frozenset[str] | None = None,
) -> Dashboard:
    """Everything the dashboard shows; four queries and one Redis read, whatever the volume.
    ``visible``: the accounts the reader sees (None: every account)."""
    runs = only_visible(ReconciliationRun.objects.all(), visible)
    last_run = runs.order_by("-started_at", "-id").first()
    charted = chart_days(days=days, now=now)
    since = timezone.make_aware(datetime.combine(charted[0], time.min))
    recent = list(
        runs.filter(status__in=FINISHED, started_at__gte=since)
        .order_by("started_at", "id")
        .values_list("started_at", "summary__by_kind")
    )
    open_statuses = tuple(sorted(lifecycle.OPEN))
    open_attempts = only_visible(
        OrderAttempt.objects.filter(status__in=open_statuses), visible
    ).count()
    midnight = today_start(now)
    closed_today = only_visible(
        RunEvent.objects.filter(
            kind=RunEvent.Kind.REPAIR_OUTCOME,
            action=Mismatch.Action.SIGNAL_CLOSED_MANUAL,
            created_at__gte=midnight,
            created_at__lt=midnight + timedelta(days=1),
        ),
        visible,
        path="run__account",
    ).count()
    chart = mismatch_chart([(at, _counts(by_kind)) for at, by_kind in recent], days=charted)
    return Dashboard(
        last_run=last_run,
        chart=chart,
        runs_charted=len(recent),
        days_charted=days,
        open_attempts=open_attempts,
        open_statuses=open_statuses,
        signals_closed_today=closed_today,
        today_start=midnight,
        # The limiter is the ALPACA_* key's: the rows owner's account.
        limiter=(
            limiter_view()
            if may_see(visible, configured().rows_owner)
            else LimiterView(configured=True, hidden=True)
        ),
        accounts=None if visible is None else tuple(sorted(visible)),
    )


def limiter_view() -> LimiterView:
    """The shared (Redis) limiter of the configured API key, read without taking a token."""
    if not settings.REDIS_URL:
        return LimiterView(configured=False)
    limiter = _limiter(
        settings.REDIS_URL,
        settings.ALPACA_API_KEY or PAPER_BROKER_KEYS[0],
        settings.ALPACA_RATE_LIMIT_PER_MIN,
        settings.ALPACA_MAX_PAUSE_S,
    )
    try:
        return LimiterView(configured=True, state=limiter.state())
    except BrokerUnavailable as exc:
        logger.warning("dashboard: %s", exc)
        return LimiterView(configured=True, error=str(exc))


@lru_cache(maxsize=4)
def _limiter(url: str, api_key: str, rate_per_min: int, max_pause_s: float) -> RedisLimiter:
    # The gateway's own construction (gateway_from_settings), so the key scope is the same.
    from brokerops.alpaca.limiter import RedisLimiter

    return RedisLimiter.from_url(url, rate_per_min, api_key=api_key, max_pause_s=max_pause_s)
