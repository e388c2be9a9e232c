"""The workspace's pages on the access log (docs/design.md section 19): every view of a
timeline, an attempt, a run, a signal page, every export and every searched list is recorded with
who, what and the query; a refused page is not; compliance lists and exports the log, and nobody
changes or deletes it (forged POSTs, a superuser's delete included)."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from audit.access import access_record_build, access_records_append
from audit.models import AccessRecord
from tests import factories
from tests.workspace import helpers as rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def compliance(client):
    user = factories.staff_user(group="compliance", username="cora")
    client.force_login(user)
    return client


def records() -> list[tuple[str, str, str, str]]:
    return list(
        AccessRecord.objects.order_by("pk").values_list("username", "what", "object_id", "query")
    )


def test_a_timeline_view_is_recorded(compliance):
    attempt = factories.order_attempt(client_order_id="bo-sigT-entry")
    factories.order_event(attempt=attempt)
    page = compliance.get(reverse("order_timeline", args=["bo-sigT-entry"]), {"signal": "sigT"})
    assert page.status_code == 200
    assert records() == [("cora", "timeline", "bo-sigT-entry", "signal=sigT")]


def test_a_missing_timeline_is_not_a_view(compliance):
    assert compliance.get(reverse("order_timeline", args=["bo-nothing"])).status_code == 404
    assert records() == []


def test_attempt_run_and_signal_pages_are_recorded(compliance):
    attempt = factories.order_attempt(client_order_id="bo-sigP-entry")
    run = factories.reconciliation_run()
    signal = rows.local_signal("sigP")
    for name, pk in (
        ("orders_orderattempt", attempt.pk),
        ("reconciliation_reconciliationrun", run.pk),
        ("intent_localsignal", signal.pk),
    ):
        assert compliance.get(reverse(f"admin:{name}_change", args=[pk])).status_code == 200
    assert [r[1:3] for r in records()] == [
        ("attempt", "bo-sigP-entry"),
        ("run", str(run.pk)),
        ("signal", str(signal.pk)),
    ]


def test_an_export_is_recorded_with_its_filters(compliance):
    factories.order_attempt(client_order_id="bo-sigE-entry")
    response = compliance.get(
        reverse("admin:orders_orderattempt_export"), {"q": "bo-sigE-entry", "status": "created"}
    )
    assert response.status_code == 200
    b"".join(response.streaming_content)
    assert records() == [
        ("cora", "export", "orders.orderattempt", "q=bo-sigE-entry&status=created")
    ]


def test_a_searched_list_is_recorded_a_plain_one_is_not(compliance):
    listing = reverse("admin:orders_orderattempt_changelist")
    assert compliance.get(listing).status_code == 200
    assert compliance.get(listing, {"p": "1"}).status_code == 200
    assert records() == []
    assert compliance.get(listing, {"q": "bo-x"}).status_code == 200
    assert records() == [("cora", "list", "orders.orderattempt", "q=bo-x")]


def test_a_refused_export_is_not_recorded(client):
    client.force_login(User.objects.create_user("nobody", password="pw-for-tests-1", is_staff=True))
    assert client.get(reverse("admin:orders_orderattempt_export")).status_code == 403
    assert records() == []


def test_compliance_lists_and_exports_the_access_log(compliance):
    access_records_append(
        [access_record_build(user="opal", what="evidence", object_id="bo-sig9-entry", query="x=1")]
    )
    listing = compliance.get(reverse("admin:audit_accessrecord_changelist"))
    assert listing.status_code == 200
    assert b"bo-sig9-entry" in listing.content
    export = compliance.get(reverse("admin:audit_accessrecord_export"))
    text = b"".join(export.streaming_content).decode()
    assert "bo-sig9-entry" in text and "opal" in text
    # The export of the log is itself on the log.
    assert records()[-1][:3] == ("cora", "export", "audit.accessrecord")


@pytest.mark.parametrize("who", ["compliance", "superuser"])
def test_nobody_changes_or_deletes_a_record(client, who):
    if who == "superuser":
        user = User.objects.create_superuser("root", password="pw-for-tests-1")
    else:
        user = factories.staff_user(group="compliance")
    client.force_login(user)
    (record,) = access_records_append([access_record_build(user="opal", what="run", object_id="3")])
    before = list(AccessRecord.objects.values())
    change = reverse("admin:audit_accessrecord_change", args=[record.pk])
    forged = {"username": "mallory", "what": "run", "object_id": "4", "created_at": timezone.now()}
    assert client.post(change, forged).status_code == 403
    assert client.post(reverse("admin:audit_accessrecord_add"), forged).status_code == 403
    delete = reverse("admin:audit_accessrecord_delete", args=[record.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    bulk = client.post(
        reverse("admin:audit_accessrecord_changelist"),
        {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert list(AccessRecord.objects.values()) == before
