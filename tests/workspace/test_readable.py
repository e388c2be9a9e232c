"""Readable values in the admin: quantities, timestamps with seconds and zone, folded JSON;
symbols found in any case."""

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from orders.models import OrderEvent
from reconciliation.diff import ReconciliationErrors
from tests import factories
from tests.workspace.helpers import local_signal, record_mismatch
from workspace.display import plain_decimal, symbol_search_forms

SECONDS_AND_ZONE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("10.000000000"), "10"),
        (Decimal("0.500000000"), "0.5"),
        (Decimal("0.5"), "0.5"),
        (Decimal("1E+3"), "1000"),
        (Decimal("-0.000000000"), "0"),
        (Decimal("187.250000"), "187.25"),
        (None, "-"),
        ("2.50", "2.5"),
    ],
)
def test_quantities_lose_their_trailing_zeros(value, shown):
    assert plain_decimal(value) == shown


@pytest.mark.parametrize(
    ("term", "forms"),
    [
        ("msft", ["MSFT"]),
        (" Msft ", ["MSFT"]),
        ("btc/usd", ["BTC-USD", "BTC/USD", "BTCUSD"]),
        ("btcusd", ["BTC-USD", "BTC/USD", "BTCUSD"]),
        ("brk.b", ["BRK.B"]),
        ("  ", []),
    ],
)
def test_a_symbol_term_is_searched_in_every_stored_form(term, forms):
    assert symbol_search_forms(term) == forms


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


@pytest.mark.django_db
def test_attempt_pages_show_plain_quantities_and_timestamps_with_seconds_and_zone(
    compliance_client,
):
    attempt = factories.order_attempt(
        qty=Decimal("10"),
        filled_qty=Decimal("0.5"),
        created_at=datetime(2026, 11, 25, 16, 48, 3, tzinfo=UTC),
        request_payload={"symbol": "AAPL", "qty": "10"},
    )
    listing = compliance_client.get(reverse("admin:orders_orderattempt_changelist")).content
    html = listing.decode()
    assert "10.000000000" not in html and "0.500000000" not in html
    assert '<td class="field-qty_display">10</td>' in html
    assert '<td class="field-filled_qty_display">0.5</td>' in html
    assert "2026-11-25 16:48:03.000 UTC" in html
    page = compliance_client.get(
        reverse("admin:orders_orderattempt_change", args=[attempt.pk])
    ).content.decode()
    assert "10.000000000" not in page
    assert "2026-11-25 16:48:03.000 UTC" in page
    assert "<summary>Show the request payload (2 fields)</summary>" in page


@pytest.mark.django_db
def test_event_payloads_are_folded_and_timestamps_read_to_the_second(compliance_client):
    attempt = factories.order_attempt()
    event = factories.order_event(
        attempt=attempt, kind=OrderEvent.Kind.RESPONSE, payload={"id": "x1", "status": "new"}
    )
    page = compliance_client.get(
        reverse("admin:orders_orderevent_change", args=[event.pk])
    ).content.decode()
    assert '<details class="json-folded"><summary>Show the payload (2 fields)</summary>' in page
    assert "&quot;status&quot;: &quot;new&quot;" in page
    assert SECONDS_AND_ZONE.search(page)
    listing = compliance_client.get(reverse("admin:orders_orderevent_changelist")).content
    assert SECONDS_AND_ZONE.search(listing.decode())


@pytest.mark.django_db
def test_the_run_summary_is_pretty_printed_and_folded(compliance_client):
    run = factories.reconciliation_run(
        summary={"timings": {"read_s": 0.25}, "by_kind": {"QTY_MISMATCH": 2}}
    )
    page = compliance_client.get(
        reverse("admin:reconciliation_reconciliationrun_change", args=[run.pk])
    ).content.decode()
    assert '<details class="json-folded"><summary>Show the summary (2 fields)</summary>' in page
    assert "{\n  &quot;by_kind&quot;: {\n    &quot;QTY_MISMATCH&quot;: 2\n  }," in page
    assert SECONDS_AND_ZONE.search(page)


@pytest.mark.django_db
def test_mismatch_quantities_are_plain_on_list_and_page(compliance_client):
    row = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH,
        symbol="AAPL",
        signal_id="q1",
        expected_qty=Decimal("10"),
        actual_qty=Decimal("0.5"),
    )
    listing = compliance_client.get(reverse("admin:reconciliation_mismatch_changelist")).content
    page = compliance_client.get(reverse("admin:reconciliation_mismatch_change", args=[row.pk]))
    for html in (listing.decode(), page.content.decode()):
        assert "10.000000000" not in html and "0.500000000" not in html
        assert SECONDS_AND_ZONE.search(html)
    assert '<td class="field-expected_qty_display">10</td>' in listing.decode()


def _found(client, admin_name: str, term: str) -> int:
    page = client.get(reverse(f"admin:{admin_name}_changelist"), {"q": term})
    assert page.status_code == 200
    return page.context["cl"].result_count


@pytest.mark.django_db
@pytest.mark.parametrize("term", ["msft", "MSFT", " Msft "])
def test_symbols_are_found_in_any_case(compliance_client, term):
    attempt = factories.order_attempt(symbol="MSFT")
    factories.order_attempt(symbol="AAPL")
    factories.order_event(attempt=attempt)
    record_mismatch(kind=ReconciliationErrors.QTY_MISMATCH, symbol="MSFT", signal_id="m1")
    record_mismatch(kind=ReconciliationErrors.QTY_MISMATCH, symbol="AAPL", signal_id="a1")
    local_signal("sig-msft", symbol="MSFT")
    local_signal("sig-aapl", symbol="AAPL")
    assert _found(compliance_client, "orders_orderattempt", term) == 1
    assert _found(compliance_client, "orders_orderevent", term) == 1
    assert _found(compliance_client, "reconciliation_mismatch", term) == 1
    assert _found(compliance_client, "intent_localsignal", term) == 1


@pytest.mark.django_db
def test_a_crypto_pair_is_found_in_either_form(compliance_client):
    factories.order_attempt(symbol="BTC/USD")
    record_mismatch(kind=ReconciliationErrors.QTY_MISMATCH, symbol="BTCUSD", signal_id="c1")
    for term in ("btc/usd", "BTCUSD", "btc-usd"):
        assert _found(compliance_client, "orders_orderattempt", term) == 1
        assert _found(compliance_client, "reconciliation_mismatch", term) == 1


@pytest.mark.django_db
def test_ids_are_still_found_exactly(compliance_client):
    factories.order_attempt(client_order_id="bo-exact-entry", signal_id="exact")
    assert _found(compliance_client, "orders_orderattempt", "bo-exact-entry") == 1
    assert _found(compliance_client, "orders_orderattempt", "exact") == 1
    assert _found(compliance_client, "orders_orderattempt", "BO-EXACT-ENTRY") == 0
