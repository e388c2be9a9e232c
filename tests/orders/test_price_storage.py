"""Broker prices and money are stored, chained, shown and exported exactly, at any precision
(docs/design.md section 6): a crypto fill at 19660.5738784516887649 reads back as that figure
on SQLite and PostgreSQL, never rounded to the column or to 15 significant digits."""

import csv
import io
from decimal import Decimal

import pytest
from django.urls import reverse

from audit.chain import plain
from orders.models import OrderAttempt, OrderExecution
from orders.services.events import order_executions_append
from tests import factories
from workspace.admin.orders import OrderAttemptAdmin
from workspace.cells import csv_cell
from workspace.display import plain_decimal

FINE = Decimal("19660.5738784516887649")
LONG = Decimal("49.6499849505605227113711001112")  # 30 significant digits (a real cost_basis)
TINY = Decimal("1e-20")

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("price", [FINE, LONG, TINY, Decimal("190.000000"), Decimal("-0.5")])
def test_attempt_prices_read_back_exactly(price):
    attempt = factories.order_attempt(
        notional=price, limit_price=price, stop_price=price, filled_avg_price=price
    )
    again = OrderAttempt.objects.get(pk=attempt.pk)
    for name in ("notional", "limit_price", "stop_price", "filled_avg_price"):
        assert getattr(again, name) == price and isinstance(getattr(again, name), Decimal)
    assert OrderAttempt.objects.filter(filled_avg_price=price).get() == again
    assert OrderAttempt.objects.filter(filled_avg_price=None).count() == 0


def test_an_execution_price_reads_back_exactly():
    attempt = factories.order_attempt()
    order_executions_append(
        [
            OrderExecution(
                execution_id="e-fine", attempt=attempt, event="fill", qty=Decimal("0.5"), price=FINE
            )
        ]
    )
    assert OrderExecution.objects.get().price == FINE
    assert OrderExecution.objects.values_list("price", flat=True).get() == FINE


def test_the_audit_canonical_form_keeps_every_digit():
    assert plain(LONG) == "49.6499849505605227113711001112"
    assert plain(Decimal("1.500")) == "1.5" and plain(Decimal("1E+2")) == "100"
    assert plain(Decimal("-0.000")) == "0" and plain(TINY) == "0.00000000000000000001"


def test_display_and_csv_show_every_digit_without_an_exponent():
    assert plain_decimal(LONG) == "49.6499849505605227113711001112"
    assert plain_decimal(TINY) == "0.00000000000000000001"
    assert csv_cell(LONG) == "49.6499849505605227113711001112"


def test_the_attempt_page_and_its_csv_show_the_exact_price(client):
    client.force_login(factories.staff_user(group="compliance"))
    attempt = factories.order_attempt(
        client_order_id="bo-fine-entry", notional=LONG, filled_avg_price=FINE
    )
    page = client.get(reverse("admin:orders_orderattempt_change", args=[attempt.pk]))
    assert page.status_code == 200
    assert "19660.5738784516887649" in page.content.decode()
    response = client.get(reverse("admin:orders_orderattempt_export"))
    text = b"".join(response.streaming_content).decode()
    header, row = list(csv.reader(io.StringIO(text)))
    assert dict(zip(header, row, strict=True))["Notional"] == "49.6499849505605227113711001112"


def test_executions_stay_append_only_after_their_price_column_changed():
    """Migration 0010 rebuilds the table on SQLite (which drops triggers): they are back."""
    from django.db import DatabaseError, connection, transaction

    attempt = factories.order_attempt()
    order_executions_append(
        [OrderExecution(execution_id="e-1", attempt=attempt, event="fill", price=FINE)]
    )
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("UPDATE orders_orderexecution SET price = '1'")
    assert OrderExecution.objects.get().price == FINE


def test_the_attempt_list_sorts_prices_by_number_and_exports_them_raw(client):
    client.force_login(factories.staff_user(group="compliance"))
    for coid, notional in (("bo-a-entry", "9"), ("bo-b-entry", "10"), ("bo-c-entry", "-0.5")):
        factories.order_attempt(client_order_id=coid, qty=None, notional=Decimal(notional))
    url = reverse("admin:orders_orderattempt_changelist")
    # The notional column, ascending (no action column here: the index is list_display's).
    by_notional = str(OrderAttemptAdmin.list_display.index("notional_display"))
    page = client.get(url, {"o": by_notional}).content.decode()
    assert page.index("bo-c-entry") < page.index("bo-a-entry") < page.index("bo-b-entry")
    response = client.get(reverse("admin:orders_orderattempt_export"), {"o": by_notional})
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert [row[rows[0].index("Notional")] for row in rows[1:]] == ["-0.5", "9", "10"]
