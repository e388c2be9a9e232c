"""Verify now (docs/design.md section 19): compliance starts a verification from the admin (a
POST behind ``audit.verify_audit``, recorded with who asked), a worker runs it, the page follows
it, and the result reads as a sentence per chain with unsigned heads called out."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from audit.models import AccessRecord, AuditVerification
from audit.services import audit_verify, chain_heads_record
from audit.tasks import audit_verify_task
from audit.wording import chain_sentence
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def sent(monkeypatch):
    """What "Verify now" sends to the workers (run by the test itself)."""
    calls = []
    monkeypatch.setattr(
        audit_verify_task, "apply_async", lambda kwargs, task_id: calls.append((kwargs, task_id))
    )
    return calls


def _trail():
    attempt = factories.order_attempt(client_order_id="bo-sigV-entry")
    factories.order_event(attempt=attempt)


def test_compliance_starts_a_verification_that_names_who_asked(
    client, sent, django_capture_on_commit_callbacks
):
    _trail()
    client.force_login(factories.staff_user(group="compliance", username="cora"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("admin:audit_verify_now"))
    ((kwargs, task_id),) = sent
    assert kwargs == {"requested_by": "cora", "request_id": task_id}
    follow = reverse("admin:audit_verify_follow", args=[task_id])
    assert response.status_code == 302 and response["Location"] == follow
    record = AccessRecord.objects.get(what="verify")
    assert (record.username, record.object_id) == ("cora", task_id)

    waiting = client.get(follow)  # the worker has not run it yet: the page reloads itself
    assert waiting.status_code == 200
    assert b'http-equiv="refresh"' in waiting.content

    audit_verify_task(**kwargs)  # the worker
    done = client.get(follow)
    verification = AuditVerification.objects.get()
    assert done["Location"] == reverse(
        "admin:audit_auditverification_change", args=[verification.pk]
    )
    assert verification.trigger == "admin"
    assert verification.report["requested_by"] == "cora"

    page = client.get(done["Location"]).content.decode()
    assert "asked for by cora: the trail is intact" in page
    assert "order events: 1 row recomputed" in page
    assert "access records:" in page
    assert '"chains"' not in page  # never the JSON report


def test_a_get_or_a_user_without_the_permission_starts_nothing(client, sent):
    viewer = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    assert client.post(reverse("admin:audit_verify_now")).status_code == 403
    client.force_login(factories.staff_user(group="compliance"))
    assert client.get(reverse("admin:audit_verify_now")).status_code == 405
    assert sent == []
    assert not AccessRecord.objects.filter(what="verify").exists()


def test_the_index_offers_the_button_to_whoever_may_verify(client):
    client.force_login(factories.staff_user(group="compliance"))
    assert b'id="verify-now"' in client.get(reverse("admin:index")).content
    viewer = User.objects.create_user("viewer", password="pw-for-tests-1", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(viewer)
    assert b'id="verify-now"' not in client.get(reverse("admin:index")).content


def test_unsigned_heads_are_called_out(client, settings):
    settings.AUDIT_HMAC_KEY = None
    _trail()
    chain_heads_record(recorded_by="test")
    verification = audit_verify(trigger="command", processes=1).verification
    client.force_login(factories.staff_user(group="compliance"))
    page = client.get(reverse("admin:audit_auditverification_change", args=[verification.pk]))
    text = page.content.decode()
    assert "Unsigned chain heads: order_events (" in text
    assert "none signed" in text


def test_signed_heads_read_as_signed(settings):
    settings.AUDIT_HMAC_KEY = "k" * 32
    _trail()
    chain_heads_record(recorded_by="test")
    report = audit_verify(trigger="command", processes=1).verification.report
    sentence = chain_sentence("order_events", report["chains"]["order_events"])
    assert sentence.text == (
        "order events: 1 row recomputed, 1 recorded head checked, all signed; intact."
    )


def test_a_broken_chain_names_its_first_broken_link():
    chain = {
        "rows": 12,
        "heads_checked": 2,
        "unsigned": 1,
        "uncovered": 3,
        "problems": 2,
        "first_problem": "order_events row 7: its content no longer gives its hash",
    }
    sentence = chain_sentence("order_events", chain)
    assert not sentence.ok
    assert sentence.text == (
        "order events: 12 rows recomputed, 2 recorded heads checked, 1 unsigned, the newest 3"
        " rows not yet covered by a head; BROKEN: 2 problems; the first: order_events row 7:"
        " its content no longer gives its hash."
    )
