"""The workspace read like a commercial tool (issue 25, docs/compliance.md "Reading the
workspace"), in Chromium at 1400 and 1024 px: lists that fit, times in the viewer's zone to the
millisecond, the timeline in causal order, 403/404 inside the admin with a way back, a hint
when an exact search finds nothing, rejection reasons and their filter, no empty History."""

import os
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from orders.models import OrderAttempt, OrderEvent
from reconciliation.diff import ReconciliationErrors
from tests import factories
from tests.browser.conftest import admin_login
from tests.workspace.helpers import execution, local_signal, record_mismatch

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = (1400, 1024)
LONG_ID = "bo-" + "a1b2c3d4e5f6" * 4 + "-entry"
#: Screenshots for a person to look at (never committed): set POLISH_SHOTS to a directory.
SHOTS = os.environ.get("POLISH_SHOTS", "")


def _shot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


@pytest.fixture
def zoned_page(browser):
    """A browser in Paris: the pages must show its zone, not the server's."""
    context = browser.new_context(
        timezone_id="Europe/Paris", viewport={"width": 1400, "height": 900}
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _rows():
    attempt = factories.order_attempt(
        client_order_id=LONG_ID,
        signal_id="sig-" + "x9" * 20,
        alpaca_order_id="0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        broker_status="filled",
        status="filled",
        filled_qty=Decimal("10"),
    )
    factories.order_attempt(
        client_order_id="bo-val-entry",
        signal_id="val",
        status=OrderAttempt.Status.REJECTED,
        reason="qty must be positive",
    )
    refused = factories.order_attempt(
        client_order_id="bo-ref-entry",
        signal_id="ref",
        status=OrderAttempt.Status.REJECTED,
        reason="Alpaca rejected the order: insufficient buying power",
    )
    factories.order_event(attempt=refused, kind=OrderEvent.Kind.REQUEST_SENT)
    record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH,
        symbol="AAPL",
        signal_ids=("sig-" + "x9" * 20,),
        expected_qty=Decimal("30"),
        actual_qty=Decimal("10"),
    )
    return attempt


LISTS = (
    "orders/orderattempt",
    "orders/orderevent",
    "orders/orderexecution",
    "reconciliation/mismatch",
    "reconciliation/reconciliationrun",
    "intent/localsignal",
    "audit/chainhead",
    "audit/auditverification",
)


@pytest.mark.parametrize("width", WIDTHS)
def test_every_list_column_is_within_the_window(page, live_server, width):
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    _rows()
    page.set_viewport_size({"width": width, "height": 900})
    admin_login(page, live_server, "cora", "pw-for-tests-1")
    for path in LISTS:
        page.goto(f"{live_server.url}/admin/{path}/")
        page.wait_for_selector("#changelist")
        if page.locator("#result_list thead th").count() == 0:
            continue  # an empty list has no table
        # What shows: the window, and the list's own box (it scrolls what overflows it).
        viewport = page.evaluate(
            "Math.min(document.documentElement.clientWidth,"
            " document.querySelector('#changelist .results').getBoundingClientRect().right)"
        )
        rights = page.evaluate(
            "[...document.querySelectorAll('#result_list thead th')]"
            ".map(th => th.getBoundingClientRect().right)"
        )
        _shot(page, f"list-{path.replace('/', '-')}-{width}")
        assert max(rights) <= viewport + 1, (path, width, rights, viewport)
    # A long id wraps inside its cell and its full value is on hover.
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    cell = page.locator("#result_list tbody th", has_text=LONG_ID[:20]).first
    assert cell.get_attribute("title") == LONG_ID


@pytest.mark.parametrize("width", WIDTHS)
def test_times_are_in_the_browsers_zone_to_the_millisecond_and_the_zone_is_named(
    zoned_page, live_server, width
):
    page = zoned_page
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    attempt = _rows()
    page.set_viewport_size({"width": width, "height": 900})
    admin_login(page, live_server, "cora", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    assert page.text_content("#viewer-zone").strip() == "times in Europe/Paris"
    local = timezone.localtime(attempt.created_at, timezone=ZoneInfo("Europe/Paris"))
    shown = f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} CET"
    assert shown in page.inner_text("#result_list")
    _shot(page, f"zone-attempts-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_the_timeline_reads_in_causal_order(page, live_server, width):
    """The broker stamps the fill before its answer reaches us: the fill still follows it."""
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    start = timezone.now()
    # The signal's writer stamps it a second after our attempt (its clock runs ahead).
    local_signal(
        "causal",
        symbol="MSFT",
        client_order_id="bo-causal-entry",
        created_at=(start + timedelta(seconds=1)).isoformat(),
    )
    attempt = factories.order_attempt(
        client_order_id="bo-causal-entry", signal_id="causal", symbol="MSFT", created_at=start
    )
    # The request leaves; the broker fills by its clock 130 ms before its answer reaches us.
    factories.order_event(attempt=attempt, kind=OrderEvent.Kind.REQUEST_SENT)
    answer = factories.order_event(attempt=attempt, kind=OrderEvent.Kind.RESPONSE, http_status=200)
    execution(
        attempt=attempt,
        execution_id="ex-c",
        qty="10",
        at=answer.created_at - timedelta(milliseconds=130),
    )
    page.set_viewport_size({"width": width, "height": 900})
    admin_login(page, live_server, "cora", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/timeline/bo-causal-entry/")
    titles = page.locator("#timeline-entries td.title").all_inner_texts()
    order = [
        "Signal created",
        "Order attempt recorded",
        "Request sent",
        "Broker response",
        "Fill: 10",
    ]
    positions = [next(i for i, t in enumerate(titles) if t.startswith(o)) for o in order]
    assert positions == sorted(positions), titles
    assert all("_" not in t for t in titles), titles  # words, not codes
    table = page.locator("#timeline-entries").bounding_box()
    assert table["x"] + table["width"] <= page.evaluate("document.documentElement.clientWidth") + 1
    _shot(page, f"timeline-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_404_and_403_are_admin_pages_with_a_way_back(page, live_server, width):
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    page.set_viewport_size({"width": width, "height": 900})
    admin_login(page, live_server, "cora", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    response = page.goto(f"{live_server.url}/admin/timeline/bo-nothing-entry/")
    assert response.status == 404
    assert page.locator("#site-name").is_visible()  # inside the admin's frame
    assert "bo-nothing-entry" in page.inner_text("#error-why")
    assert "Not Found" not in page.inner_text("body")
    _shot(page, f"404-{width}")
    page.click("#error-home")
    page.wait_for_selector("#content-main")
    assert page.url.rstrip("/").endswith("/admin")

    response = page.goto(f"{live_server.url}/admin/auth/user/")
    assert response.status == 403
    assert page.locator("#site-name").is_visible()
    assert page.locator("#error-home").is_visible()
    _shot(page, f"403-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_a_search_that_finds_nothing_says_how_searches_match(page, live_server, width):
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    _rows()
    page.set_viewport_size({"width": width, "height": 900})
    admin_login(page, live_server, "cora", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    page.fill("#searchbar", LONG_ID[:12])
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#search-hint")
    assert "try the full client order id" in page.inner_text("#search-hint")
    page.fill("#searchbar", LONG_ID)
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#search-hint").count() == 0
    _shot(page, f"search-{width}")


@pytest.mark.parametrize("width", WIDTHS)
def test_rejections_show_their_reason_and_filter_by_where_they_stopped(page, live_server, width):
    factories.staff_user(group="compliance", username="cora", password="pw-for-tests-1")
    attempt = _rows()
    page.set_viewport_size({"width": width, "height": 900})
    admin_login(page, live_server, "cora", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    page.get_by_role("link", name="Rejected before sending").click()
    page.wait_for_url("**rejected=before_sending**")
    assert page.locator("#result_list tbody tr").count() == 1
    assert "qty must be positive" in page.inner_text("#result_list td.field-reason")
    page.get_by_role("link", name="Refused by the broker").click()
    page.wait_for_url("**rejected=by_broker**")
    assert "insufficient buying power" in page.inner_text("#result_list td.field-reason")
    _shot(page, f"rejected-{width}")

    # The audit row's page has no empty "History"; its address leads back to the row.
    page.goto(f"{live_server.url}/admin/orders/orderattempt/{attempt.pk}/change/")
    assert page.locator("a.historylink").count() == 0
    page.goto(f"{live_server.url}/admin/orders/orderattempt/{attempt.pk}/history/")
    assert page.url.endswith(f"/admin/orders/orderattempt/{attempt.pk}/change/")
