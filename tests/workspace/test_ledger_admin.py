"""The activities in the workspace (docs/design.md section 18.2): a read-only list kept to the
user's accounts, filtered by account, type and date, searched by symbol in any form, exported
as CSV exactly; an order's activities on its timeline; a symbol's history linked from the pages
that name a symbol."""

import csv
import io

import pytest
from django.urls import reverse

from brokerops.accounts import AccountConfig, Accounts
from ledger.models import AccountActivity
from tests import factories
from tests.workspace.breaks_helpers import break_of, finding, page_url, run_with
from tests.workspace.helpers import account_activity, local_signal
from workspace.admin.ledger import activities_url
from workspace.models import AccountGrant
from workspace.timeline import order_timeline

pytestmark = pytest.mark.django_db
LIST = "admin:ledger_accountactivity_changelist"


@pytest.fixture(autouse=True)
def two_accounts(settings):
    settings.ACCOUNTS_FILE = "accounts.toml"
    settings.ACCOUNTS = Accounts(
        {
            "desk": AccountConfig("desk", "dk", 200, default=True),
            "client": AccountConfig("client", "cl", 200),
        },
        from_file="accounts.toml",
    )


@pytest.fixture
def ledger_rows():
    return {
        "fill": account_activity(1, account="desk", order_id="alpaca-1"),
        "fee": account_activity(
            2,
            account="desk",
            activity_type="CFEE",
            symbol="BTCUSD",
            qty="-0.000000000123456789",
            transaction_time=None,
            date="2026-02-01",
        ),
        "unknown": account_activity(3, account="desk", activity_type="ZZNEW", symbol="TSLA"),
        "other": account_activity(4, account="client", symbol="MSFT"),
    }


@pytest.fixture
def compliance(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


def listed(client, params=None) -> list[str]:
    page = client.get(reverse(LIST), params or {})
    assert page.status_code == 200
    return sorted(row.activity_id[-2:] for row in page.context["cl"].queryset)


def test_the_list_shows_every_account_and_an_unknown_type_as_such(compliance, ledger_rows):
    page = compliance.get(reverse(LIST))
    assert listed(compliance) == ["01", "02", "03", "04"]
    text = page.content.decode()
    assert "ZZNEW" in text and "unknown type" in text
    assert "-0.000000000123456789" in text  # exact, no rounding to 9 places


def test_filters_by_account_type_symbol_in_any_form_and_date(compliance, ledger_rows):
    assert listed(compliance, {"account": "client"}) == ["04"]
    assert listed(compliance, {"activity_type__exact": "CFEE"}) == ["02"]
    assert listed(compliance, {"q": "BTC/USD"}) == ["02"]  # stored as BTCUSD
    assert listed(compliance, {"q": "alpaca-1"}) == ["01"]
    assert listed(compliance, {"occurred_at__from": "2026-02-01"}) == ["02"]
    assert compliance.get(activities_url(symbol="TSLA")).context["cl"].queryset.get().pk == (
        ledger_rows["unknown"].pk
    )


def test_a_user_granted_one_account_sees_only_its_activities(client, ledger_rows):
    user = factories.staff_user(group="compliance")
    AccountGrant.objects.create(account="desk", user=user, created_by="root")
    client.force_login(user)
    assert listed(client) == ["01", "02", "03"]
    other = ledger_rows["other"]
    page = client.get(reverse("admin:ledger_accountactivity_change", args=[other.pk]))
    assert page.status_code == 404
    export = client.get(reverse("admin:ledger_accountactivity_export"))
    body = b"".join(export.streaming_content).decode()
    assert "MSFT" not in body and "BTCUSD" in body


def test_the_export_is_the_list_with_exact_figures(compliance, ledger_rows):
    response = compliance.get(
        reverse("admin:ledger_accountactivity_export"), {"activity_type__exact": "CFEE"}
    )
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    header, (fee,) = rows[0], rows[1:]
    row = dict(zip(header, fee, strict=True))
    assert (row["Account"], row["Activity type"], row["Kind"]) == ("desk", "CFEE", "CFEE")
    assert row["Qty"].endswith("-0.000000000123456789"), row  # a leading ' defuses the minus
    assert row["Symbol"] == "BTCUSD" and row["Activity id"].endswith("2")


def test_a_forged_post_changes_nothing(compliance, ledger_rows):
    row = ledger_rows["fill"]
    change = reverse("admin:ledger_accountactivity_change", args=[row.pk])
    delete = reverse("admin:ledger_accountactivity_delete", args=[row.pk])
    assert compliance.post(change, {"activity_type": "X"}).status_code == 403
    assert compliance.post(delete, {"post": "yes"}).status_code == 403
    assert compliance.post(reverse("admin:ledger_accountactivity_add"), {}).status_code == 403
    assert AccountActivity.objects.get(pk=row.pk).activity_type == "FILL"


def test_the_orders_activities_show_on_its_timeline(ledger_rows):
    attempt = factories.order_attempt(
        account="desk", client_order_id="dk-sig1-entry", alpaca_order_id="alpaca-1"
    )
    timeline = order_timeline(client_order_id=attempt.client_order_id)
    (entry,) = [e for e in timeline.entries if e.source == "activity"]
    assert entry.title == "Alpaca activity FILL (fill): buy 1 @ 10"
    assert entry.links[0].url == reverse(
        "admin:ledger_accountactivity_change", args=[ledger_rows["fill"].pk]
    )
    # Another account's activity of the same order id is not this order's.
    account_activity(9, account="client", order_id="alpaca-1")
    again = order_timeline(client_order_id=attempt.client_order_id)
    assert len([e for e in again.entries if e.source == "activity"]) == 1


def _history_link(html: str) -> str:
    import re

    (href,) = re.findall(r'class="activities-link" href="([^"]+)"', html)
    return href.replace("&amp;", "&")


def test_a_breaks_page_links_to_its_symbols_history_in_its_account(compliance, ledger_rows):
    account_activity(5, account="desk", symbol="MSFT")
    run_with(finding(symbol="MSFT", signal_ids=("dk-9",)), account="desk")
    page = compliance.get(page_url(break_of("MSFT")))
    history = compliance.get(_history_link(page.content.decode()))
    # The desk's MSFT row, not the client's (same symbol, another account), nor desk's others.
    assert [r.activity_id[-2:] for r in history.context["cl"].queryset] == ["05"]


def test_a_signals_page_links_to_its_symbols_history(compliance, ledger_rows):
    signal = local_signal("sig-t", symbol="TSLA", account="desk")
    change = reverse("admin:intent_localsignal_change", args=[signal.pk])
    history = compliance.get(_history_link(compliance.get(change).content.decode()))
    assert [r.activity_id[-2:] for r in history.context["cl"].queryset] == ["03"]
    # An account the configuration does not know: the symbol in every account shown.
    stray = local_signal("sig-m", symbol="MSFT", account="gone")
    change = reverse("admin:intent_localsignal_change", args=[stray.pk])
    history = compliance.get(_history_link(compliance.get(change).content.decode()))
    assert [r.activity_id[-2:] for r in history.context["cl"].queryset] == ["04"]
