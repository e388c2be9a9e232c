"""The dashboard on the admin index in a real browser: what a compliance officer sees first."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reconciliation.models import Mismatch
from reconciliation.records import mismatches_complete
from tests import factories
from tests.browser.conftest import admin_login

# serialized_rollback: the database is left as the migrations made it (groups, content types) for
# the serialized tests that follow, as the other compliance browser tests do.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture(autouse=True)
def _no_redis(settings):
    settings.REDIS_URL = None


def test_compliance_reads_the_books_at_a_glance_and_follows_the_links(page, live_server):
    factories.staff_user(group="compliance", username="carl", password="pw-for-tests-1")
    now = timezone.now()
    older = factories.reconciliation_run(
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=10) + timedelta(seconds=1),
        summary={"by_kind": {"ORPHAN_POSITION": 1, "QTY_MISMATCH": 2}},
        mismatches_found=3,
    )
    row = factories.mismatch(run=older, action=Mismatch.Action.REPAIR_STARTED)
    mismatches_complete(
        rows=[row], outcomes={0: (Mismatch.Action.SIGNAL_CLOSED_MANUAL, "")}, actor="test"
    )
    last = factories.reconciliation_run(
        status="failed",
        error="BrokerUnavailable: broker unreachable",
        started_at=now,
        finished_at=now + timedelta(seconds=2),
        summary={"by_kind": {"ORDER_NOT_FOUND": 1}},
        mismatches_found=1,
    )
    for status in ("open", "partially_filled", "filled"):
        factories.order_attempt(status=status)
    external = []
    page.on(
        "request",
        lambda r: external.append(r.url) if not r.url.startswith(live_server.url) else None,
    )

    admin_login(page, live_server, "carl", "pw-for-tests-1")

    last_run = page.inner_text("#dashboard-last-run")
    assert f"Run #{last.pk}" in last_run and "Failed" in last_run
    assert "broker unreachable" in last_run
    assert page.inner_text("#dashboard-open-attempts .figure") == "2"
    assert page.inner_text("#dashboard-closed-today .figure") == "1"
    assert "Not configured" in page.inner_text("#dashboard-rate-limiter")
    chart = page.locator("#dashboard-mismatch-chart svg")
    assert chart.is_visible()
    assert chart.locator("a.chart-day").count() == 14  # one column per day
    # Counts and dates are written on the chart, not only in tooltips.
    counts = [int(t) for t in chart.locator("text.chart-count").all_text_contents()]
    assert sum(counts) == 4 and len(counts) == 14
    assert len(chart.locator("text.chart-date").all_text_contents()) == 14
    assert [int(t) for t in chart.locator(".chart-tick text").all_text_contents()][-1] == max(
        counts
    )
    box = chart.bounding_box()
    assert box["width"] > 0 and box["height"] > 100
    totals = page.inner_text("#dashboard-kind-totals")
    assert "Quantity mismatch\t2" in totals and "Order not found\t1" in totals
    assert external == []  # nothing fetched from a CDN or anywhere else

    page.click("#dashboard-open-attempts a")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 2

    page.goto(f"{live_server.url}/admin/")
    page.click(f"#dashboard-last-run a:has-text('Run #{last.pk}')")
    page.wait_for_url(f"**/reconciliation/reconciliationrun/{last.pk}/change/")


def test_compliance_no_longer_sees_the_scheduler_internals(page, live_server):
    factories.staff_user(group="compliance", username="carl", password="pw-for-tests-1")
    factories.staff_user(group="operations", username="olga", password="pw-for-tests-1")
    admin_login(page, live_server, "carl", "pw-for-tests-1")
    index = page.inner_text("#content-main")
    assert "Periodic tasks" in index
    for internal in ("Clocked", "Crontabs", "Intervals", "Solar events"):
        assert internal not in index
    response = page.goto(f"{live_server.url}/admin/django_celery_beat/intervalschedule/")
    assert response.status == 403

    page.context.clear_cookies()
    admin_login(page, live_server, "olga", "pw-for-tests-1")
    index = page.inner_text("#content-main")
    for internal in ("Clocked", "Crontabs", "Intervals", "Solar events"):
        assert internal in index
