"""CSV export of the audit lists: what the list shows (search, filters, ordering), every row,
plain values, inert for spreadsheets, streamed, for whoever may view the list."""

import csv
import html
import io
import re
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.http import StreamingHttpResponse
from django.urls import reverse

from audit.services import audit_verify
from orders.models import OrderAttempt
from tests import factories
from workspace import export as csv_export
from workspace.cells import FORMULA_STARTS, csv_cell

pytestmark = pytest.mark.django_db

AUDIT_LISTS = [
    ("reconciliation", "reconciliationrun"),
    ("reconciliation", "mismatch"),
    ("orders", "orderattempt"),
    ("orders", "orderevent"),
    ("audit", "auditverification"),
    ("audit", "chainhead"),
]


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


def export(client, app: str, model: str, params: dict | None = None):
    return client.get(reverse(f"admin:{app}_{model}_export"), params or {})


def read_csv(response) -> list[list[str]]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.reader(io.StringIO(text)))


def list_headers(client, app: str, model: str, params: dict | None = None) -> list[str]:
    """The column labels the list page shows (without the selection checkbox)."""
    page = client.get(reverse(f"admin:{app}_{model}_changelist"), params or {})
    texts = re.findall(
        r'<div class="text">(?:<a [^>]*>|<span>)(.*?)(?:</a>|</span>)</div>',
        page.content.decode(),
    )
    return [html.unescape(t) for t in texts if "<input" not in t]


def data_headers(client, app: str, model: str, params: dict | None = None) -> list[str]:
    """The list's column labels without its navigation column (the timeline link), which the
    export leaves out."""
    return [h for h in list_headers(client, app, model, params) if h != "Timeline"]


def listed_ids(client, params: dict) -> list[str]:
    """The client_order_ids the attempt list shows for ``params``, in its order (all pages)."""
    page = client.get(reverse("admin:orders_orderattempt_changelist"), params)
    assert page.status_code == 200
    return [a.client_order_id for a in page.context["cl"].queryset]


def attempt_at(moment: datetime, **fields) -> OrderAttempt:
    return factories.order_attempt(created_at=moment, **fields)


@pytest.mark.parametrize(("app", "model"), AUDIT_LISTS)
def test_every_audit_list_has_an_export_button_carrying_its_query(compliance_client, app, model):
    listing = reverse(f"admin:{app}_{model}_changelist")
    page = compliance_client.get(listing, {"o": "1", "p": "1"})
    assert page.status_code == 200
    match = re.search(rb'<a href="([^"]+)" class="export-csv" id="audit-export"', page.content)
    assert match, "no Export CSV button"
    assert match.group(1).decode() == reverse(f"admin:{app}_{model}_export") + "?o=1"


def test_the_signal_list_exports_too(compliance_client):
    from brokerops.intent.local import LocalSignalStore

    LocalSignalStore().put_documents(
        [("sig-export-1", {"symbol": "AAPL", "side": "buy", "qty": "2", "status": "PENDING"})]
    )
    page = compliance_client.get(reverse("admin:intent_localsignal_changelist"))
    assert b'id="audit-export"' in page.content
    rows = read_csv(export(compliance_client, "intent", "localsignal"))
    assert rows[0][:4] == ["Document id", "Account", "Status", "Symbol"]
    assert rows[1][:4] == ["sig-export-1", "default", "PENDING", "AAPL"]


@pytest.mark.parametrize(
    "url_name", ["admin:auth_user_changelist", "admin:django_celery_beat_periodictask_changelist"]
)
def test_other_admin_lists_render_without_an_export_button(admin_client, url_name):
    page = admin_client.get(reverse(url_name))
    assert page.status_code == 200
    assert b'id="changelist"' in page.content
    assert b"audit-export" not in page.content


def test_export_has_the_list_header_and_every_matching_row_not_one_page(compliance_client):
    for n in range(120):
        factories.order_attempt(client_order_id=f"bo-many{n:03d}-entry", signal_id=f"many{n}")
    response = export(compliance_client, "orders", "orderattempt")
    assert response.status_code == 200
    rows = read_csv(response)
    assert rows[0] == data_headers(compliance_client, "orders", "orderattempt")
    assert rows[0][:4] == ["Client order id", "Account", "Created at", "Signal id"]
    assert len(rows) == 1 + 120
    assert [r[0] for r in rows[1:]] == listed_ids(compliance_client, {})


def test_export_follows_the_lists_search_filter_and_ordering(compliance_client):
    base = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    for n, (symbol, status) in enumerate(
        [("AAPL", "filled"), ("AAPL", "open"), ("MSFT", "filled"), ("AAPL", "filled")]
    ):
        attempt_at(
            base.replace(minute=n),
            client_order_id=f"bo-f{n}-entry",
            signal_id=f"f{n}",
            symbol=symbol,
            status=status,
        )
    params = {"q": "AAPL", "status__exact": "filled", "o": "2"}  # oldest first
    rows = read_csv(export(compliance_client, "orders", "orderattempt", params))
    assert [r[0] for r in rows[1:]] == ["bo-f0-entry", "bo-f3-entry"]
    assert [r[0] for r in rows[1:]] == listed_ids(compliance_client, params)
    params["o"] = "-2"
    rows = read_csv(export(compliance_client, "orders", "orderattempt", params))
    assert [r[0] for r in rows[1:]] == ["bo-f3-entry", "bo-f0-entry"]


def test_values_are_plain_utc_iso_timestamps_and_quantities_without_trailing_zeros(
    compliance_client,
):
    factories.order_attempt(
        client_order_id="bo-plain-entry",
        signal_id="plain",
        qty=Decimal("10.000000000"),
        filled_qty=Decimal("0.500000000"),
        status="partially_filled",
        created_at=datetime(2026, 11, 25, 16, 48, 3, 120000, tzinfo=UTC),
    )
    (header, row) = read_csv(export(compliance_client, "orders", "orderattempt"))
    shown = dict(zip(header, row, strict=True))
    assert shown["Created at"] == "2026-11-25T16:48:03.120000Z"
    assert shown["Qty"] == "10"
    assert shown["Filled qty"] == "0.5"
    assert shown["Notional"] == ""
    assert shown["Status"] == "Partially filled"  # the label the list shows
    assert shown["Side"] == "Buy"


def test_events_and_mismatches_export_their_related_rows_by_name(compliance_client):
    attempt = factories.order_attempt(client_order_id="bo-rel-entry", signal_id="rel")
    factories.order_event(attempt=attempt, kind="request_sent", message="POST /v2/orders")
    run = factories.reconciliation_run()
    factories.mismatch(run=run, client_order_id="bo-rel-entry", expected_qty=Decimal("3.50"))
    events = read_csv(export(compliance_client, "orders", "orderevent"))
    shown = dict(zip(events[0], events[1], strict=True))
    assert shown["Attempt"] == "bo-rel-entry"
    assert shown["Kind"] == "Request sent"
    mismatches = read_csv(export(compliance_client, "reconciliation", "mismatch"))
    shown = dict(zip(mismatches[0], mismatches[1], strict=True))
    assert shown["Run"] == str(run)
    assert shown["Expected qty"] == "3.5"
    assert shown["Client order id"] == "bo-rel-entry"


def test_cells_a_spreadsheet_would_run_as_formulas_are_neutralised(compliance_client):
    attempt = factories.order_attempt(
        client_order_id="bo-inject-entry",
        signal_id='=HYPERLINK("http://evil","x")',
        broker_status="+cmd|' /C calc'!A0",
        alpaca_order_id="@SUM(1+1)",
        symbol="-2+3",
    )
    factories.order_event(attempt=attempt, actor="\t=1+1", status_to="\r=2")
    (header, row) = read_csv(export(compliance_client, "orders", "orderattempt"))
    shown = dict(zip(header, row, strict=True))
    assert shown["Signal id"] == '\'=HYPERLINK("http://evil","x")'
    assert shown["Broker status"] == "'+cmd|' /C calc'!A0"
    assert shown["Alpaca order id"] == "'@SUM(1+1)"
    assert shown["Symbol"] == "'-2+3"
    (header, row) = read_csv(export(compliance_client, "orders", "orderevent"))
    shown = dict(zip(header, row, strict=True))
    assert shown["Actor"] == "'\t=1+1"
    assert shown["Status to"] == "'\r=2"


@pytest.mark.parametrize(("app", "model"), AUDIT_LISTS)
def test_every_export_has_the_header_row_of_its_list(compliance_client, app, model):
    attempt = factories.order_attempt()
    factories.order_event(attempt=attempt)
    factories.mismatch(client_order_id=attempt.client_order_id)
    audit_verify(trigger="command", processes=1)  # a verification and the chain heads
    rows = read_csv(export(compliance_client, app, model))
    assert len(rows) > 1
    assert rows[0] == data_headers(compliance_client, app, model)


def test_navigation_columns_are_told_apart_from_links_that_carry_data():
    from django.utils.html import format_html

    def link(href: str, text: str):
        return format_html('<a class="timeline-link" href="{}">{}</a>', href, text)

    assert csv_export.is_navigation([link("/t/a/", "timeline"), link("/t/b/", "timeline")])
    assert not csv_export.is_navigation([link("/o/1/", "bo-1-entry"), link("/o/2/", "bo-2")])
    assert not csv_export.is_navigation(["timeline", "timeline"])
    assert csv_cell(format_html("<b>{}</b> &amp; more", "bold")) == "bold & more"


def test_numbers_the_export_formats_are_not_taken_for_formulas():
    assert csv_cell(Decimal("-5.000")) == "-5"
    assert csv_cell(-3) == "-3"
    assert csv_cell("-5") == "'-5"  # text stays text


def test_the_filename_names_the_model_and_the_utc_time(compliance_client):
    response = export(compliance_client, "orders", "orderevent")
    disposition = response["Content-Disposition"]
    assert re.fullmatch(
        r'attachment; filename="orders-orderevent-\d{8}T\d{6}Z\.csv"', disposition
    ), disposition
    assert response["Content-Type"] == "text/csv; charset=utf-8"


@pytest.mark.parametrize("group", ["compliance", "operations"])
def test_compliance_and_operations_may_export(client, group):
    client.force_login(factories.staff_user(group=group))
    factories.order_attempt()
    for app, model in AUDIT_LISTS:
        assert export(client, app, model).status_code == 200, (app, model)


def test_staff_without_view_permission_get_403(client):
    client.force_login(User.objects.create_user("visitor", password="x", is_staff=True))
    factories.order_attempt()
    for app, model in AUDIT_LISTS:
        assert export(client, app, model).status_code == 403, (app, model)


def test_anonymous_visitors_are_sent_to_the_login_page(client):
    response = export(client, "orders", "orderattempt")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_an_invalid_filter_is_a_400_not_a_500(compliance_client):
    response = export(compliance_client, "orders", "orderattempt", {"no_such_field": "1"})
    assert response.status_code == 400


def _fill_attempts(n: int) -> None:
    now = datetime(2026, 11, 1, tzinfo=UTC)
    OrderAttempt.objects.bulk_create(
        OrderAttempt(
            client_order_id=f"bo-bulk{i}-entry",
            signal_id=f"bulk{i}",
            symbol="AAPL",
            side="buy",
            order_type="market",
            qty=Decimal("1"),
            created_at=now,
            updated_at=now,
        )
        for i in range(n)
    )


def _consume(response) -> tuple[int, int]:
    """(chunks, bytes) of a streamed response, holding one chunk at a time."""
    chunks = size = 0
    for chunk in response.streaming_content:
        chunks += 1
        size += len(chunk)
    return chunks, size


def test_a_big_export_streams_in_chunks_of_rows(compliance_client):
    _fill_attempts(20_000)
    response = export(compliance_client, "orders", "orderattempt")
    assert isinstance(response, StreamingHttpResponse)
    chunks, size = _consume(response)
    # The header, then one chunk per EXPORT_CHUNK_ROWS rows.
    assert chunks == 1 + 20_000 // csv_export.EXPORT_CHUNK_ROWS
    assert size > 20_000 * 50


def test_export_memory_does_not_grow_with_the_rows(compliance_client):
    def peak_while_exporting() -> tuple[int, int]:
        response = export(compliance_client, "orders", "orderattempt")
        tracemalloc.start()
        try:
            _, size = _consume(response)
            return tracemalloc.get_traced_memory()[1], size
        finally:
            tracemalloc.stop()

    _fill_attempts(3_000)
    small_peak, small_size = peak_while_exporting()
    OrderAttempt.objects.all().delete()
    _fill_attempts(15_000)
    big_peak, big_size = peak_while_exporting()
    assert big_size > 4 * small_size
    # Five times the rows, about the same peak (one chunk of rows and text at a time).
    assert big_peak < small_peak * 1.5, (small_peak, big_peak)


def test_lists_of_fields_export_from_plain_rows_and_others_from_instances(rf):
    from django.contrib import admin

    from orders.models import OrderEvent
    from reconciliation.models import Mismatch

    attempt = factories.order_attempt()
    factories.order_event(attempt=attempt)
    factories.mismatch(client_order_id=attempt.client_order_id)
    for model, plain in ((OrderEvent, True), (OrderAttempt, True), (Mismatch, False)):
        model_admin = admin.site.get_model_admin(model)
        columns = csv_export.export_columns(model_admin, model_admin.list_display)
        request = rf.get("/")
        # Who sees every account (an anonymous request sees none: workspace.access).
        request.user = User(username="root", is_superuser=True, is_active=True)
        plan = csv_export.export_plan(model_admin.get_queryset(request), columns)
        assert plan.plain is plain, model
        assert "Timeline" not in [c.label for c in plan.columns]


def test_text_cells_are_quoted_so_no_separator_splits_them_into_a_formula(compliance_client):
    """A ``;``-separated (or tab-separated) spreadsheet splits only at separators outside
    quotes (a quote opens or closes quoted text wherever it stands): every text cell is quoted,
    so ``x;=1+1`` stays one inert cell."""
    factories.order_attempt(
        client_order_id="bo-semi-entry", signal_id="x;=1+1", broker_status="y\t=2+2"
    )
    response = export(compliance_client, "orders", "orderattempt")
    text = b"".join(response.streaming_content).decode("utf-8")
    assert '"x;=1+1"' in text and '"y\t=2+2"' in text
    for separator in (";", "\t", ","):
        outside_quotes = re.compile(f'{separator}(?=(?:[^"]*"[^"]*")*[^"]*$)')
        for line in text.splitlines():
            cells = [cell.strip('"') for cell in outside_quotes.split(line)]
            assert not [cell for cell in cells if cell.startswith(FORMULA_STARTS)]


def test_an_empty_value_is_an_empty_cell(compliance_client):
    factories.mismatch(signal_id="", expected_qty=None, actual_qty=Decimal("5"))
    (header, row) = read_csv(export(compliance_client, "reconciliation", "mismatch"))
    shown = dict(zip(header, row, strict=True))
    assert shown["Expected qty"] == "" and shown["Signal id"] == ""
    assert "'-" not in row
    assert csv_cell("-") == ""
