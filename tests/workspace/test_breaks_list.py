"""The open breaks list (docs/design.md section 17): compliance's landing page, its columns,
filters, search, CSV export and account scoping."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from reconciliation.breaks import break_acknowledge, breaks_close_repaired
from reconciliation.diff import Severity
from reconciliation.models import Break
from tests import factories
from tests.workspace.breaks_helpers import (
    LIST_URL,
    ORPHAN,
    break_of,
    finding,
    run_with,
)
from workspace.breaks import age_words, due_words, duration_words
from workspace.models import AccountGrant

pytestmark = pytest.mark.django_db


@pytest.fixture
def compliance(client):
    user = factories.staff_user(group="compliance", username="carol")
    client.force_login(user)
    return client


@pytest.fixture
def three_breaks():
    """TSLA live (opened 2 days ago, overdue), MSFT live and owned, ETH cleared by a run, NVDA
    closed by a repair (to review)."""
    run_with(
        finding(symbol="TSLA"),
        finding(symbol="MSFT", signal_ids=("s-2",)),
        finding(kind=ORPHAN, symbol="ETHUSD", signal_ids=(), severity=Severity.CRITICAL),
        finding(symbol="NVDA", signal_ids=("s-4",)),
    )
    _, rows = run_with(
        finding(symbol="TSLA"),
        finding(symbol="MSFT", signal_ids=("s-2",)),
        finding(symbol="NVDA", signal_ids=("s-4",)),
    )
    two_days_ago = timezone.now() - timedelta(days=2)
    Break.objects.filter(symbol="TSLA").update(
        opened_at=two_days_ago, due_at=two_days_ago + timedelta(days=1)
    )
    operator = factories.staff_user(group="operations", username="opal")
    break_acknowledge(break_id=break_of("MSFT").pk, user=operator, comment="looking")
    repair_run = factories.reconciliation_run()
    breaks_close_repaired(run=repair_run, mismatches=[r for r in rows if r.symbol == "NVDA"])


def _shown(response) -> list[str]:
    return [str(b.symbol) for b in response.context["cl"].result_list]


def test_words_for_ages_and_due_times():
    assert [
        duration_words(timedelta(seconds=s)) for s in (5, 125, 3 * 3600 + 5, 86400, 2 * 86400)
    ] == [
        "5 s",
        "2 min",
        "3 h",
        "1 day",
        "2 days",
    ]


def test_the_default_list_is_the_live_breaks_oldest_due_first(compliance, three_breaks):
    response = compliance.get(LIST_URL)
    assert response.status_code == 200
    assert _shown(response) == ["TSLA", "MSFT"]  # TSLA was due a day ago; ETH and NVDA are done
    html = response.content.decode()
    assert "overdue by 1 day" in html and 'class="break-overdue"' in html
    assert "2 days" in html  # TSLA's age, in words
    assert "opal" in html  # MSFT's owner


def test_each_state_the_review_list_and_all(compliance, three_breaks):
    def shown(query):
        return sorted(_shown(compliance.get(LIST_URL + query)))

    assert shown("?state=resolved") == ["ETHUSD"]
    assert shown("?state=acknowledged") == ["MSFT"]
    assert shown("?state=review") == ["NVDA"]
    assert shown("?state=all") == ["ETHUSD", "MSFT", "NVDA", "TSLA"]
    assert "Repaired, to review" in compliance.get(LIST_URL).content.decode()


def test_filters_by_kind_severity_age_due_owner_and_occurrences(compliance, three_breaks):
    def shown(query):
        return sorted(_shown(compliance.get(LIST_URL + query)))

    assert shown("?state=all&kind__exact=ORPHAN_POSITION") == ["ETHUSD"]
    assert shown("?state=all&severity__exact=critical") == ["ETHUSD"]
    assert shown("?age=under_1d") == []
    assert shown("?age=under_3d") == ["TSLA"]
    assert shown("?age=under_1h") == ["MSFT"]
    assert shown("?due=overdue") == ["TSLA"]
    assert shown("?due=day") == ["MSFT"]
    assert shown("?owner=opal") == ["MSFT"]
    assert shown("?owner=__nobody__") == ["TSLA"]
    assert shown("?state=all&seen=few") == ["MSFT", "NVDA", "TSLA"]
    assert shown("?state=all&seen=once") == ["ETHUSD"]
    today = timezone.now().date().isoformat()
    assert shown(f"?state=all&last_seen_at__from={today}") == ["ETHUSD", "MSFT", "NVDA", "TSLA"]


def test_search_by_symbol_client_order_id_and_signal_id(compliance):
    run_with(
        finding(symbol="TSLA", signal_ids=("sig-a", "sig-b")),
        finding(symbol="AAPL", signal_ids=(), client_order_id="bo-sig9-entry"),
    )

    def found(term):
        return sorted(_shown(compliance.get(LIST_URL, {"q": term})))

    assert found("tsla") == ["TSLA"]
    assert found("bo-sig9-entry") == ["AAPL"]
    assert found("sig-b") == ["TSLA"]
    assert found("nothing-like-it") == []


def test_the_csv_export_is_the_list_as_it_shows_it(compliance, three_breaks):
    response = compliance.get(LIST_URL + "export/", {"state": "all", "kind__exact": "QTY_MISMATCH"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header = rows[0]
    assert header[:7] == ["ID", "Break", "State", "Kind", "Severity", "Age", "Due"]
    assert header[7:] == ["Owner", "Times seen", "First seen", "Last seen", "Account"]
    assert sorted(r[1] for r in rows[1:]) == ["MSFT", "NVDA", "TSLA"]
    due = header.index("Due")
    tsla = next(r for r in rows[1:] if r[1] == "TSLA")
    assert tsla[due].endswith("Z")  # the due time itself, ISO 8601 UTC


def test_the_export_neutralises_a_formula(compliance):
    run_with(finding(symbol="", signal_ids=(), client_order_id="=HYPERLINK(1)"))
    response = compliance.get(LIST_URL + "export/")
    text = b"".join(response.streaming_content).decode()
    assert "'=HYPERLINK(1)" in text


def test_a_user_granted_one_account_sees_only_its_breaks(client, three_breaks):
    run_with(finding(symbol="AMZN", signal_ids=("c-1",)), account="client")
    user = factories.staff_user(group="compliance", username="cleo")
    AccountGrant.objects.create(account="client", user=user, created_by="root")
    client.force_login(user)
    assert _shown(client.get(LIST_URL + "?state=all")) == ["AMZN"]
    other = break_of("TSLA")
    assert client.get(f"{LIST_URL}{other.pk}/change/").status_code == 404
    export = b"".join(client.get(LIST_URL + "export/?state=all").streaming_content).decode()
    assert "AMZN" in export and "TSLA" not in export
    # The account filter offers only the accounts granted.
    assert "default" not in [
        c["display"]
        for spec in client.get(LIST_URL).context["cl"].filter_specs
        if spec.title == "account"
        for c in spec.choices(client.get(LIST_URL).context["cl"])
    ]


def test_compliance_lands_on_the_breaks_list_operators_on_the_dashboard(client):
    factories.staff_user(group="compliance", username="carol")
    factories.staff_user(group="operations", username="opal")
    credentials = {"password": "pw-for-tests-1", "next": "/admin/"}
    landed = client.post("/admin/login/", {"username": "carol", **credentials})
    assert landed.status_code == 302 and landed.url == LIST_URL
    client.logout()
    landed = client.post("/admin/login/", {"username": "opal", **credentials})
    assert landed.status_code == 302 and landed.url == "/admin/"
    client.logout()
    wrong = client.post("/admin/login/", {"username": "carol", "password": "nope"})
    assert wrong.status_code == 200  # the login form again, with its error


def test_a_view_only_user_without_break_permission_sees_no_list(client):
    user = User.objects.create_user("nina", password="pw-for-tests-1", is_staff=True)
    client.force_login(user)
    assert client.get(LIST_URL).status_code == 403


def test_age_and_due_of_a_closed_break_are_not_live():
    run_with(finding(symbol="TSLA"))
    brk = break_of("TSLA")
    brk.state, brk.closed_at = "closed", brk.opened_at + timedelta(hours=3)
    assert age_words(brk) == "3 h" and due_words(brk) == "-"
