"""A compliance officer finds an order by a lower-case symbol and by one signal of a
multi-signal mismatch, opens its timeline from the attempt page, reads it in time order and
follows a link, in a real browser."""

from datetime import datetime
from decimal import Decimal

import pytest

from orders.models import OrderEvent
from reconciliation.diff import ReconciliationErrors
from tests import factories
from tests.browser.conftest import admin_login, search_list
from tests.workspace.helpers import local_signal, record_mismatch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _story():
    local_signal("ux-msft", symbol="MSFT", client_order_id="bo-ux-msft-entry")
    attempt = factories.order_attempt(
        client_order_id="bo-ux-msft-entry", signal_id="ux-msft", symbol="MSFT", qty=Decimal("10")
    )
    factories.order_attempt(client_order_id="bo-ux-aapl-entry", signal_id="ux-aapl")
    factories.order_event(
        attempt=attempt,
        kind=OrderEvent.Kind.REQUEST_SENT,
        message="POST /v2/orders",
        payload={"symbol": "MSFT", "qty": "10"},
    )
    factories.order_event(attempt=attempt, kind=OrderEvent.Kind.RESPONSE, message="accepted")
    mismatch = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH,
        symbol="MSFT",
        signal_ids=("demo-msft", "ux-msft", "ux-test-1"),
        expected_qty=Decimal("30"),
        actual_qty=Decimal("10"),
    )
    factories.order_event(
        attempt=attempt, kind=OrderEvent.Kind.RESYNC_REQUESTED, actor="olivia", message="re-sync"
    )
    return attempt, mismatch


def test_compliance_finds_an_order_and_reads_its_timeline(page, live_server):
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    _attempt, mismatch = _story()
    admin_login(page, live_server, "cora", "pw-for-tests-1")

    # One signal of a three-signal mismatch finds the mismatch.
    page.goto(f"{live_server.url}/admin/reconciliation/mismatch/")
    search_list(page, "ux-msft")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    rows.first.locator("th a").click()
    page.wait_for_selector(".mismatch-signal")
    signals = page.locator(".mismatch-signal .signal-id").all_inner_texts()
    assert signals == ["demo-msft", "ux-msft", "ux-test-1"]

    # A lower-case symbol finds the order.
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    search_list(page, "msft")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert rows.first.locator("td.field-qty_display").inner_text() == "10"
    rows.first.locator("th a").click()
    page.wait_for_selector(".related-mismatch, .field-related_mismatches")

    # From the attempt's page to its timeline.
    page.locator("a.timeline-link").first.click()
    page.wait_for_url("**/admin/timeline/bo-ux-msft-entry/")
    entries = page.locator("#timeline-entries tr.timeline-entry")
    stamps = [
        datetime.fromisoformat(entries.nth(i).get_attribute("data-at"))
        for i in range(entries.count())
    ]
    assert len(stamps) >= 5 and stamps == sorted(stamps)
    titles = page.locator("#timeline-entries td.title").all_inner_texts()
    first = {
        name: next(i for i, t in enumerate(titles) if t.startswith(name))
        for name in (
            "Order attempt recorded",
            "Request sent",
            "Broker response",
            "Quantity mismatch",
            "Re-sync requested by olivia",
        )
    }
    assert list(first.values()) == sorted(first.values()), titles
    assert "active" in page.locator("#timeline-signal").inner_text()
    # The payload is folded until opened.
    request_row = entries.nth(first["Request sent"])
    assert not request_row.locator("details pre").is_visible()
    request_row.locator("details summary").click()
    assert '"symbol": "MSFT"' in request_row.locator("details pre").inner_text()

    # A link leads to the mismatch's row.
    entries.nth(first["Quantity mismatch"]).get_by_role(
        "link", name=f"mismatch #{mismatch.pk}"
    ).click()
    page.wait_for_url(f"**/admin/reconciliation/mismatch/{mismatch.pk}/change/")
    assert "Quantity mismatch" in page.inner_text("#content")
