"""The admin index's dashboard (docs/design.md section 7): the state of the books at a glance.

:func:`dashboard_read` assembles everything the template shows, in a fixed number of queries
whatever the size of the trail (four: the last run, the recent finished runs, the open attempts,
the signals closed today), plus one Redis read for the rate limiter:
- the last run and its status;
- mismatches by kind over the last :data:`RECENT_RUNS` finished runs, from each run's own
  ``summary["by_kind"]`` (no scan of the mismatch table), laid out as a stacked column chart
  (:func:`mismatch_chart`, pure) that the template draws as inline SVG;
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
from datetime import datetime, time, timedelta
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

#: How many finished runs the mismatch chart covers.
RECENT_RUNS = 20
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

# Chart geometry (SVG user units).
CHART_HEIGHT = 120
COLUMN_WIDTH = 18
COLUMN_GAP = 6


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
    run_id: int
    started_at: datetime
    status: str
    total: int
    x: float
    segments: tuple[Segment, ...]


@dataclass(frozen=True)
class KindTotal:
    kind: str
    label: str
    count: int
    colour: str


@dataclass(frozen=True)
class MismatchChart:
    """Stacked columns, oldest run on the left; ``totals`` per kind (every kind, zeros too)."""

    columns: tuple[Column, ...]
    totals: tuple[KindTotal, ...]
    width: float
    height: float
    peak: int

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


def mismatch_chart(runs: Sequence[tuple[int, datetime, str, Mapping[str, int]]]) -> MismatchChart:
    """The chart of ``runs`` (id, started_at, status, counts by kind), given newest first."""
    labels = dict(Mismatch.Kind.choices)
    ordered = list(reversed(runs))
    peak = max((sum(by_kind.values()) for *_, by_kind in ordered), default=0)
    scale = CHART_HEIGHT / peak if peak else 0.0
    columns = []
    totals = dict.fromkeys(Mismatch.Kind.values, 0)
    for index, (run_id, started_at, status, by_kind) in enumerate(ordered):
        y = float(CHART_HEIGHT)
        segments = []
        for kind in _kinds_in_order(by_kind):
            count = by_kind[kind]
            if count <= 0:
                continue
            totals[kind] = totals.get(kind, 0) + count
            height = count * scale
            y -= height
            segments.append(
                Segment(
                    kind=kind,
                    label=labels.get(kind, kind),
                    count=count,
                    y=round(y, 2),
                    height=round(height, 2),
                    colour=KIND_COLOURS.get(kind, UNLISTED_COLOUR),
                )
            )
        columns.append(
            Column(
                run_id=run_id,
                started_at=started_at,
                status=status,
                total=sum(s.count for s in segments),
                x=index * (COLUMN_WIDTH + COLUMN_GAP),
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
    )


def _kinds_in_order(by_kind: Mapping[str, int]) -> list[str]:
    known = [k for k in Mismatch.Kind.values if k in by_kind]
    return known + sorted(k for k in by_kind if k not in KIND_COLOURS)


def _counts(summary: object) -> dict[str, int]:
    by_kind = summary.get("by_kind") if isinstance(summary, dict) else None
    if not isinstance(by_kind, dict):
        return {}
    return {str(k): v for k, v in by_kind.items() if isinstance(v, int) and v > 0}


def today_start(now: datetime | None = None) -> datetime:
    """Midnight today in the site's time zone (``TIME_ZONE``), as an aware datetime."""
    local = timezone.localtime(now or timezone.now())
    return timezone.make_aware(datetime.combine(local.date(), time.min), local.tzinfo)


def dashboard_read(
    *,
    recent_runs: int = RECENT_RUNS,
    now: datetime | None = None,
    visible: frozenset[str] | None = None,
) -> Dashboard:
    """Everything the dashboard shows; four queries and one Redis read, whatever the volume.
    ``visible``: the accounts the reader sees (None: every account)."""
    runs = only_visible(ReconciliationRun.objects.all(), visible)
    last_run = runs.order_by("-started_at", "-id").first()
    recent = list(
        runs.filter(status__in=FINISHED)
        .order_by("-started_at", "-id")
        .values_list("id", "started_at", "status", "summary")[:recent_runs]
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
    chart = mismatch_chart([(i, at, status, _counts(s)) for i, at, status, s in recent])
    return Dashboard(
        last_run=last_run,
        chart=chart,
        runs_charted=len(recent),
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
