"""The audit lists do not count a whole big table on every page: PostgreSQL's estimate stands in
for an unfiltered list; a searched or filtered list, a small table and SQLite count exactly."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders.models import OrderAttempt
from tests import factories
from workspace.pagination import (
    EstimatedCountPaginator,
    queryset_is_whole_table,
    table_row_estimate,
)

pytestmark = pytest.mark.django_db

LIST = "admin:orders_orderattempt_changelist"


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


@pytest.fixture
def attempt_admin():
    model_admin = admin.site.get_model_admin(OrderAttempt)
    yield model_admin
    model_admin.__dict__.pop("exact_count_below", None)
    model_admin.__dict__.pop("count_cap", None)


def fill(n: int) -> None:
    OrderAttempt.objects.bulk_create(
        OrderAttempt(
            client_order_id=f"bo-count{i}-entry",
            signal_id=f"count{i}",
            symbol="MSFT" if i % 10 == 0 else "AAPL",
            side="buy",
            order_type="market",
            qty=Decimal("1"),
        )
        for i in range(n)
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE orders_orderattempt")


def counts_run(queries) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]


def needs_postgresql():
    if connection.vendor != "postgresql":
        pytest.skip("the estimate is PostgreSQL's (SQLite is counted exactly, tested below)")


def test_an_unfiltered_big_list_takes_the_estimate_and_says_about(compliance_client, attempt_admin):
    needs_postgresql()
    fill(300)
    attempt_admin.exact_count_below = 100  # 300 rows count as "big" here
    with CaptureQueriesContext(connection) as captured:
        page = compliance_client.get(reverse(LIST))
    assert page.status_code == 200
    assert counts_run(captured.captured_queries) == []
    cl = page.context["cl"]
    assert cl.paginator.count_is_estimate
    assert 250 <= cl.result_count <= 350
    assert b'class="count-estimate"' in page.content
    assert len(cl.result_list) == attempt_admin.list_per_page
    # The last page the estimate leads to still renders.
    last = compliance_client.get(reverse(LIST), {"p": cl.paginator.num_pages})
    assert last.status_code == 200


def test_a_searched_or_filtered_list_is_counted_exactly(compliance_client, attempt_admin):
    needs_postgresql()
    fill(300)
    attempt_admin.exact_count_below = 100
    for params in ({"q": "MSFT"}, {"status__exact": "created"}):
        page = compliance_client.get(reverse(LIST), params)
        cl = page.context["cl"]
        assert not cl.paginator.count_is_estimate, params
        assert cl.result_count == (30 if "q" in params else 300), params
        assert b'class="count-estimate"' not in page.content


def test_a_broad_search_or_filter_stops_counting_at_the_cap(compliance_client, attempt_admin):
    """A symbol over millions of rows would count hundreds of thousands of them to print one
    number: the count runs over a LIMIT subquery and the page says "more than N"."""
    fill(300)  # 270 AAPL, 30 MSFT
    attempt_admin.exact_count_below = 100
    attempt_admin.count_cap = 20  # raised to list_max_show_all (200): "show all" stays bounded
    for params in ({"q": "aapl"}, {"status__exact": "created"}):
        with CaptureQueriesContext(connection) as captured:
            page = compliance_client.get(reverse(LIST), params)
        assert page.status_code == 200
        cl = page.context["cl"]
        assert cl.paginator.count_is_capped and not cl.paginator.count_is_estimate, params
        assert cl.result_count == 201, params
        (count_sql,) = counts_run(captured.captured_queries)
        assert "LIMIT 201" in count_sql.upper(), count_sql
        assert b"more than 200" in page.content
        assert len(cl.result_list) == 50 and not cl.can_show_all, params
    narrow = compliance_client.get(reverse(LIST), {"q": "msft"}).context["cl"]
    assert (narrow.result_count, narrow.paginator.count_is_capped) == (30, False)


def test_a_small_table_is_counted_exactly(compliance_client):
    fill(120)
    with CaptureQueriesContext(connection) as captured:
        page = compliance_client.get(reverse(LIST))
    cl = page.context["cl"]
    assert not cl.paginator.count_is_estimate
    assert cl.result_count == 120
    assert len(counts_run(captured.captured_queries)) == 1


def test_whole_table_querysets_are_told_apart_from_filtered_ones():
    assert queryset_is_whole_table(OrderAttempt.objects.order_by("-created_at"))
    assert queryset_is_whole_table(OrderAttempt.objects.select_related(None))
    assert not queryset_is_whole_table(OrderAttempt.objects.filter(symbol="AAPL"))
    assert not queryset_is_whole_table(OrderAttempt.objects.distinct())
    assert not queryset_is_whole_table(OrderAttempt.objects.all()[:10])


def test_the_estimate_follows_the_table_on_postgresql_and_is_none_elsewhere():
    fill(200)
    estimate = table_row_estimate(OrderAttempt.objects.all())
    if connection.vendor == "postgresql":
        assert 150 <= estimate <= 250
    else:
        assert estimate is None
        paginator = EstimatedCountPaginator(OrderAttempt.objects.all(), 50, exact_count_below=1)
        assert paginator.count == 200 and not paginator.count_is_estimate


def test_unsearched_pages_order_by_an_indexed_column():
    """The list's page query walks the created_at index (no sort of the whole table)."""
    needs_postgresql()
    fill(2000)
    model_admin = admin.site.get_model_admin(OrderAttempt)
    ordering = model_admin.get_ordering(None) or OrderAttempt._meta.ordering
    assert tuple(ordering)[:2] == ("-created_at", "-id")
    queryset = OrderAttempt.objects.order_by(*ordering)[:50]
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan Backward using orders_orderattempt_created_at" in plan, plan
