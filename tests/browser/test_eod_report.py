"""The end-of-day report page in Chromium (docs/design.md section 17): compliance opens it from
the index and reads the day's breaks, the overdue one linked."""

from datetime import timedelta

import pytest
from django.utils import timezone

from reconciliation.models import Break
from tests import factories
from tests.browser.conftest import admin_login
from tests.reconciliation.test_breaks import finding, run_with

# serialized_rollback like every browser test: the database is left as the migrations made it
# (groups, content types) for the next one, which would otherwise meet a flushed one.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_compliance_opens_the_report_from_the_index(page, live_server):
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    run_with(finding(), finding(symbol="NVDA", signal_ids=("s-2",)))
    late = Break.objects.get(symbol="TSLA")
    Break.objects.filter(pk=late.pk).update(due_at=timezone.now() - timedelta(hours=2))
    factories.order_attempt(status="rejected", reason="not tradable: HALTD")
    admin_login(page, live_server, "cora", "pw-for-tests-1")

    page.set_viewport_size({"width": 1024, "height": 800})
    page.click("#eod-report-link a")
    page.wait_for_selector("#eod-totals")
    assert "2 opened" in page.inner_text("#eod-totals")
    assert "1 overdue" in page.inner_text("#eod-totals")
    overdue = page.locator("#eod-overdue tbody tr")
    assert overdue.count() == 1 and "TSLA" in overdue.first.inner_text()
    assert "not tradable: HALTD" in page.inner_text("#eod-rejected")
    assert page.inner_text("#eod-verification") == "No verification recorded yet."
    # Readable at 1024 px: the page does not scroll sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024

    page.click("#eod-days a")  # the day before: nothing happened
    page.wait_for_selector("#eod-totals")
    assert "0 opened" in page.inner_text("#eod-totals")
