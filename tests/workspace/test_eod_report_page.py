"""The end-of-day report page (docs/design.md section 17): the e-mail's data for the accounts the
user may see, for whoever may view breaks; linked from the admin's index."""

import pytest
from django.contrib.auth.models import User

from reconciliation.eod import report_day
from tests import factories
from tests.reconciliation.test_breaks import finding, run_with
from workspace.models import AccountGrant

pytestmark = pytest.mark.django_db
URL = "/admin/eod-report/"


@pytest.fixture
def breaks():
    run_with(finding(symbol="DESKSYM", signal_ids=("s-d",)), account="desk")
    run_with(finding(symbol="CLIENTSYM", signal_ids=("s-c",)), account="client")


def test_compliance_reads_the_report_linked_from_the_index(client, breaks):
    client.force_login(factories.staff_user(group="compliance"))
    assert 'href="/admin/eod-report/"' in client.get("/admin/").content.decode()
    page = client.get(URL)
    html = page.content.decode()
    assert page.status_code == 200 and f"End-of-day report {report_day()}" in html
    assert "DESKSYM" not in html  # breaks are counted by kind; only overdue ones are listed
    assert ">desk<" in html and ">client<" in html
    assert client.get(URL, {"date": "2020-01-02"}).context["report"].totals["opened"] == 0


def test_a_user_granted_one_account_sees_only_its_breaks(client, breaks):
    user = factories.staff_user(group="compliance")
    AccountGrant.objects.create(user=user, account="client", created_by="test")
    client.force_login(user)
    report = client.get(URL).context["report"]
    assert [r["account"] for r in report.by_kind] == ["client"]


def test_without_view_break_the_page_is_refused_and_not_linked(client):
    client.force_login(User.objects.create_user("nobody", password="x", is_staff=True))
    assert client.get(URL).status_code == 403
    assert 'href="/admin/eod-report/"' not in client.get("/admin/").content.decode()


def test_a_bad_date_says_so_and_shows_today(client):
    client.force_login(factories.staff_user(group="operations"))
    page = client.get(URL, {"date": "yesterday"}, follow=True)
    assert page.context["report"].day == report_day()
    assert "&#x27;yesterday&#x27; is not a date" in page.content.decode()
