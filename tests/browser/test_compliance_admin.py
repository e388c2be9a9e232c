"""Compliance staff find all about one client_order_id in a real browser, and edit nothing."""

import pytest

from tests import factories
from tests.browser.conftest import admin_login, search_list

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_compliance_searches_an_order_and_reads_its_history(page, live_server):
    factories.staff_user(group="compliance", username="carol", password="pw-for-tests-1")
    attempt = factories.order_attempt(client_order_id="bo-sig42-entry", signal_id="sig42")
    factories.order_attempt(client_order_id="bo-sig43-entry", signal_id="sig43")
    factories.order_event(attempt=attempt, kind="request_sent", message="POST /v2/orders")
    factories.order_event(attempt=attempt, kind="response", message="accepted, status new")
    factories.mismatch(client_order_id="bo-sig42-entry", kind="ORDER_STATUS_DRIFT")

    admin_login(page, live_server, "carol", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    search_list(page, "bo-sig42-entry")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    rows.first.locator("th a").click()

    page.wait_for_selector("text=POST /v2/orders")
    body = page.inner_text("body")
    assert body.index("POST /v2/orders") < body.index("accepted, status new")
    assert "ORDER_STATUS_DRIFT" in body
    # View-only: no save button, no delete link, no add button anywhere on the way.
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("a.deletelink").count() == 0
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    assert page.locator("a.addlink").count() == 0


def test_compliance_filters_mismatches_by_kind(page, live_server):
    factories.staff_user(group="compliance", username="dana", password="pw-for-tests-1")
    factories.mismatch(kind="ORPHAN_POSITION", symbol="TSLA")
    factories.mismatch(kind="QTY_MISMATCH", symbol="MSFT", severity="warning")

    admin_login(page, live_server, "dana", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/reconciliation/mismatch/")
    page.get_by_role("link", name="Quantity mismatch").click()
    page.wait_for_url("**kind__exact=QTY_MISMATCH**")
    symbols = page.locator("#result_list tbody td.field-symbol").all_inner_texts()
    assert symbols == ["MSFT"]


def test_compliance_sees_the_audit_trail_verified_and_opens_the_verification(page, live_server):
    from audit.services import audit_verify

    factories.staff_user(group="compliance", username="erin", password="pw-for-tests-1")
    attempt = factories.order_attempt(client_order_id="bo-sig50-entry", signal_id="sig50")
    factories.order_event(attempt=attempt, kind="request_sent", message="POST /v2/orders")
    run = factories.reconciliation_run()
    audit_verify(trigger="command", processes=1)

    admin_login(page, live_server, "erin", "pw-for-tests-1")
    block = page.locator("#audit-verification")
    assert "Intact" in block.inner_text() and "1 rows" in block.inner_text()
    block.get_by_role("link", name="verification #").click()
    page.wait_for_selector(".chain-sentence")
    assert "order events: 1 row recomputed" in page.inner_text("body")  # a sentence per chain
    assert page.locator("input[name=_save]").count() == 0
    page.goto(f"{live_server.url}/admin/reconciliation/reconciliationrun/{run.pk}/change/")
    assert "Intact" in page.locator("#audit-verification").inner_text()
