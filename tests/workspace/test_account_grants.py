"""Who sees what (docs/design.md section 16): a user granted some accounts (directly or through a
group) sees no row of another account anywhere in the workspace: lists, counts, filters, search,
pages, the timeline, the exports, the dashboard; a user without a grant sees every account; only
superusers and holders of ``workspace.manage_account_grants`` write grants."""

import csv
import io
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.urls import reverse

from brokerops.accounts import AccountConfig, Accounts
from reconciliation.models import Mismatch
from reconciliation.records import mismatches_complete
from tests import factories
from tests.workspace.helpers import execution, local_signal
from workspace import dashboard as dashboard_module
from workspace.access import visible_accounts
from workspace.filters import AccountListFilter
from workspace.models import AccountGrant

pytestmark = pytest.mark.django_db

DESK, CLIENT = "desk", "client"
GRANTS = "admin:workspace_accountgrant"


@pytest.fixture(autouse=True)
def two_accounts(settings):
    """The deployment's accounts: desk (the default) and client; no Redis for the dashboard."""
    settings.ACCOUNTS_FILE = "accounts.toml"
    settings.ACCOUNTS = Accounts(
        {
            DESK: AccountConfig(DESK, "dk", 200, default=True),
            CLIENT: AccountConfig(CLIENT, "cl", 200),
        },
        from_file="accounts.toml",
    )
    settings.REDIS_URL = None
    dashboard_module._limiter.cache_clear()


def _rows_of(account: str, name: str, symbol: str):
    """A run with a mismatch closing a signal, an open attempt with an event and a fill, and the
    signal's document: one account's trail, every row carrying ``name`` in its ids."""
    run = factories.reconciliation_run(account=account, requested_by_username=f"{name}-asker")
    coid = f"bo-{name}-entry"
    mismatch = factories.mismatch(
        run=run,
        account=account,
        symbol=symbol,
        signal_id=name,
        client_order_id=coid,
        action=Mismatch.Action.REPAIR_STARTED,
    )
    mismatches_complete(
        rows=[mismatch], outcomes={0: (Mismatch.Action.SIGNAL_CLOSED_MANUAL, "")}, actor="test"
    )
    attempt = factories.order_attempt(
        account=account, client_order_id=coid, signal_id=name, symbol=symbol, status="open"
    )
    event = factories.order_event(attempt=attempt, message=f"{name} created")
    fill = execution(attempt=attempt, execution_id=f"x-{name}", qty="1", at=attempt.created_at)
    signal = local_signal(name, symbol=symbol, account=account, client_order_id=coid)
    return SimpleNamespace(
        run=run, mismatch=mismatch, attempt=attempt, event=event, fill=fill, signal=signal
    )


@pytest.fixture
def trail():
    return SimpleNamespace(
        desk=_rows_of(DESK, "deskA", "AAPL"), client=_rows_of(CLIENT, "clientB", "MSFT")
    )


def _compliance(username: str) -> User:
    return factories.staff_user(group="compliance", username=username)


@pytest.fixture(params=["granted", "through a group"])
def limited(request, client):
    """A compliance user who sees the desk account only: granted it, or in a group granted it."""
    user = _compliance("dana")
    if request.param == "granted":
        AccountGrant.objects.create(account=DESK, user=user, created_by="root")
    else:
        group = Group.objects.create(name="desk-viewers")
        user.groups.add(group)
        AccountGrant.objects.create(account=DESK, group=group, created_by="root")
    client.force_login(user)
    return client


@pytest.fixture
def unlimited(client):
    client.force_login(_compliance("carl"))
    return client


@pytest.fixture
def unlimited_user():
    return _compliance("carl")


# (admin url name, the trail row it lists)
LISTS = [
    ("reconciliation_reconciliationrun", "run"),
    ("reconciliation_mismatch", "mismatch"),
    ("orders_orderattempt", "attempt"),
    ("orders_orderevent", "event"),
    ("orders_orderexecution", "fill"),
    ("intent_localsignal", "signal"),
]


def test_visible_accounts_are_the_union_of_the_users_and_groups_grants():
    user = _compliance("una")
    assert visible_accounts(user) is None  # no grant: every account
    group = Group.objects.create(name="client-viewers")
    user.groups.add(group)
    AccountGrant.objects.create(account=CLIENT, group=group)
    AccountGrant.objects.create(account=DESK, user=user)
    AccountGrant.objects.create(account="other", user=_compliance("olaf"))
    assert visible_accounts(User.objects.get(pk=user.pk)) == {DESK, CLIENT}
    root = User.objects.create_superuser("root", password="pw-for-tests-1")
    AccountGrant.objects.create(account=DESK, user=root)
    assert visible_accounts(root) is None  # a superuser sees every account
    assert visible_accounts(AnonymousUser()) == frozenset()


def test_a_grant_names_a_user_or_a_group_not_both_nor_neither():
    from django.db import IntegrityError, transaction

    user, group = _compliance("una"), Group.objects.create(name="g")
    for fields in ({}, {"user": user, "group": group}):
        with pytest.raises(IntegrityError), transaction.atomic():
            AccountGrant.objects.create(account=DESK, **fields)


@pytest.mark.parametrize(("name", "row"), LISTS)
def test_a_limited_user_lists_only_their_accounts_rows(limited, trail, name, row):
    page = limited.get(reverse(f"admin:{name}_changelist"))
    assert page.status_code == 200
    changelist = page.context["cl"]
    assert list(changelist.result_list) == [getattr(trail.desk, row)]
    assert changelist.result_count == 1
    assert not changelist.paginator.count_is_estimate
    assert getattr(trail.client, row).pk not in {o.pk for o in changelist.result_list}
    # Asking for the other account by its filter finds nothing either.
    parameter = "attempt__account" if row in ("event", "fill") else "account"
    if row != "signal":
        other = limited.get(reverse(f"admin:{name}_changelist"), {parameter: CLIENT})
        assert list(other.context["cl"].result_list) == []


@pytest.mark.parametrize(("name", "row"), LISTS)
def test_a_user_without_grants_lists_every_accounts_rows(unlimited, trail, name, row):
    page = unlimited.get(reverse(f"admin:{name}_changelist"))
    shown = {o.pk for o in page.context["cl"].result_list}
    assert shown == {getattr(trail.desk, row).pk, getattr(trail.client, row).pk}


def _account_filter(page) -> list[str]:
    (spec,) = [s for s in page.context["cl"].filter_specs if isinstance(s, AccountListFilter)]
    return [c["display"] for c in spec.choices(page.context["cl"])][1:]  # after "All"


@pytest.mark.parametrize(("name", "row"), [entry for entry in LISTS if entry[1] != "signal"])
def test_the_account_column_and_filter_show_only_the_visible_accounts(
    limited, unlimited_user, trail, name, row
):
    page = limited.get(reverse(f"admin:{name}_changelist"))
    assert _account_filter(page) == [DESK]
    assert "account" in [str(h["text"]).lower() for h in page.context["result_headers"]]
    narrowed = limited.get(reverse(f"admin:{name}_changelist"), {"q": DESK})
    assert list(narrowed.context["cl"].result_list) == [getattr(trail.desk, row)]

    limited.force_login(unlimited_user)
    everything = limited.get(reverse(f"admin:{name}_changelist"))
    assert _account_filter(everything) == [CLIENT, DESK]
    by_account = limited.get(
        reverse(f"admin:{name}_changelist"),
        {"attempt__account" if row in ("event", "fill") else "account": CLIENT},
    )
    assert list(by_account.context["cl"].result_list) == [getattr(trail.client, row)]


@pytest.mark.parametrize(
    ("name", "term"),
    [
        ("reconciliation_reconciliationrun", "run.pk"),
        ("reconciliation_reconciliationrun", "clientB-asker"),
        ("reconciliation_mismatch", "clientB"),
        ("reconciliation_mismatch", "bo-clientB-entry"),
        ("reconciliation_mismatch", "MSFT"),
        ("orders_orderattempt", "bo-clientB-entry"),
        ("orders_orderattempt", "clientB"),
        ("orders_orderevent", "bo-clientB-entry"),
        ("orders_orderexecution", "x-clientB"),
        ("intent_localsignal", "clientB"),
        ("orders_orderattempt", CLIENT),
    ],
)
def test_searching_for_another_accounts_row_finds_nothing(
    limited, unlimited_user, trail, name, term
):
    if term == "run.pk":
        term = str(trail.client.run.pk)
    url = reverse(f"admin:{name}_changelist")
    assert list(limited.get(url, {"q": term}).context["cl"].result_list) == []
    limited.force_login(unlimited_user)  # the same search finds the row for a user without grants
    assert list(limited.get(url, {"q": term}).context["cl"].result_list) != []


@pytest.mark.parametrize(("name", "row"), LISTS)
def test_another_accounts_row_by_its_url_is_not_found(limited, trail, name, row):
    mine, theirs = getattr(trail.desk, row), getattr(trail.client, row)
    assert limited.get(reverse(f"admin:{name}_change", args=[mine.pk])).status_code == 200
    assert limited.get(reverse(f"admin:{name}_change", args=[theirs.pk])).status_code == 404
    assert limited.get(reverse(f"admin:{name}_history", args=[theirs.pk])).status_code == 404


def test_an_attempts_page_names_no_mismatch_of_another_account(limited, unlimited_user, trail):
    """A client-account mismatch about the desk's order (its signal moved between accounts)."""
    stray = factories.mismatch(
        run=trail.client.run, account=CLIENT, client_order_id="bo-deskA-entry", symbol="AAPL"
    )
    url = reverse("admin:orders_orderattempt_change", args=[trail.desk.attempt.pk])
    assert f"mismatch #{stray.pk}" not in limited.get(url).content.decode()
    assert f"mismatch #{trail.desk.mismatch.pk}" in limited.get(url).content.decode()
    limited.force_login(unlimited_user)
    assert f"mismatch #{stray.pk}" in limited.get(url).content.decode()


def test_an_operator_limited_to_desk_cannot_rerun_another_accounts_run(client, trail):
    operator = factories.staff_user(group="operations", username="olga")
    AccountGrant.objects.create(account=DESK, user=operator)
    client.force_login(operator)
    url = reverse("admin:reconciliation_reconciliationrun_rerun", args=[trail.client.run.pk])
    assert client.post(url).status_code == 404
    assert not trail.client.run.reruns.exists()


def test_an_operators_actions_never_reach_another_accounts_rows(client, trail):
    """A forged action POST naming the client account's attempt and run selects nothing."""
    from django.contrib.admin import helpers

    from orders.models import OrderEvent

    operator = factories.staff_user(group="operations", username="olga")
    AccountGrant.objects.create(account=DESK, user=operator)
    client.force_login(operator)
    events = OrderEvent.objects.count()
    for name, action, row in (
        ("orders_orderattempt", "resync", trail.client.attempt),
        ("reconciliation_reconciliationrun", "rerun", trail.client.run),
    ):
        client.post(
            reverse(f"admin:{name}_changelist"),
            {"action": action, helpers.ACTION_CHECKBOX_NAME: [row.pk], "index": 0},
        )
    assert OrderEvent.objects.count() == events
    assert not trail.client.run.reruns.exists()
    assert not trail.desk.run.reruns.exists()


def test_a_limited_users_count_is_never_the_whole_tables_estimate(limited, trail, monkeypatch):
    """Past the estimate threshold an unfiltered list shows PostgreSQL's estimate of the whole
    table: a limited user's list is filtered by account, so it is counted."""
    from django.db import connection

    from workspace.admin.site import AuditListMixin

    for n in range(5):
        factories.order_attempt(account=CLIENT, client_order_id=f"bo-more{n}-entry")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE orders_orderattempt")
    monkeypatch.setattr(AuditListMixin, "exact_count_below", 0)
    page = limited.get(reverse("admin:orders_orderattempt_changelist"))
    paginator = page.context["cl"].paginator
    assert (paginator.count, paginator.count_is_estimate) == (1, False)


def test_the_timeline_shows_only_the_visible_accounts_rows(limited, unlimited_user, trail):
    stray = factories.mismatch(
        run=trail.client.run, account=CLIENT, client_order_id="bo-deskA-entry", symbol="AAPL"
    )
    desk = limited.get(reverse("order_timeline", args=["bo-deskA-entry"]))
    assert desk.status_code == 200
    timeline = desk.context["timeline"]
    assert timeline.accounts == (DESK,)
    assert stray.pk not in [
        int(link.label.split("#")[1])
        for entry in timeline.entries
        for link in entry.links
        if link.label.startswith("mismatch #")
    ]
    assert 'id="timeline-account">desk<' in desk.content.decode()
    assert limited.get(reverse("order_timeline", args=["bo-clientB-entry"])).status_code == 404

    limited.force_login(unlimited_user)
    everything = limited.get(reverse("order_timeline", args=["bo-deskA-entry"]))
    assert everything.context["timeline"].accounts == (CLIENT, DESK)
    assert limited.get(reverse("order_timeline", args=["bo-clientB-entry"])).status_code == 200


def test_a_timeline_leaves_out_a_signal_now_of_another_account(limited, trail):
    trail.desk.signal.data["account"] = CLIENT
    trail.desk.signal.save()
    page = limited.get(reverse("order_timeline", args=["bo-deskA-entry"]))
    assert page.context["timeline"].signal is None
    assert "account you do not see" in page.content.decode()


def _export(client, name: str, params: dict | None = None) -> list[dict[str, str]]:
    response = client.get(reverse(f"admin:{name}_export"), params or {})
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize(("name", "row"), LISTS)
def test_exports_carry_the_account_and_only_the_visible_accounts_rows(
    limited, unlimited_user, trail, name, row
):
    rows = _export(limited, name)
    assert [r["Account"] for r in rows] == [DESK]
    assert _export(limited, name, {"q": "clientB"}) == []
    limited.force_login(unlimited_user)
    assert sorted(r["Account"] for r in _export(limited, name)) == [CLIENT, DESK]


def test_the_dashboard_counts_charts_and_links_only_the_visible_accounts(
    limited, unlimited_user, trail
):
    later = factories.reconciliation_run(
        account=CLIENT, summary={"by_kind": {"QTY_MISMATCH": 7}}, mismatches_found=7
    )
    html = limited.get(reverse("admin:index")).content.decode()
    assert f"Run #{trail.desk.run.pk}" in html and f"Run #{later.pk}" not in html
    assert 'data-kind="QTY_MISMATCH" data-count' not in html  # the client run's bar
    assert '<span class="figure">1</span></a>' in html  # one open attempt: the desk's
    assert "(account desk)" in html

    limited.force_login(unlimited_user)
    html = limited.get(reverse("admin:index")).content.decode()
    assert f"Run #{later.pk}" in html
    assert '<span class="figure">2</span></a>' in html


def test_the_dashboard_reads_a_limited_users_accounts(trail):
    limited = dashboard_module.dashboard_read(visible=frozenset({DESK}))
    everything = dashboard_module.dashboard_read()
    assert (limited.open_attempts, everything.open_attempts) == (1, 2)
    assert (limited.signals_closed_today, everything.signals_closed_today) == (1, 2)
    assert limited.last_run == trail.desk.run and everything.last_run == trail.client.run
    assert (limited.runs_charted, everything.runs_charted) == (1, 2)  # the desk's run only
    nobody = dashboard_module.dashboard_read(visible=frozenset({CLIENT}))
    assert nobody.limiter.hidden  # the ALPACA_* key's limiter is the desk account's


# --- writing grants -------------------------------------------------------------------------


def _grant_form(**fields) -> dict:
    return {"account": DESK, "user": "", "group": "", "_save": "Save", **fields}


def test_a_view_only_user_cannot_grant_by_a_forged_post(client, trail):
    viewer = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    grant = AccountGrant.objects.create(account=CLIENT, user=_compliance("una"))
    assert client.get(reverse(f"{GRANTS}_changelist")).status_code == 200
    forged = _grant_form(user=viewer.pk)
    assert client.post(reverse(f"{GRANTS}_add"), forged).status_code == 403
    assert client.post(reverse(f"{GRANTS}_change", args=[grant.pk]), forged).status_code == 403
    delete = reverse(f"{GRANTS}_delete", args=[grant.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert list(AccountGrant.objects.values_list("account", "user_id")) == [(CLIENT, grant.user_id)]


def test_compliance_and_operations_cannot_grant(client, trail):
    for group in ("compliance", "operations"):
        client.force_login(factories.staff_user(group=group))
        user = _compliance(f"target-{group}")
        assert client.post(reverse(f"{GRANTS}_add"), _grant_form(user=user.pk)).status_code == 403
    assert not AccountGrant.objects.exists()


def test_a_grant_manager_grants_an_account_and_the_user_is_limited_from_then_on(client, trail):
    manager = User.objects.create_user("mona", password="pw-for-tests-1", is_staff=True)
    manager.user_permissions.add(Permission.objects.get(codename="manage_account_grants"))
    target = _compliance("tess")
    client.force_login(manager)
    response = client.post(reverse(f"{GRANTS}_add"), _grant_form(user=target.pk))
    assert response.status_code == 302
    grant = AccountGrant.objects.get()
    assert (grant.account, grant.user, grant.created_by) == (DESK, target, "mona")

    client.force_login(target)
    listing = client.get(reverse("admin:orders_orderattempt_changelist"))
    assert list(listing.context["cl"].result_list) == [trail.desk.attempt]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({}, "to a user or to a group"),
        ({"both": True}, "to a user or to a group"),
        ({"account": "nope"}, "No account 'nope'"),
        ({"account": "Not A Name"}, "1 to 32 of a-z"),
    ],
)
def test_a_bad_grant_is_refused_with_a_reason(admin_client, trail, fields, problem):
    user, group = _compliance("una"), Group.objects.create(name="g")
    form = _grant_form(account=fields.get("account", DESK))
    if fields.get("both"):
        form.update(user=user.pk, group=group.pk)
    response = admin_client.post(reverse(f"{GRANTS}_add"), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert problem in " ".join(message for messages in errors.values() for message in messages)
    assert not AccountGrant.objects.exists()


def test_a_grant_may_name_an_account_that_left_the_configuration_while_its_rows_remain(
    admin_client, trail
):
    factories.reconciliation_run(account="retired")
    user = _compliance("una")
    response = admin_client.post(
        reverse(f"{GRANTS}_add"), _grant_form(account="retired", user=user.pk)
    )
    assert response.status_code == 302
    assert visible_accounts(User.objects.get(pk=user.pk)) == {"retired"}
