"""The audit trail in the admin: compliance staff view and search, nobody edits."""

import pytest
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db

AUDIT_MODELS = [
    ("reconciliation", "reconciliationrun"),
    ("reconciliation", "mismatch"),
    ("orders", "orderattempt"),
    ("orders", "orderevent"),
]


@pytest.fixture
def trail():
    run = factories.reconciliation_run()
    attempt = factories.order_attempt(client_order_id="bo-sigA-entry", signal_id="sigA")
    event = factories.order_event(attempt=attempt)
    mismatch = factories.mismatch(run=run, client_order_id="bo-sigA-entry", signal_id="sigA")
    return {
        "reconciliationrun": run,
        "mismatch": mismatch,
        "orderattempt": attempt,
        "orderevent": event,
    }


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


@pytest.mark.parametrize(("app", "model"), AUDIT_MODELS)
def test_compliance_can_list_and_view_every_audit_model(compliance_client, trail, app, model):
    listing = compliance_client.get(reverse(f"admin:{app}_{model}_changelist"))
    assert listing.status_code == 200
    obj = trail[model]
    page = compliance_client.get(reverse(f"admin:{app}_{model}_change", args=[obj.pk]))
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # a view-only page


@pytest.mark.parametrize(("app", "model"), AUDIT_MODELS)
@pytest.mark.parametrize("group", ["compliance", "operations"])
def test_nobody_adds_changes_or_deletes_audit_rows(client, trail, app, model, group):
    client.force_login(factories.staff_user(group=group))
    obj = trail[model]
    assert client.get(reverse(f"admin:{app}_{model}_add")).status_code == 403
    change_url = reverse(f"admin:{app}_{model}_change", args=[obj.pk])
    assert client.post(change_url, {"symbol": "EVIL"}).status_code == 403
    delete_url = reverse(f"admin:{app}_{model}_delete", args=[obj.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    assert type(obj).objects.filter(pk=obj.pk).exists()


@pytest.mark.parametrize(("app", "model"), AUDIT_MODELS)
def test_even_a_superuser_cannot_edit_the_trail(admin_client, trail, app, model):
    obj = trail[model]
    assert admin_client.get(reverse(f"admin:{app}_{model}_add")).status_code == 403
    delete_url = reverse(f"admin:{app}_{model}_delete", args=[obj.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403


def test_a_user_outside_the_groups_sees_nothing(client, trail):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("visitor", password="x", is_staff=True))
    assert client.get(reverse("admin:orders_orderattempt_changelist")).status_code == 403


def test_search_by_exact_client_order_id_finds_only_that_attempt(compliance_client, trail):
    factories.order_attempt(client_order_id="bo-sigA-entry-2", signal_id="sigB")
    url = reverse("admin:orders_orderattempt_changelist")
    page = compliance_client.get(url, {"q": "bo-sigA-entry"})
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [trail["orderattempt"]]


@pytest.mark.parametrize("term", ["sigA", "AAPL", "bo-sigA-entry"])
def test_mismatches_are_searchable_by_signal_symbol_and_client_order_id(
    compliance_client, trail, term
):
    page = compliance_client.get(reverse("admin:reconciliation_mismatch_changelist"), {"q": term})
    assert list(page.context["cl"].result_list) == [trail["mismatch"]]


def test_mismatches_filter_by_kind(compliance_client, trail):
    factories.mismatch(kind="QTY_MISMATCH", symbol="MSFT")
    url = reverse("admin:reconciliation_mismatch_changelist")
    page = compliance_client.get(url, {"kind__exact": "QTY_MISMATCH"})
    assert [m.symbol for m in page.context["cl"].result_list] == ["MSFT"]


def test_attempt_page_shows_events_in_time_order_and_related_mismatches(compliance_client, trail):
    attempt = trail["orderattempt"]
    factories.order_event(attempt=attempt, kind="request_sent", message="POST /v2/orders")
    factories.order_event(attempt=attempt, kind="response", message="accepted by broker")
    page = compliance_client.get(reverse("admin:orders_orderattempt_change", args=[attempt.pk]))
    text = page.content.decode()
    assert text.index("POST /v2/orders") < text.index("accepted by broker")
    assert f"run #{trail['mismatch'].run_id}" in text


def test_compliance_sees_the_beat_schedule(compliance_client):
    assert (
        compliance_client.get(
            reverse("admin:django_celery_beat_periodictask_changelist")
        ).status_code
        == 200
    )
