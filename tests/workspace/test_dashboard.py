"""The dashboard on the admin index (docs/design.md section 7): last run, mismatches by kind over
the last runs (inline SVG, no CDN), open attempts, signals closed today, the rate limiter."""

import re
from datetime import timedelta

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from brokerops.alpaca import PAPER_BROKER_KEYS
from brokerops.alpaca.limiter import RedisLimiter
from orders import lifecycle
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.records import mismatches_complete
from tests import factories
from workspace import dashboard as dashboard_module
from workspace.dashboard import chart_days, dashboard_read, mismatch_chart, today_start

pytestmark = pytest.mark.django_db
Status = ReconciliationRun.Status


@pytest.fixture(autouse=True)
def _no_redis(settings):
    settings.REDIS_URL = None
    dashboard_module._limiter.cache_clear()


def finished_run(by_kind: dict[str, int], *, minutes_ago: int = 0, **fields) -> ReconciliationRun:
    fields.setdefault("status", Status.SUCCEEDED)
    at = timezone.now() - timedelta(minutes=minutes_ago)
    return factories.reconciliation_run(
        summary={"by_kind": by_kind},
        mismatches_found=sum(by_kind.values()),
        started_at=at,
        finished_at=at + timedelta(seconds=2),
        **fields,
    )


def closed_signal(run: ReconciliationRun) -> None:
    row = factories.mismatch(run=run, action=Mismatch.Action.REPAIR_STARTED)
    mismatches_complete(
        rows=[row], outcomes={0: (Mismatch.Action.SIGNAL_CLOSED_MANUAL, "")}, actor="test"
    )


def test_chart_stacks_kinds_per_day_oldest_first_scaled_to_the_busiest_day():
    now = timezone.now()
    days = chart_days(days=3, now=now)
    yesterday = now - timedelta(days=1)
    chart = mismatch_chart(
        [
            (yesterday, {"ORPHAN_POSITION": 3}),
            (yesterday, {"QTY_MISMATCH": 1}),  # two runs the same day add up
            (now, {"QTY_MISMATCH": 1}),
            (now - timedelta(days=30), {"QTY_MISMATCH": 9}),  # outside the days: left out
        ],
        days=days,
    )
    assert [c.day for c in chart.columns] == days  # every day, the empty one too
    empty, first, second = chart.columns
    assert empty.total == 0 and empty.segments == () and empty.runs == 0
    assert first.total == 4 and first.runs == 2 and chart.peak == 4 and chart.runs == 3
    assert [s.kind for s in first.segments] == ["ORPHAN_POSITION", "QTY_MISMATCH"]
    assert sum(s.height for s in first.segments) == pytest.approx(chart.height)
    assert second.segments[0].height == pytest.approx(chart.height / 4)
    assert second.segments[0].y == pytest.approx(chart.height * 3 / 4)
    totals = {t.kind: t.count for t in chart.totals}
    assert totals["ORPHAN_POSITION"] == 3 and totals["QTY_MISMATCH"] == 2
    assert set(totals) == set(Mismatch.Kind.values)  # every kind listed, zeros too
    assert empty.x < first.x < second.x
    assert [t.value for t in chart.ticks] == [0, 2, 4]
    assert first.label == f"{first.day:%b} {first.day.day}"


def test_chart_of_no_runs_has_its_days_and_nothing_else():
    chart = mismatch_chart([], days=chart_days(days=14))
    assert len(chart.columns) == 14 and chart.total == 0 and chart.peak == 0 and chart.runs == 0


def test_dashboard_reads_the_last_run_recent_kinds_open_attempts_and_closed_today():
    older = finished_run({"ORPHAN_POSITION": 2}, minutes_ago=30)
    finished_run({"QTY_MISMATCH": 1, "UNKNOWN_ORDER": 1}, minutes_ago=20)
    skipped = factories.reconciliation_run(status=Status.SKIPPED)
    for status in ("open", "partially_filled", "created", "unknown", "filled", "canceled"):
        factories.order_attempt(status=status)
    closed_signal(older)
    closed_signal(older)
    other = factories.mismatch(run=older, action=Mismatch.Action.REPAIR_STARTED)
    mismatches_complete(
        rows=[other], outcomes={0: (Mismatch.Action.ATTEMPT_MARKED_MISSING, "")}, actor="test"
    )

    d = dashboard_read()

    assert d.last_run == skipped  # the latest, whatever its status
    assert d.runs_charted == 2  # finished runs only
    totals = {t.kind: t.count for t in d.chart.totals}
    assert totals["ORPHAN_POSITION"] == 2 and totals["UNKNOWN_ORDER"] == 1
    assert d.open_attempts == 4
    assert d.signals_closed_today == 2
    assert not d.limiter.configured
    tomorrow = today_start() + timedelta(days=1, hours=1)
    assert dashboard_read(now=tomorrow).signals_closed_today == 0


def test_dashboard_charts_the_runs_of_the_last_days_only():
    for minutes in range(3):
        finished_run({"QTY_MISMATCH": 1}, minutes_ago=minutes)
    finished_run({"QTY_MISMATCH": 1}, minutes_ago=60 * 24 * 20)  # 20 days ago
    d = dashboard_read(days=14)
    assert d.runs_charted == 3 and len(d.chart.columns) == 14


def test_dashboard_takes_the_same_few_queries_whatever_the_volume():
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            dashboard_read()
        return len(queries)

    empty = count()
    for minutes in range(30):
        run = finished_run({"QTY_MISMATCH": 2, "ORPHAN_POSITION": 1}, minutes_ago=minutes)
        factories.order_attempt(status="open")
    closed_signal(run)
    assert count() == empty == 4


def test_open_attempts_count_uses_the_status_index():
    """At a million attempts the count must not scan the table (docs/design.md section 8)."""
    if connection.vendor != "postgresql":
        pytest.skip("query plans checked on PostgreSQL")
    statuses = sorted(lifecycle.OPEN)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT count(*) FROM orders_orderattempt WHERE status = ANY(%s)", [statuses]
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "attempt_status_created" in plan, plan


def test_limiter_state_is_read_from_the_shared_bucket_without_taking_a_token(settings, redis_url):
    settings.REDIS_URL = redis_url
    settings.ALPACA_API_KEY = None
    client = redis.Redis.from_url(redis_url)
    limiter = RedisLimiter(
        client,
        settings.ALPACA_RATE_LIMIT_PER_MIN,
        api_key=PAPER_BROKER_KEYS[0],
        max_pause_s=settings.ALPACA_MAX_PAUSE_S,
    )
    client.delete(limiter.bucket_key, limiter.pause_key)
    view = dashboard_read().limiter
    assert view.configured and not view.error
    assert view.state.tokens == pytest.approx(limiter.capacity)
    assert not view.state.paused and view.state.next_free_in_s == 0
    for _ in range(3):
        assert dashboard_read().limiter.state.tokens == pytest.approx(limiter.capacity, abs=0.01)
    limiter.acquire()  # the gateway's own use takes one
    assert dashboard_read().limiter.state.tokens < limiter.capacity
    limiter.pause(30)
    state = dashboard_read().limiter.state
    assert state.paused and 25 < state.paused_for_s <= 30
    assert state.next_free_in_s >= state.paused_for_s
    client.delete(limiter.bucket_key, limiter.pause_key)


def test_limiter_unreachable_is_shown_not_raised(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    view = dashboard_read().limiter
    assert view.configured and "Redis" in view.error


@pytest.mark.parametrize("group", ["compliance", "operations"])
def test_staff_groups_see_the_dashboard_with_links(client, group):
    run = finished_run({"ORDER_NOT_FOUND": 1, "QTY_MISMATCH": 2}, status=Status.FAILED)
    factories.order_attempt(status="open")
    client.force_login(factories.staff_user(group=group))
    page = client.get(reverse("admin:index"))
    html = page.content.decode()
    assert page.status_code == 200
    assert 'id="dashboard"' in html
    assert reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk]) in html
    assert "Failed" in html
    assert "<svg" in html and 'data-kind="ORDER_NOT_FOUND"' in html
    assert "Not configured" in html
    assert 'id="audit-verification"' in html  # kept
    for link in re.findall(r'href="([^"]*\?[^"]*)"', html.split('id="dashboard"')[1]):
        followed = client.get(link.replace("&amp;", "&"))
        assert followed.status_code == 200, link
        assert b"errornote" not in followed.content, link
    assert "http://" not in html.split('id="dashboard"')[1].split("</svg>")[0].replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )  # nothing fetched from elsewhere


def test_superuser_sees_the_dashboard(admin_client):
    assert b'id="dashboard"' in admin_client.get(reverse("admin:index")).content


def test_staff_outside_the_groups_get_no_dashboard_and_no_queries_for_it(client):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("visitor", password="x", is_staff=True))
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("admin:index"))
    assert b'id="dashboard"' not in page.content
    assert not any("reconciliation_reconciliationrun" in q["sql"] for q in queries)
