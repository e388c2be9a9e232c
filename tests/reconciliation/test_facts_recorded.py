"""Which of the listed orders we recorded: a run at 200,000 orders asks about 100,000 ids of our
prefix, so the look-up's statements are counted."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orders.models import OrderAttempt
from reconciliation.facts import _recorded_client_order_ids

pytestmark = pytest.mark.django_db


def test_recorded_ids_are_found_among_thousands_in_one_statement_on_postgresql():
    OrderAttempt.objects.bulk_create(
        OrderAttempt(
            client_order_id=f"bo-sig{i}-entry",
            signal_id=f"sig{i}",
            symbol="AAPL",
            side="buy",
            order_type="market",
            qty=1,
        )
        for i in range(0, 5000, 2)
    )
    candidates = [f"bo-sig{i}-entry" for i in range(5000)] + ["bo-sig1-entry'; --", ""]

    with CaptureQueriesContext(connection) as captured:
        found = _recorded_client_order_ids(iter(candidates))

    assert found == {f"bo-sig{i}-entry" for i in range(0, 5000, 2)}
    # PostgreSQL: the ids as one array (one statement, one parameter); elsewhere batches of
    # 2,000 parameters (SQLite's limit on a statement's parameters).
    assert len(captured) == (1 if connection.vendor == "postgresql" else 3)


def test_no_candidates_no_statement():
    with CaptureQueriesContext(connection) as captured:
        assert _recorded_client_order_ids([]) == set()
    assert len(captured) == 0
