"""A compliance officer narrows the attempt list by date range and search, clicks Export, and
the downloaded CSV holds exactly the rows and columns the page shows."""

import csv
import io
from datetime import UTC, datetime

import pytest

from tests import factories
from tests.browser.conftest import admin_login

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _attempts() -> None:
    rows = [
        ("bo-in1-entry", "MSFT", datetime(2026, 11, 2, 0, 0, tzinfo=UTC)),
        ("bo-in2-entry", "MSFT", datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC)),
        ("bo-in3-entry", "MSFT", datetime(2026, 11, 2, 12, 30, tzinfo=UTC)),
        ("bo-other-symbol-entry", "AAPL", datetime(2026, 11, 2, 12, 0, tzinfo=UTC)),
        ("bo-too-early-entry", "MSFT", datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)),
        ("bo-too-late-entry", "MSFT", datetime(2026, 11, 4, 0, 0, tzinfo=UTC)),
    ]
    for client_order_id, symbol, moment in rows:
        factories.order_attempt(
            client_order_id=client_order_id,
            symbol=symbol,
            created_at=moment,
            broker_status="=cmd|' /C calc'!A0" if client_order_id == "bo-in3-entry" else "",
        )


def test_compliance_exports_the_filtered_list_it_sees(page, live_server):
    factories.staff_user(group="compliance", username="fiona", password="pw-for-tests-1")
    _attempts()

    admin_login(page, live_server, "fiona", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/")
    assert "Past 7 days" not in page.inner_text("#changelist-filter")
    page.fill("#id_created_at__from", "2026-11-02")
    page.fill("#id_created_at__to", "2026-11-03")
    page.click("#date-range-created_at input[type=submit]")
    page.wait_for_url("**created_at__from=2026-11-02**")
    page.fill("#searchbar", "MSFT")
    page.press("#searchbar", "Enter")
    page.wait_for_url("**q=MSFT**")
    assert "created_at__to=2026-11-03" in page.url  # the search kept the range

    shown_ids = page.locator("#result_list tbody tr th").all_inner_texts()
    assert sorted(shown_ids) == ["bo-in1-entry", "bo-in2-entry", "bo-in3-entry"]
    headers = [  # as written in the page (the stylesheet shows them in capitals)
        text.strip()
        for text in page.locator("#result_list thead th .text").all_text_contents()
        if text.strip()
    ]

    with page.expect_download() as info:
        page.click("#audit-export")
    download = info.value
    assert download.suggested_filename.startswith("orders-orderattempt-")
    assert download.suggested_filename.endswith("Z.csv")
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.reader(io.StringIO(handle.read())))

    # The list's columns, less its navigation column (a "timeline" link on every row).
    assert rows[0] == [h for h in headers if h != "Timeline"]
    assert [row[0] for row in rows[1:]] == shown_ids  # same rows, same order
    by_id = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert by_id["bo-in1-entry"]["Created at"] == "2026-11-02T00:00:00.000000Z"
    assert by_id["bo-in1-entry"]["Qty"] == "10"
    assert by_id["bo-in3-entry"]["Broker status"] == "'=cmd|' /C calc'!A0"


def test_a_bad_date_tells_the_officer_and_the_list_stays_whole(page, live_server):
    factories.staff_user(group="compliance", username="gina", password="pw-for-tests-1")
    _attempts()

    admin_login(page, live_server, "gina", "pw-for-tests-1")
    page.goto(f"{live_server.url}/admin/orders/orderattempt/?created_at__from=2026-02-30")
    assert "is not a date" in page.inner_text("ul.messagelist")
    assert page.locator("#result_list tbody tr").count() == 6
