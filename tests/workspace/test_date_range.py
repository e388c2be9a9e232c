"""The audit lists' date range: from / to days, inclusive, UTC; bad input is a message, never
a server error."""

import csv
import io
from datetime import UTC, date, datetime

import pytest
from django.urls import reverse

from orders.models import OrderAttempt, OrderEvent
from tests import factories
from workspace.filters import DateRangeFilter, date_range_list_filter, day_range_bounds

pytestmark = pytest.mark.django_db

LIST = "admin:orders_orderattempt_changelist"
DATE_LISTS = [
    ("reconciliation", "reconciliationrun", "started_at"),
    ("reconciliation", "mismatch", "created_at"),
    ("orders", "orderattempt", "created_at"),
    ("orders", "orderevent", "created_at"),
    ("audit", "auditverification", "started_at"),
    ("audit", "chainhead", "recorded_at"),
]


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


@pytest.fixture
def around_the_edges():
    """Attempts just before, on and just after 2026-11-02 .. 2026-11-03 (UTC)."""
    moments = {
        "before": datetime(2026, 11, 1, 23, 59, 59, 999999, tzinfo=UTC),
        "first": datetime(2026, 11, 2, 0, 0, tzinfo=UTC),
        "last": datetime(2026, 11, 3, 23, 59, 59, 999999, tzinfo=UTC),
        "after": datetime(2026, 11, 4, 0, 0, tzinfo=UTC),
    }
    for name, moment in moments.items():
        factories.order_attempt(client_order_id=f"bo-{name}-entry", created_at=moment)
    return moments


def shown(response) -> set[str]:
    assert response.status_code == 200
    return {a.client_order_id for a in response.context["cl"].queryset}


def test_the_range_is_inclusive_of_both_days_in_utc(compliance_client, around_the_edges):
    page = compliance_client.get(
        reverse(LIST), {"created_at__from": "2026-11-02", "created_at__to": "2026-11-03"}
    )
    assert shown(page) == {"bo-first-entry", "bo-last-entry"}


def test_one_end_alone_bounds_one_side(compliance_client, around_the_edges):
    since = compliance_client.get(reverse(LIST), {"created_at__from": "2026-11-03"})
    assert shown(since) == {"bo-last-entry", "bo-after-entry"}
    until = compliance_client.get(reverse(LIST), {"created_at__to": "2026-11-01"})
    assert shown(until) == {"bo-before-entry"}
    both_empty = compliance_client.get(
        reverse(LIST), {"created_at__from": "", "created_at__to": ""}
    )
    assert len(shown(both_empty)) == 4


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"created_at__from": "2026-13-45"}, 'date "2026-13-45" is not a date'),
        ({"created_at__to": "yesterday"}, 'date "yesterday" is not a date'),
        ({"created_at__from": "2026-11-04", "created_at__to": "2026-11-02"}, "before it starts"),
    ],
)
def test_bad_input_says_so_and_filters_nothing(compliance_client, around_the_edges, params, says):
    page = compliance_client.get(reverse(LIST), {**params, "status__exact": "created"})
    assert page.status_code == 200
    assert len(shown(page)) == 4  # the other filter still applies; the range does not
    messages = [str(m) for m in page.context["messages"]]
    assert any(says in m and "not filtered" in m for m in messages), messages
    assert says.encode() in page.content.replace(b"&quot;", b'"')


def test_the_export_honours_the_range(compliance_client, around_the_edges):
    response = compliance_client.get(
        reverse("admin:orders_orderattempt_export"),
        {"created_at__from": "2026-11-02", "created_at__to": "2026-11-03", "o": "2"},
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r[0] for r in rows[1:]] == ["bo-first-entry", "bo-last-entry"]


def test_the_export_refuses_a_bad_range_rather_than_exporting_everything(compliance_client):
    response = compliance_client.get(
        reverse("admin:orders_orderattempt_export"), {"created_at__from": "2026-02-30"}
    )
    assert response.status_code == 400
    assert b"is not a date" in response.content


@pytest.mark.parametrize(("app", "model", "field"), DATE_LISTS)
def test_every_audit_list_has_the_range_instead_of_fixed_links(
    compliance_client, app, model, field
):
    page = compliance_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert page.status_code == 200
    assert f'name="{field}__from"'.encode() in page.content
    assert f'name="{field}__to"'.encode() in page.content
    assert b"Past 7 days" not in page.content and b"This month" not in page.content


def test_the_range_form_keeps_the_lists_other_parameters(compliance_client, around_the_edges):
    page = compliance_client.get(reverse(LIST), {"q": "bo-first-entry", "status__exact": "created"})
    form = page.content.decode().split('id="date-range-created_at"', 1)[1].split("</form>")[0]
    assert '<input type="hidden" name="q" value="bo-first-entry">' in form
    assert '<input type="hidden" name="status__exact" value="created">' in form


def test_events_filter_by_range_too(compliance_client):
    attempt = factories.order_attempt()
    factories.order_event(attempt=attempt)
    event = OrderEvent.objects.get()
    day = event.created_at.astimezone(UTC).date().isoformat()
    url = reverse("admin:orders_orderevent_changelist")
    inside = compliance_client.get(url, {"created_at__from": day, "created_at__to": day})
    assert list(inside.context["cl"].queryset) == [event]
    outside = compliance_client.get(url, {"created_at__to": "2000-01-01"})
    assert list(outside.context["cl"].queryset) == []


def test_day_bounds_are_utc_midnights():
    low, high = day_range_bounds(start=date(2026, 3, 29), end=date(2026, 3, 29))
    assert low == datetime(2026, 3, 29, tzinfo=UTC)
    assert high == datetime(2026, 3, 30, tzinfo=UTC)


def test_only_date_columns_are_mapped_to_the_range():
    mapped = date_range_list_filter(
        OrderAttempt, ("status", "created_at", ("updated_at", DateRangeFilter), "adopted")
    )
    assert mapped == [
        "status",
        ("created_at", DateRangeFilter),
        ("updated_at", DateRangeFilter),
        "adopted",
    ]
